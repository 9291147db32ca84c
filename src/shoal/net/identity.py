"""This node's identity: an Ed25519 key and a self-signed certificate, and its fingerprint.

Owns: creating, loading and fingerprinting the node's TLS material. Must not: decide trust (pinning
lives with the peer state). The fingerprint is SHA-256 of the DER certificate, in lower-case hex.
"""

from __future__ import annotations

import datetime
import hashlib
import os
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from cryptography.x509.oid import NameOID

from shoal.errors import IdentityError

KEY_FILE = "node.key"
CERT_FILE = "node.crt"
CERT_YEARS = 100


@dataclass(frozen=True, slots=True)
class Identity:
    node: str
    fingerprint: str
    key_path: str
    cert_path: str


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
    return Identity(node, fingerprint_of(cert.public_bytes(serialization.Encoding.DER)), key_path, cert_path)


def load_identity(directory: str) -> Identity:
    key_path, cert_path = os.path.join(directory, KEY_FILE), os.path.join(directory, CERT_FILE)
    try:
        with open(cert_path, "rb") as f:
            cert = x509.load_pem_x509_certificate(f.read())
        st = os.stat(key_path)
    except FileNotFoundError:
        raise IdentityError(f"no node identity in {directory} (run 'shoal init')") from None
    except (OSError, ValueError) as e:
        raise IdentityError(f"cannot load node identity from {directory}: {e}") from None
    if st.st_mode & 0o077:
        raise IdentityError(f"{key_path} is readable by group or others; run: chmod 600 {key_path}")
    attrs = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    node = str(attrs[0].value) if attrs else ""
    return Identity(node, fingerprint_of(cert.public_bytes(serialization.Encoding.DER)), key_path, cert_path)


def load_private_key(ident: Identity) -> ed25519.Ed25519PrivateKey:
    with open(ident.key_path, "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise IdentityError(f"{ident.key_path} is not an Ed25519 key")
    return key


def load_cert_der(ident: Identity) -> bytes:
    with open(ident.cert_path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read()).public_bytes(serialization.Encoding.DER)
