"""Group key files, as csync2 -k writes them: 64 characters of [A-Za-z0-9._], a newline, mode 0600."""

from __future__ import annotations

import os
import secrets

from shoal.errors import ShoalError

KEY_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._"
KEY_LENGTH = 64


def new_key() -> str:
    return "".join(secrets.choice(KEY_ALPHABET) for _ in range(KEY_LENGTH))


def write_key_file(path: str) -> None:
    """Create ``path`` with a fresh key; refuse to overwrite anything already there."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    except FileExistsError:
        raise ShoalError(f"{path} already exists; refusing to overwrite a key file") from None
    except OSError as e:
        raise ShoalError(f"cannot create key file {path}: {e.strerror or e}") from None
    try:
        os.write(fd, (new_key() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
