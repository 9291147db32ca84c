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
from shoal.net.identity import create_identity, load_identity, load_private_key
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
    cert_a = ia.cert_der
    assert load_identity(str(tmp_path / "a")) == ia
    assert ia.node == "a"
    assert auth.fingerprint(cert_a) == ia.fingerprint == hashlib.sha256(cert_a).hexdigest()
    t = auth.transcript(b"1" * 32, b"2" * 32, ia.fingerprint, ib.fingerprint, ["g2", "g1"])
    assert t == auth.transcript(b"1" * 32, b"2" * 32, ia.fingerprint, ib.fingerprint, ["g1", "g2"])
    sig = auth.sign(load_private_key(ia), t, "client")
    auth.verify(cert_a, sig, t, "client")
    with pytest.raises(RemoteProtocolError):
        auth.verify(cert_a, sig, t, "server")  # a client proof cannot be replayed as the server's
    with pytest.raises(RemoteProtocolError):
        auth.verify(ib.cert_der, sig, t, "client")  # a copied certificate without its key fails
    other = auth.transcript(b"1" * 32, b"3" * 32, ia.fingerprint, ib.fingerprint, ["g1", "g2"])
    with pytest.raises(RemoteProtocolError):
        auth.verify(cert_a, sig, other, "client")  # nor into another session
    key = os.urandom(64)
    mac = auth.group_mac(key, t, "client", "g1")
    assert auth.mac_ok(key, t, "client", "g1", mac)
    assert not auth.mac_ok(key, t, "client", "g2", mac)
    assert not auth.mac_ok(os.urandom(64), t, "client", "g1", mac)


def _cert(key: object, names: int = 1, extensions: bool = True) -> bytes:
    """A self-signed certificate for ``key`` (a private key), as DER."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519
    from cryptography.x509.oid import NameOID

    attrs = [x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, f"unit {i} " + "x" * 60) for i in range(names)]
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "n"), *attrs])
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())  # type: ignore[attr-defined]
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    if extensions:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName("n")]), critical=False)
    algorithm = None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()
    assert isinstance(key, ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey)
    return builder.sign(key, algorithm).public_bytes(serialization.Encoding.DER)


@pytest.mark.parametrize("names", [0, 1, 40])  # 40 long names: lengths in the long DER form
@pytest.mark.parametrize("extensions", [True, False])
def test_the_key_read_off_a_certificate_is_the_one_the_x509_parser_finds(names: int, extensions: bool) -> None:
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    key = ed25519.Ed25519PrivateKey.generate()
    der = _cert(key, names, extensions)
    raw = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert auth.ed25519_key(der) == raw
    parsed = x509.load_der_x509_certificate(der).public_key()
    assert isinstance(parsed, ed25519.Ed25519PublicKey)
    assert parsed.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw) == raw
    # cut anywhere, or with anything after it: not a certificate
    for cut in range(len(der)):
        assert auth.ed25519_key(der[:cut]) is None
    assert auth.ed25519_key(der + b"\x00") is None


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_a_damaged_certificate_gives_the_key_or_nothing_never_an_exception(data: st.DataObject) -> None:
    der = bytearray(CERT_DER)
    for _ in range(data.draw(st.integers(1, 4))):
        der[data.draw(st.integers(0, len(der) - 1))] = data.draw(st.integers(0, 255))
    got = auth.ed25519_key(bytes(der))
    assert got is None or len(got) == 32


def test_a_certificate_with_another_kind_of_key_is_refused_by_name() -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    der = _cert(ec.generate_private_key(ec.SECP256R1()))
    assert auth.ed25519_key(der) is None
    with pytest.raises(RemoteProtocolError, match="does not hold an Ed25519 key"):
        auth.public_key(der)
    with pytest.raises(RemoteProtocolError, match="cannot be parsed"):
        auth.public_key(b"\x30\x03\x02\x01\x01")


def test_identity_files_made_elsewhere_still_load_or_say_why(tmp_path: Path) -> None:
    """Our own files are read without cryptography's PEM parsers; a certificate or key laid out
    otherwise goes to them."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519

    from shoal.errors import IdentityError

    ident = create_identity(str(tmp_path), "n")
    key = load_private_key(ident)
    assert isinstance(key, ed25519.Ed25519PrivateKey)
    assert auth.ed25519_key(ident.cert_der) == key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    cert_pem = Path(ident.cert_path).read_bytes()
    Path(ident.cert_path).write_bytes(b"a note before the block\n" + cert_pem)  # not exactly one block
    assert load_identity(str(tmp_path)) == ident
    other = ec.generate_private_key(ec.SECP256R1())
    Path(ident.key_path).write_bytes(
        other.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    with pytest.raises(IdentityError, match="is not an Ed25519 key"):
        load_private_key(ident)
    Path(ident.cert_path).write_bytes(_pem_cert(_cert(other)))  # an EC certificate
    with pytest.raises(IdentityError, match="does not hold an Ed25519 key"):
        load_identity(str(tmp_path))


def _pem_cert(der: bytes) -> bytes:
    import base64

    body = base64.encodebytes(der)
    return b"-----BEGIN CERTIFICATE-----\n" + body + b"-----END CERTIFICATE-----\n"


def _ed25519_cert() -> bytes:
    from cryptography.hazmat.primitives.asymmetric import ed25519

    return _cert(ed25519.Ed25519PrivateKey.generate())


CERT_DER = _ed25519_cert()


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
