"""Every message of the shoal protocol, declared once, decoded with one typed decoder.

Owns: message shapes and their msgpack encoding (tagged union). An unknown tag, a missing field or a
wrong type is a RemoteProtocolError; nothing from the wire is ever executed or unpickled.
"""

from __future__ import annotations

import msgspec

from shoal.proto.errors import RemoteProtocolError

PROTOCOL_VERSION = 1
PAGES_PER_REQUEST = 4  #: index pages one IndexRequest is answered with, at most


class WireRecord(msgspec.Struct, array_like=True, frozen=True):
    """A record as it travels (model/records.py Record minus local change-detection fields)."""

    path: str
    kind: int
    size: int
    mode: int
    uid: int
    gid: int
    user: str
    group: str
    mtime_ns: int
    hash: bytes | None
    target: str | None
    rdev: int
    vector: list[tuple[str, int]]
    base: bytes | None
    deleted: bool
    seq: int  #: the sender's sequence number for this record


class Hello(msgspec.Struct, tag="hello", frozen=True):
    """First message from each side: who I am, a fresh nonce, the groups I want to sync with you."""

    version: int
    node: str
    nonce: bytes
    cert: bytes  #: my certificate (DER); its SHA-256 is my fingerprint
    groups: list[str]
    db_id: str  #: my database's id: when it changes, my sequence numbers restarted
    offer: bool  #: you may pull my changes (False for a dry run)


class Proof(msgspec.Struct, tag="proof", frozen=True):
    """Proves my node key (signature) and each group key (HMAC) over the handshake transcript."""

    signature: bytes
    macs: dict[str, bytes]


class Welcome(msgspec.Struct, tag="welcome", frozen=True):
    """The proof was accepted; these groups are authenticated on both sides."""

    groups: list[str]


class Refused(msgspec.Struct, tag="refused", frozen=True):
    reason: str


class IndexRequest(msgspec.Struct, tag="index_request", frozen=True):
    """Send me your records with sequence numbers above ``since``; inline file contents up to
    ``inline_max`` bytes. With ``paths``: your current records of just these paths, in one batch
    (a slave asks its master for the versions of what it changed locally). ``everything``: include the
    versions you took from me too (a comparison wants the whole index, not just what I lack).

    At most ``pages`` pages answer one request (the responder's cap, PAGES_PER_REQUEST, if larger or
    0): a last page with ``more`` set means "ask again from its ``upto``". This is the flow control of
    the index: the asker holds no more pages than it asked for, and takes a peer that sends more for
    a hostile one."""

    since: int
    inline_max: int
    paths: list[str] = []
    everything: bool = False
    pages: int = 0


class IndexBatch(msgspec.Struct, tag="index_batch", frozen=True):
    records: list[WireRecord]
    inline: list[bytes | None]  #: content of small files, parallel to ``records``
    upto: int  #: the highest of my sequence numbers covered so far
    more: bool


class ContentRequest(msgspec.Struct, tag="content_request", frozen=True):
    """Send me the content of ``path`` at ``hash``. ``have`` lists the chunk digests of my current copy
    so that you can send references instead of bytes (delta transfer). ``size`` is that version's
    size: a file of another size is another version, answered ``gone`` without sending it (-1: unknown)."""

    id: int
    path: str
    hash: bytes
    have: list[bytes]
    size: int = -1


class ContentData(msgspec.Struct, tag="content_data", frozen=True):
    id: int
    data: bytes


class ContentCopy(msgspec.Struct, tag="content_copy", frozen=True):
    """Copy these chunks, in order, from your own copy: (digest, length) each."""

    id: int
    refs: list[tuple[bytes, int]]


class ContentEnd(msgspec.Struct, tag="content_end", frozen=True):
    id: int
    error: str | None  #: why the content could not be sent (changed meanwhile, vanished), or None
    #: the version asked for is no longer on my disk (deleted, replaced, of another size): my record of
    #: what is there now comes after it, so the asker need not ask again for this one
    gone: bool = False


class Ack(msgspec.Struct, tag="ack", frozen=True):
    """I have applied (durably) your records up to ``upto``."""

    upto: int


class PullDone(msgspec.Struct, tag="pull_done", frozen=True):
    """I will not ask you for anything more in this session; what taking your changes gave."""

    applied: int
    conflicts: list[str]
    problems: list[str]


class Poke(msgspec.Struct, tag="poke", frozen=True):
    """I have records up to my sequence number ``upto``: pull when you like. On a lasting session it is
    also the keepalive (sent every few seconds, so neither side's read timeout fires)."""

    upto: int


class Bye(msgspec.Struct, tag="bye", frozen=True):
    reason: str


Message = (
    Hello
    | Proof
    | Welcome
    | Refused
    | IndexRequest
    | IndexBatch
    | ContentRequest
    | ContentData
    | ContentCopy
    | ContentEnd
    | Ack
    | PullDone
    | Poke
    | Bye
)

_encoder = msgspec.msgpack.Encoder()
_decoder: msgspec.msgpack.Decoder[Message] = msgspec.msgpack.Decoder(Message)


def encode(msg: Message) -> bytes:
    return _encoder.encode(msg)


def decode(payload: bytes) -> Message:
    try:
        return _decoder.decode(payload)
    except msgspec.DecodeError as e:  # ValidationError is a subclass
        raise RemoteProtocolError(f"undecodable message: {e}") from None
    except UnicodeDecodeError as e:  # msgspec lets this through for a tag that is not UTF-8 (fuzzing found it)
        raise RemoteProtocolError(f"undecodable message: a string is not UTF-8 ({e.reason})") from None
