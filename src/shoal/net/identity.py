"""This node's identity: an Ed25519 key and a self-signed certificate, and its fingerprint.

Owns: creating, loading and fingerprinting the node's TLS material. Must not: decide trust (pinning
lives with the peer state). The fingerprint is SHA-256 of the DER certificate, in lower-case hex.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import hashlib
import os
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.errors import IdentityError
from shoal.proto.auth import ed25519_key

KEY_FILE = "node.key"
CERT_FILE = "node.crt"
CERT_YEARS = 100
#: A PKCS #8 Ed25519 private key (RFC 8410) up to its 32 key bytes, as ``shoal init`` writes it.
_PKCS8_ED25519 = bytes.fromhex("302e020100300506032b657004220420")

# Loading an identity to talk to peers needs no X.509 or PEM machinery from cryptography (importing
# it costs every such command ~40 ms): our own files are read with the standard library, and anything
# laid out otherwise (a key or certificate made by another tool) goes to cryptography's parsers.


@dataclass(frozen=True, slots=True)
class Identity:
    fingerprint: str
    key_path: str
    cert_path: str
    cert_der: bytes

    @property
    def node(self) -> str:
        """The name the certificate was made for (its common name)."""
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        attrs = x509.load_der_x509_certificate(self.cert_der).subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        return str(attrs[0].value) if attrs else ""


def fingerprint_of(cert_der: bytes) -> str:
    return hashlib.sha256(cert_der).hexdigest()


def format_fingerprint(fp: str) -> str:
    """``ab:cd:...`` for people; configs accept either form."""
    return ":".join(fp[i : i + 2] for i in range(0, len(fp), 2))


def _write_new(path: str, data: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)


def create_identity(directory: str, node: str) -> Identity:
    """Make a new key and certificate for ``node`` in ``directory``; refuse to overwrite existing ones."""
    key_path, cert_path = os.path.join(directory, KEY_FILE), os.path.join(directory, CERT_FILE)
    for p in (key_path, cert_path):
        if os.path.lexists(p):
            raise IdentityError(f"{p} already exists; refusing to overwrite this node's identity")
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from cryptography.x509.oid import NameOID

    key = ed25519.Ed25519PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, node)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=365 * CERT_YEARS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(node)]), critical=False)
        .sign(key, None)
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    try:
        _write_new(key_path, key_pem, 0o600)
        _write_new(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    except OSError as e:
        raise IdentityError(f"cannot write identity in {directory}: {e.strerror or e}") from None
    der = cert.public_bytes(serialization.Encoding.DER)
    return Identity(fingerprint_of(der), key_path, cert_path, der)


def _pem(data: bytes, label: str) -> bytes | None:
    """The DER in ``data`` if it is exactly one PEM block of ``label``, else None."""
    head, tail = f"-----BEGIN {label}-----".encode(), f"-----END {label}-----".encode()
    body = data.strip()
    if not body.startswith(head) or not body.endswith(tail):
        return None
    try:
        return base64.b64decode(b"".join(body[len(head) : -len(tail)].split()), validate=True)
    except binascii.Error:
        return None


def _cert_der(pem: bytes) -> bytes:
    """The DER form of a PEM certificate holding an Ed25519 key; ValueError if it is not one."""
    der = _pem(pem, "CERTIFICATE")
    if der is not None and ed25519_key(der) is not None:
        return der
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert = x509.load_pem_x509_certificate(pem)  # ValueError with the parser's reason
    if not isinstance(cert.public_key(), ed25519.Ed25519PublicKey):
        raise ValueError("the certificate does not hold an Ed25519 key")
    return cert.public_bytes(serialization.Encoding.DER)


def load_identity(directory: str) -> Identity:
    key_path, cert_path = os.path.join(directory, KEY_FILE), os.path.join(directory, CERT_FILE)
    try:
        with open(cert_path, "rb") as f:
            der = _cert_der(f.read())
        st = os.stat(key_path)
    except FileNotFoundError:
        raise IdentityError(f"no node identity in {directory} (run 'shoal init')") from None
    except (OSError, ValueError) as e:
        raise IdentityError(f"cannot load node identity from {directory}: {e}") from None
    if st.st_mode & 0o077:
        raise IdentityError(f"{key_path} is readable by group or others; run: chmod 600 {key_path}")
    return Identity(fingerprint_of(der), key_path, cert_path, der)


def load_private_key(ident: Identity) -> ed25519.Ed25519PrivateKey:
    with open(ident.key_path, "rb") as f:
        pem = f.read()
    der = _pem(pem, "PRIVATE KEY")
    if der is not None and len(der) == len(_PKCS8_ED25519) + 32 and der.startswith(_PKCS8_ED25519):
        return ed25519.Ed25519PrivateKey.from_private_bytes(der[len(_PKCS8_ED25519) :])
    from cryptography.hazmat.primitives import serialization

    key = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise IdentityError(f"{ident.key_path} is not an Ed25519 key")
    return key
