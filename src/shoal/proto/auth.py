"""The in-channel authentication of design.md section 3, as pure functions.

Both sides sign the same transcript with their node key and MAC it with each group key. The
transcript binds both nonces, both certificate fingerprints and the group names, so a proof cannot be
replayed into another session, relayed by a node without the keys, or moved to another certificate.
Group keys never cross the wire.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.proto.errors import RemoteProtocolError

_LABEL = b"shoal handshake v1\x00"
#: An Ed25519 SubjectPublicKeyInfo (RFC 8410) up to its 32 key bytes: SEQUENCE { SEQUENCE { OID
#: 1.3.101.112 }, BIT STRING (0 unused bits) }.
_ED25519_SPKI = bytes.fromhex("302a300506032b6570032100")


def fingerprint(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


def transcript(client_nonce: bytes, server_nonce: bytes, client_fp: str, server_fp: str, groups: list[str]) -> bytes:
    parts = [
        _LABEL,
        client_nonce,
        server_nonce,
        client_fp.encode(),
        server_fp.encode(),
        *sorted(g.encode() for g in groups),
    ]
    return b"".join(len(p).to_bytes(4, "big") + p for p in parts)


def sign(key: ed25519.Ed25519PrivateKey, data: bytes, role: str) -> bytes:
    return key.sign(role.encode() + b"\x00" + data)


def _tlv(der: bytes, at: int, tag: int) -> tuple[int, int]:
    """The DER element at ``at``, which must have ``tag``: (where its content starts, where it ends)."""
    if at + 2 > len(der) or der[at] != tag:
        raise ValueError("unexpected element")
    length, at = der[at + 1], at + 2
    if length & 0x80:  # long form: the next (length & 0x7f) bytes hold it, minimal, at most 4
        n = length & 0x7F
        if not 1 <= n <= 4 or at + n > len(der) or der[at] == 0:
            raise ValueError("bad length")
        length, at = int.from_bytes(der[at : at + n], "big"), at + n
        if length < 0x80:
            raise ValueError("bad length")
    if at + length > len(der):
        raise ValueError("element runs past its container")
    return at, at + length


def ed25519_key(cert_der: bytes) -> bytes | None:
    """The raw Ed25519 public key of an X.509 certificate, read off its DER structure (RFC 5280:
    Certificate, tbsCertificate, [version], serial, signature, issuer, validity, subject, then the key
    info), or None when the certificate is not laid out so or holds another kind of key.

    This is all a handshake needs of the peer's certificate, and it spares every command that talks to
    a peer the ~30 ms of importing cryptography's X.509 parser. Anything else goes to that parser."""
    try:
        start, end = _tlv(cert_der, 0, 0x30)
        if end != len(cert_der):
            return None
        at, tbs_end = _tlv(cert_der, start, 0x30)
        if cert_der[at] == 0xA0:  # [0] EXPLICIT version
            at = _tlv(cert_der, at, 0xA0)[1]
        for tag in (0x02, 0x30, 0x30, 0x30, 0x30):  # serial, signature, issuer, validity, subject
            at = _tlv(cert_der, at, tag)[1]
        _, spki_end = _tlv(cert_der, at, 0x30)
    except (ValueError, IndexError):
        return None
    spki = cert_der[at:spki_end]
    if spki_end > tbs_end or len(spki) != len(_ED25519_SPKI) + 32 or not spki.startswith(_ED25519_SPKI):
        return None
    return spki[len(_ED25519_SPKI) :]


def public_key(cert_der: bytes) -> ed25519.Ed25519PublicKey:
    """The certificate's Ed25519 key; RemoteProtocolError if it cannot be parsed or holds another kind."""
    raw = ed25519_key(cert_der)
    if raw is not None:
        try:
            return ed25519.Ed25519PublicKey.from_public_bytes(raw)
        except ValueError:
            raise RemoteProtocolError("the peer's certificate holds an invalid Ed25519 key") from None
    from cryptography import x509

    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        raise RemoteProtocolError("the peer's certificate cannot be parsed") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise RemoteProtocolError("the peer's certificate does not hold an Ed25519 key")
    return public


def verify(cert_der: bytes, signature: bytes, data: bytes, role: str) -> None:
    """Check ``signature`` against the public key of ``cert_der``; RemoteProtocolError if it fails."""
    public = public_key(cert_der)
    try:
        public.verify(signature, role.encode() + b"\x00" + data)
    except InvalidSignature:
        raise RemoteProtocolError("the peer's node-key proof is invalid") from None


def group_mac(group_key: bytes, data: bytes, role: str, group: str) -> bytes:
    return hmac.new(group_key, role.encode() + b"\x00" + group.encode() + b"\x00" + data, hashlib.sha256).digest()


def mac_ok(group_key: bytes, data: bytes, role: str, group: str, mac: bytes) -> bool:
    return hmac.compare_digest(group_mac(group_key, data, role, group), mac)
