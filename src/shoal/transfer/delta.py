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
BLOCK = 16 << 20  #: files are chunked this much at a time

_cdc = FastCDC(avg_size=AVG_CHUNK)


@dataclass(frozen=True, slots=True)
class Chunk:
    digest: bytes
    offset: int
    length: int


def _chunks(fd: int, block: int = BLOCK) -> Iterator[tuple[bytes, int, int, memoryview]]:
    """(digest, offset, length, data) for each chunk of the open file ``fd``.

    The file is cut ``block`` bytes at a time; the last chunk of a block may be cut short by the block's
    end, so it is carried into the next block and cut again. FastCDC's cut points depend only on the
    bytes from a chunk's start, so the result equals cutting the whole file at once, in bounded memory.
    """
    base = 0  # file offset of buf[0]
    buf = b""
    while True:
        more = os.pread(fd, block, base + len(buf))
        eof = len(more) < block
        buf = buf + more if buf else more
        view = memoryview(buf)
        cuts = list(_cdc.cut_buf(view))
        final = cuts if eof else cuts[:-1]
        for c in final:
            piece = view[c.offset : c.offset + c.length]
            yield blake3.blake3(piece).digest(DIGEST_BYTES), base + c.offset, c.length, piece
        if eof:
            return
        keep = cuts[-1].offset if cuts else 0
        base += keep
        buf = bytes(view[keep:])


def digest(data: bytes | memoryview) -> bytes:
    """A chunk's name."""
    return blake3.blake3(data).digest(DIGEST_BYTES)


def hash_and_chunks(fd: int) -> tuple[bytes, list[Chunk]]:
    """The whole file's BLAKE3 and its chunk map from one pass over the data, so the two agree."""
    whole = blake3.blake3(max_threads=blake3.blake3.AUTO)
    chunks = []
    for digest, offset, length, data in _chunks(fd):
        whole.update(data)
        chunks.append(Chunk(digest, offset, length))
    return whole.digest(), chunks


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


def plan(fd: int, have: set[bytes], chunks: list[Chunk] | None = None) -> Iterator[Literal | Reference]:
    """What to send for the file ``fd`` to a receiver holding the chunks ``have``: the whole file in
    pieces when it holds nothing, else a reference for each chunk it has and the bytes of the others.
    With ``chunks`` (the file's chunk map, from a cache) only the literal chunks are read."""
    if not have:
        offset = 0
        while piece := os.pread(fd, PIECE, offset):
            yield Literal(piece)
            offset += len(piece)
        return
    if chunks is not None:
        for c in chunks:
            yield Reference(c.digest, c.length) if c.digest in have else Literal(os.pread(fd, c.length, c.offset))
        return
    for digest, _, length, data in _chunks(fd):
        yield Reference(digest, length) if digest in have else Literal(bytes(data))


def batches(pieces: Iterator[Literal | Reference], max_bytes: int = PIECE) -> Iterator[list[Literal | Reference]]:
    """Group pieces so that one batch holds at most about ``max_bytes`` of literal data."""
    batch: list[Literal | Reference] = []
    size = 0
    for p in pieces:
        batch.append(p)
        if isinstance(p, Literal):
            size += len(p.data)
        if size >= max_bytes or len(batch) >= 4096:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch
