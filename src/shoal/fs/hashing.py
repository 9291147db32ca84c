"""Content hashing: BLAKE3 of a regular file, read without following symlinks and checked for races.

Owns: opening a file safely for reading and telling whether it changed while being read.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass

import blake3

from shoal.transfer import delta

_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Hashed:
    digest: bytes
    st: os.stat_result  #: fstat taken after reading, consistent with the digest
    stable: bool  #: no change seen between the stat before and after reading
    chunks: list[delta.Chunk] | None = None  #: chunk map, for files of at least DELTA_MIN_BYTES


def _sig(st: os.stat_result) -> tuple[int, int, int, int]:
    return st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino


def _read_once(fd: int, size: int, previous: list[delta.Chunk] | None) -> tuple[bytes, list[delta.Chunk] | None]:
    if size >= delta.DELTA_MIN_BYTES:
        # Large files may later travel as deltas: take the chunk map in the same pass.
        return delta.hash_and_chunks(fd, previous)
    h = blake3.blake3()
    # A small file is read with one call: asking for one byte more than its size, a short read means end
    # of file. Only a file that grew needs more calls.
    want, offset = size + 1, 0
    while chunk := os.pread(fd, want, offset):
        h.update(chunk)
        offset += len(chunk)
        if len(chunk) < want:
            break
        want = _CHUNK
    return h.digest(), None


def hash_file(path: str, previous: list[delta.Chunk] | None = None, attempts: int = 3) -> Hashed:
    """Hash ``path``; raise OSError if it cannot be opened. A file that changes while it is read is read
    again, up to ``attempts`` times; the last result is returned with ``stable=False`` if it never settled.
    ``previous``: the chunk map of the version recorded before, to guide the chunking of a large file."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        before = os.fstat(fd)
        if not stat.S_ISREG(before.st_mode):
            raise OSError(0, "not a regular file any more")
        for _ in range(attempts):
            digest, chunks = _read_once(fd, before.st_size, previous)
            after = os.fstat(fd)
            if _sig(after) == _sig(before):
                return Hashed(digest, after, True, chunks)
            before = after
        return Hashed(digest, after, False, chunks)
    finally:
        os.close(fd)
