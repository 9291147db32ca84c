"""The in-channel authentication of design.md section 3, as pure functions.

Both sides sign the same transcript with their node key and MAC it with each group key. The
transcript binds both nonces, both certificate fingerprints and the group names, so a proof cannot be
replayed into another session, relayed by a node without the keys, or moved to another certificate.
Group keys never cross the wire.
"""

from __future__ import annotations

import hashlib
import hmac

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.proto.errors import RemoteProtocolError

_LABEL = b"shoal handshake v1\x00"


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


def verify(cert_der: bytes, signature: bytes, data: bytes, role: str) -> None:
    """Check ``signature`` against the public key of ``cert_der``; RemoteProtocolError if it fails."""
    try:
        public = x509.load_der_x509_certificate(cert_der).public_key()
    except ValueError:
        raise RemoteProtocolError("the peer's certificate cannot be parsed") from None
    if not isinstance(public, ed25519.Ed25519PublicKey):
        raise RemoteProtocolError("the peer's certificate does not hold an Ed25519 key")
    try:
        public.verify(signature, role.encode() + b"\x00" + data)
    except InvalidSignature:
        raise RemoteProtocolError("the peer's node-key proof is invalid") from None


def group_mac(group_key: bytes, data: bytes, role: str, group: str) -> bytes:
    return hmac.new(group_key, role.encode() + b"\x00" + group.encode() + b"\x00" + data, hashlib.sha256).digest()


def mac_ok(group_key: bytes, data: bytes, role: str, group: str, mac: bytes) -> bool:
    return hmac.compare_digest(group_mac(group_key, data, role, group), mac)
