"""Content-defined chunk deltas (FastCDC chunks named by truncated BLAKE3).

Owns: cutting a file into chunks, and planning what to send given the chunks the receiver already has.
A rewrite in the middle of a large file changes only the chunks it touches (plus one on each side), so
rewriting 1 MiB of a 64 MiB file sends about 1.2 MiB plus 16 bytes per chunk of signatures.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import blake3
from pyfastcdc import FastCDC

DELTA_MIN_BYTES = 1 << 20  #: smaller files always travel whole
AVG_CHUNK = 64 << 10
DIGEST_BYTES = 16
PIECE = 1 << 20  #: literal data travels in pieces of at most this size

_cdc = FastCDC(avg_size=AVG_CHUNK)


@dataclass(frozen=True, slots=True)
class Chunk:
    digest: bytes
    offset: int
    length: int


def _chunks(fd: int) -> Iterator[tuple[bytes, int, int, memoryview]]:
    """(digest, offset, length, data) for each chunk of the open file ``fd``, read from its start."""
    with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as stream:
        stream.seek(0)
        for c in _cdc.cut_stream(stream):
            yield blake3.blake3(c.data).digest(DIGEST_BYTES), c.offset, c.length, c.data


def chunks_of(fd: int) -> list[Chunk]:
    """The chunks of the open file ``fd``."""
    return [Chunk(digest, offset, length) for digest, offset, length, _ in _chunks(fd)]


@dataclass(frozen=True, slots=True)
class Literal:
    data: bytes


@dataclass(frozen=True, slots=True)
class Reference:
    digest: bytes
    length: int


def plan(fd: int, have: set[bytes]) -> Iterator[Literal | Reference]:
    """What to send for the file ``fd`` to a receiver holding the chunks ``have``: the whole file in
    pieces when it holds nothing, else a reference for each chunk it has and the bytes of the others."""
    if not have:
        offset = 0
        while piece := os.pread(fd, PIECE, offset):
            yield Literal(piece)
            offset += len(piece)
        return
    for digest, _, length, data in _chunks(fd):
        yield Reference(digest, length) if digest in have else Literal(bytes(data))
