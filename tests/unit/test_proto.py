"""The sans-IO protocol: frames, typed decoding, the transition table, the auth proofs."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.errors import ProtocolError
from shoal.net.identity import create_identity, load_cert_der, load_private_key
from shoal.proto import auth
from shoal.proto import messages as m
from shoal.proto.errors import LocalProtocolError, RemoteProtocolError
from shoal.proto.frames import FrameDecoder, frame
from shoal.proto.session import TRANSITIONS, Connection, Role, State


def hello(node: str = "a") -> m.Hello:
    return m.Hello(m.PROTOCOL_VERSION, node, b"n" * 32, b"cert", ["g"], "db", True)


def pair() -> tuple[Connection, Connection]:
    return Connection(Role.CLIENT), Connection(Role.SERVER)


def deliver(src: Connection, dst: Connection, msg: m.Message) -> m.Message:
    dst.receive_data(src.send(msg))
    got = dst.next_event()
    assert got is not None
    return got


def test_handshake_then_open_traffic() -> None:
    c, s = pair()
    assert deliver(c, s, hello("a")) == hello("a")
    deliver(s, c, hello("b"))
    deliver(c, s, m.Proof(b"sig", {"g": b"mac"}))
    deliver(s, c, m.Proof(b"sig", {"g": b"mac"}))
    deliver(s, c, m.Welcome(["g"]))
    assert c.state is State.OPEN and s.state is State.OPEN
    deliver(c, s, m.IndexRequest(0, 100))
    deliver(s, c, m.IndexBatch([], [], 0, False))
    deliver(c, s, m.Bye("done"))
    assert s.state is State.CLOSED


@pytest.mark.parametrize("msg", [m.IndexRequest(0, 1), m.Proof(b"", {}), m.Welcome([]), m.PullDone(0, [], [])])
def test_nothing_but_hello_before_the_handshake(msg: m.Message) -> None:
    c, s = pair()
    s.receive_data(frame(m.encode(msg)))
    with pytest.raises(RemoteProtocolError, match="unexpected"):
        s.next_event()
    with pytest.raises(LocalProtocolError):
        c.send(msg)


def test_replayed_hello_is_refused() -> None:
    c, s = pair()
    deliver(c, s, hello())
    s.receive_data(frame(m.encode(hello())))
    with pytest.raises(RemoteProtocolError, match="unexpected Hello"):
        s.next_event()


def test_only_the_server_refuses() -> None:
    c, s = pair()
    deliver(c, s, hello())
    deliver(s, c, m.Refused("no"))
    assert c.state is State.CLOSED
    with pytest.raises(LocalProtocolError):
        Connection(Role.CLIENT).send(m.Refused("clients do not refuse"))


def test_transition_table_covers_every_message_in_open_state() -> None:
    for role in Role:
        for kind in (
            m.IndexRequest,
            m.IndexBatch,
            m.ContentRequest,
            m.ContentData,
            m.ContentCopy,
            m.ContentEnd,
            m.Ack,
            m.PullDone,
        ):
            assert TRANSITIONS[role, State.OPEN, "me", kind] is State.OPEN
            assert TRANSITIONS[role, State.OPEN, "peer", kind] is State.OPEN


def test_oversize_frame_is_refused_before_buffering() -> None:
    d = FrameDecoder(limit=1024)
    d.feed((1025).to_bytes(4, "big") + b"x" * 10)
    with pytest.raises(RemoteProtocolError, match="exceeds the limit"):
        d.next_frame()
    with pytest.raises(LocalProtocolError):
        frame(b"x" * 1025, limit=1024)


def test_frames_split_anywhere() -> None:
    payloads = [b"", b"a", b"x" * 70000]
    data = b"".join(frame(p) for p in payloads)
    d = FrameDecoder()
    out = []
    for i in range(0, len(data), 7):
        d.feed(data[i : i + 7])
        while (f := d.next_frame()) is not None:
            out.append(f)
    assert out == payloads and d.buffered == 0


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"\xc1",
        b"\x81\xa4type\xa1\xff",  # a tag that is not UTF-8 (msgspec raised UnicodeDecodeError; found by fuzzing)
        msgspec.msgpack.encode({"type": "exec", "cmd": "rm -rf /"}),
        msgspec.msgpack.encode({"type": "hello", "version": "one"}),
        msgspec.msgpack.encode(["not", "a", "map"]),
    ],
)
def test_undecodable_messages_are_protocol_errors(payload: bytes) -> None:
    with pytest.raises(RemoteProtocolError):
        m.decode(payload)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300))
def test_decoder_raises_only_protocol_errors(data: bytes) -> None:
    c = Connection(Role.SERVER)
    c.receive_data(data)
    try:
        while c.next_event() is not None:
            pass
    except ProtocolError:
        pass


def test_auth_proofs(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    ia, ib = create_identity(str(tmp_path / "a"), "a"), create_identity(str(tmp_path / "b"), "b")
    cert_a = load_cert_der(ia)
    assert auth.fingerprint(cert_a) == ia.fingerprint == hashlib.sha256(cert_a).hexdigest()
    t = auth.transcript(b"1" * 32, b"2" * 32, ia.fingerprint, ib.fingerprint, ["g2", "g1"])
    assert t == auth.transcript(b"1" * 32, b"2" * 32, ia.fingerprint, ib.fingerprint, ["g1", "g2"])
    sig = auth.sign(load_private_key(ia), t, "client")
    auth.verify(cert_a, sig, t, "client")
    with pytest.raises(RemoteProtocolError):
        auth.verify(cert_a, sig, t, "server")  # a client proof cannot be replayed as the server's
    with pytest.raises(RemoteProtocolError):
        auth.verify(load_cert_der(ib), sig, t, "client")  # a copied certificate without its key fails
    other = auth.transcript(b"1" * 32, b"3" * 32, ia.fingerprint, ib.fingerprint, ["g1", "g2"])
    with pytest.raises(RemoteProtocolError):
        auth.verify(cert_a, sig, other, "client")  # nor into another session
    key = os.urandom(64)
    mac = auth.group_mac(key, t, "client", "g1")
    assert auth.mac_ok(key, t, "client", "g1", mac)
    assert not auth.mac_ok(key, t, "client", "g2", mac)
    assert not auth.mac_ok(os.urandom(64), t, "client", "g1", mac)


def test_wire_records_round_trip_and_unknown_kinds_are_refused() -> None:
    from shoal.engine.wire import to_record, to_wire
    from shoal.model.records import Kind, Record

    rec = Record("%d%/a", Kind.SYMLINK, 0, 0o777, 1, 2, "u", "g", 5, None, "t", 0, (("a", 1), ("b", 2)), b"x", True)
    batch = m.decode(m.encode(m.IndexBatch([to_wire(rec)], [None], 1, False)))
    assert isinstance(batch, m.IndexBatch)
    back = to_record(batch.records[0])
    assert back == rec and back.kind is Kind.SYMLINK and isinstance(back.vector[0], tuple)
    for bad in (-1, len(Kind), 99):
        w = msgspec.structs.replace(to_wire(rec), kind=bad)
        with pytest.raises(ValueError, match="not a valid Kind"):
            to_record(w)
