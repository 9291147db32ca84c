"""The session state machine: which message may be sent or received in which state.

Theory of operation. A connection is a client (it dialled) or a server (it accepted). The handshake is

    client                          server
      Hello(nonce, cert, groups) ->
                                 <- Hello(nonce, cert, groups it shares with the client)
      Proof(signature, macs)     ->
                                 <- Proof(signature, macs)      (or Refused)
                                 <- Welcome(groups)
    then OPEN: both sides pull from each other (IndexRequest, ContentRequest, ...) until each has sent
    PullDone, and either may say Bye.

Rule 1: everything that moves the state lives in ``TRANSITIONS``; a message not listed for the current
state is a RemoteProtocolError when received and a LocalProtocolError when sent. Verifying the proofs
is the caller's business (it holds the keys); this module only enforces order and framing.
"""

from __future__ import annotations

import enum

from shoal.proto import messages as m
from shoal.proto.errors import LocalProtocolError, RemoteProtocolError
from shoal.proto.frames import MAX_FRAME, FrameDecoder, frame

HANDSHAKE_FRAME_LIMIT = 64 << 10  #: a Hello carries a certificate and group names; nothing more is needed


class Role(enum.Enum):
    CLIENT = "client"
    SERVER = "server"


class State(enum.Enum):
    START = "start"
    HELLO_SENT = "hello sent"
    HELLO_RECEIVED = "hello received"
    PROOF_SENT = "proof sent"
    PROOF_RECEIVED = "proof received"
    OPEN = "open"
    CLOSED = "closed"


ME, PEER = "me", "peer"

_OPEN_TRAFFIC = (
    m.IndexRequest,
    m.IndexBatch,
    m.ContentRequest,
    m.ContentData,
    m.ContentCopy,
    m.ContentEnd,
    m.Ack,
    m.PullDone,
    m.Poke,
)

TRANSITIONS: dict[tuple[Role, State, str, type], State] = {
    # client
    (Role.CLIENT, State.START, ME, m.Hello): State.HELLO_SENT,
    (Role.CLIENT, State.HELLO_SENT, PEER, m.Hello): State.HELLO_RECEIVED,
    (Role.CLIENT, State.HELLO_RECEIVED, ME, m.Proof): State.PROOF_SENT,
    (Role.CLIENT, State.PROOF_SENT, PEER, m.Proof): State.PROOF_RECEIVED,
    (Role.CLIENT, State.PROOF_RECEIVED, PEER, m.Welcome): State.OPEN,
    # server
    (Role.SERVER, State.START, PEER, m.Hello): State.HELLO_RECEIVED,
    (Role.SERVER, State.HELLO_RECEIVED, ME, m.Hello): State.HELLO_SENT,
    (Role.SERVER, State.HELLO_SENT, PEER, m.Proof): State.PROOF_RECEIVED,
    (Role.SERVER, State.PROOF_RECEIVED, ME, m.Proof): State.PROOF_SENT,
    (Role.SERVER, State.PROOF_SENT, ME, m.Welcome): State.OPEN,
}
for _role in Role:
    for _who in (ME, PEER):
        for _kind in _OPEN_TRAFFIC:
            TRANSITIONS[_role, State.OPEN, _who, _kind] = State.OPEN
        for _state in State:
            if _state is not State.CLOSED:
                TRANSITIONS[_role, _state, _who, m.Bye] = State.CLOSED
    # The server may refuse at any point before the session opens.
    for _state in (State.START, State.HELLO_RECEIVED, State.HELLO_SENT, State.PROOF_RECEIVED):
        TRANSITIONS[Role.SERVER, _state, ME, m.Refused] = State.CLOSED
    for _state in (State.HELLO_SENT, State.PROOF_SENT, State.PROOF_RECEIVED):
        TRANSITIONS[Role.CLIENT, _state, PEER, m.Refused] = State.CLOSED


class Connection:
    """One side of a session: ``send(msg) -> bytes`` and ``receive_data(bytes)`` / ``next_event()``."""

    def __init__(self, role: Role, frame_limit: int = MAX_FRAME) -> None:
        self.role = role
        self.state = State.START
        # Until the session opens, a peer nobody has authenticated yet may send only small frames.
        self._decoder = FrameDecoder(min(frame_limit, HANDSHAKE_FRAME_LIMIT))
        self.frame_limit = frame_limit

    def _move(self, who: str, msg: m.Message) -> None:
        nxt = TRANSITIONS.get((self.role, self.state, who, type(msg)))
        if nxt is None:
            what = f"{type(msg).__name__} in state '{self.state.value}' ({self.role.value})"
            if who == ME:
                raise LocalProtocolError(f"cannot send {what}")
            raise RemoteProtocolError(f"unexpected {what}")
        self.state = nxt
        if nxt is State.OPEN:
            self._decoder.limit = self.frame_limit

    def send(self, msg: m.Message) -> bytes:
        self._move(ME, msg)
        return frame(m.encode(msg), self.frame_limit)

    def receive_data(self, data: bytes) -> None:
        self._decoder.feed(data)

    def next_event(self) -> m.Message | None:
        """The next whole message received, or None until more bytes arrive."""
        payload = self._decoder.next_frame()
        if payload is None:
            return None
        msg = m.decode(payload)
        self._move(PEER, msg)
        return msg
