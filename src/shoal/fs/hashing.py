"""Content hashing: BLAKE3 of a regular file, read without following symlinks and checked for races.

Owns: opening a file safely for reading and telling whether it changed while being read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import blake3

_CHUNK = 1 << 20
_MMAP_FROM = 8 << 20


@dataclass(frozen=True, slots=True)
class Hashed:
    digest: bytes
    st: os.stat_result  #: fstat taken after reading, consistent with the digest
    stable: bool  #: no change seen between the stat before and after reading


def _sig(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def hash_file(path: str, attempts: int = 3) -> Hashed:
    """Hash ``path``; raise OSError if it cannot be opened. A file that changes while it is read is read
    again, up to ``attempts`` times; the last result is returned with ``stable=False`` if it never settled."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(0, "not a regular file any more")
        for attempt in range(attempts):
            h = blake3.blake3(max_threads=blake3.blake3.AUTO)  # threads only pay off for large files
            if before.st_size >= _MMAP_FROM:
                h.update_mmap(f"/proc/self/fd/{fd}")
            else:
                if attempt:
                    os.lseek(fd, 0, os.SEEK_SET)
                # A small file is read with one call: asking for one byte more than its size, a short
                # read means end of file. Only a file that grew needs more calls.
                want = before.st_size + 1 if before.st_size < _CHUNK else _CHUNK
                while chunk := os.read(fd, want):
                    h.update(chunk)
                    if len(chunk) < want:
                        break
                    want = _CHUNK
            after = os.fstat(fd)
            if _sig(after) == _sig(before):
                return Hashed(h.digest(), after, True)
            before = after
        return Hashed(h.digest(), after, False)
    finally:
        os.close(fd)
