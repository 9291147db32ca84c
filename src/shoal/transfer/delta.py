"""Content-defined chunk deltas (FastCDC chunks named by truncated BLAKE3).

Owns: cutting a file into chunks, and planning what to send given the chunks the receiver already has.
A rewrite in the middle of a large file changes only the chunks it touches (plus one on each side), so
rewriting 1 MiB of a 64 MiB file sends about 1.2 MiB plus 16 bytes per chunk of signatures.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import blake3

if TYPE_CHECKING:
    from pyfastcdc import FastCDC

DELTA_MIN_BYTES = 1 << 20  #: smaller files always travel whole
AVG_CHUNK = 64 << 10
DIGEST_BYTES = 16
PIECE = 1 << 20  #: literal data travels in pieces of at most this size
BLOCK = 8 << 20  #: files are read and chunked this much at a time


@functools.cache
def _chunker() -> FastCDC:
    """The FastCDC cutter, made at first use: only large files are chunked, and importing it costs
    ~10 ms that a sync of small files should not pay."""
    from pyfastcdc import FastCDC

    return FastCDC(avg_size=AVG_CHUNK)


@dataclass(frozen=True, slots=True)
class Chunk:
    digest: bytes
    offset: int
    length: int


def _read_ahead(fd: int, block: int, also: Callable[[bytes], object] | None = None) -> Iterator[bytes]:
    """The open file ``fd`` from its start, ``block`` bytes at a time, each read (and passed to ``also``)
    on a helper thread while the caller works on the one before. The last block is shorter than
    ``block``, possibly empty. Reads and BLAKE3 let go of the GIL; FastCDC does not, so they overlap."""

    def read(offset: int) -> bytes:
        data = os.pread(fd, block, offset)
        if also is not None:
            also(data)
        return data

    with ThreadPoolExecutor(1, thread_name_prefix="shoal-read") as pool:
        ahead = pool.submit(read, 0)
        offset = 0
        while True:
            data = ahead.result()
            offset += len(data)
            if len(data) == block:
                ahead = pool.submit(read, offset)
            yield data
            if len(data) < block:
                return


def _chunks(
    fd: int, block: int = BLOCK, also: Callable[[bytes], object] | None = None
) -> Iterator[tuple[bytes, int, int, memoryview]]:
    """(digest, offset, length, data) for each chunk of the open file ``fd``; ``also`` sees every byte of
    the file once, in order.

    The file is cut ``block`` bytes at a time; the last chunk of a block may be cut short by the block's
    end, so it is carried into the next block and cut again. FastCDC's cut points depend only on the
    bytes from a chunk's start, so the result equals cutting the whole file at once, in bounded memory.
    """
    base = 0  # file offset of buf[0]
    buf = b""
    for more in _read_ahead(fd, block, also):
        eof = len(more) < block
        buf = buf + more if buf else more
        view = memoryview(buf)
        cuts = list(_chunker().cut_buf(view))
        final = cuts if eof else cuts[:-1]
        for c in final:
            piece = view[c.offset : c.offset + c.length]
            yield blake3.blake3(piece).digest(DIGEST_BYTES), base + c.offset, c.length, piece
        if eof:
            return
        keep = cuts[-1].offset if cuts else 0
        base += keep
        buf = bytes(view[keep:])


def _guided_chunks(
    fd: int, old: list[Chunk], block: int = BLOCK, also: Callable[[bytes], object] | None = None
) -> Iterator[tuple[bytes, int, int, memoryview]]:
    """What ``_chunks`` yields, taking the boundaries of ``old`` (the file's previous chunk map) where
    the bytes are unchanged, instead of running FastCDC over them.

    A cut depends only on the bytes from its chunk's start: where an old chunk starts at the same
    offset and its digest matches the bytes there now, the cut is where it was. From a chunk that
    changed, FastCDC runs until one of its cuts lands where an old chunk starts, and the old map is
    followed again from there. The old last chunk was cut by the old end of the file, so it stands
    only where the file still ends there. (A rewrite in place of 1 MiB in a 64 MiB file: FastCDC over
    about 1.3 MiB instead of 64.)"""
    starts = {c.offset: c for c in old}
    old_size = old[-1].offset + old[-1].length if old else 0
    window = 4 * _chunker().max_size  # FastCDC runs this far at a time: its first cut is always inside
    blocks = _read_ahead(fd, block, also)
    buf = b""  # the file's bytes [base, base + len(buf))
    base = pos = 0  # pos: where the next chunk starts
    eof = False

    def reach(upto: int) -> int:
        """Read on until ``buf`` holds the file up to ``upto`` or its end; the offset it holds up to."""
        nonlocal buf, base, eof
        while not eof and base + len(buf) < upto:
            more = next(blocks)
            eof = len(more) < block
            if pos > base:  # what lies before ``pos`` is done with
                buf, base = buf[pos - base :], pos
            buf = buf + more if buf else more
        return base + len(buf)

    while True:
        c = starts.get(pos)
        if c is not None:
            end = pos + c.length
            held = reach(end)
            if end <= held and (end < old_size or (eof and held == end)):
                piece = memoryview(buf)[pos - base : end - base]
                d = blake3.blake3(piece).digest(DIGEST_BYTES)
                if d == c.digest:
                    yield d, pos, c.length, piece
                    pos = end
                    continue
        held = reach(pos + window)
        if held <= pos:
            return
        view = memoryview(buf)[pos - base : held - base]
        cuts = list(_chunker().cut_buf(view))
        at = pos
        for cut in cuts if eof else cuts[:-1]:  # (the last one may be cut by the window's end)
            piece = view[cut.offset : cut.offset + cut.length]
            yield blake3.blake3(piece).digest(DIGEST_BYTES), at, cut.length, piece
            at += cut.length
            if at in starts:
                break
        pos = at


def digest(data: bytes | memoryview) -> bytes:
    """A chunk's name."""
    return blake3.blake3(data).digest(DIGEST_BYTES)


def hash_and_chunks(fd: int, previous: list[Chunk] | None = None) -> tuple[bytes, list[Chunk]]:
    """The whole file's BLAKE3 and its chunk map from one read of the data, so the two agree. With
    ``previous`` (the chunk map of the version before), its boundaries are checked rather than cut
    again where the bytes did not change.

    The whole-file hash is taken block by block beside the reads, on the read-ahead thread (64 MiB:
    about 0.1 s instead of 0.25 s for one thread feeding each chunk to a multi-threaded hasher)."""
    whole = blake3.blake3()
    pieces = _guided_chunks(fd, previous, also=whole.update) if previous else _chunks(fd, also=whole.update)
    chunks = [Chunk(d, offset, length) for d, offset, length, _ in pieces]
    return whole.digest(), chunks


def chunks_of(fd: int) -> list[Chunk]:
    """The chunks of the open file ``fd``."""
    return [Chunk(digest, offset, length) for digest, offset, length, _ in _chunks(fd)]


def stored(rows: Iterable[tuple[bytes, int, int]]) -> list[Chunk]:
    """A chunk map as the state database keeps it: (digest, offset, length) rows."""
    return [Chunk(d, offset, length) for d, offset, length in rows]


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
