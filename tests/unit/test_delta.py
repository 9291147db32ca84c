"""Chunk deltas: a mid-file rewrite sends about what changed, and the plan rebuilds the file exactly."""

from __future__ import annotations

import os
import random
from pathlib import Path

import blake3
import pytest

from shoal.transfer import delta


def rebuild(old: Path, new: Path) -> tuple[bytes, int]:
    with open(old, "rb") as f:
        chunks = {c.digest: c for c in delta.chunks_of(f.fileno())}
        old_data = old.read_bytes()
    out, literal = bytearray(), 0
    with open(new, "rb") as f:
        for piece in delta.plan(f.fileno(), set(chunks)):
            if isinstance(piece, delta.Literal):
                out += piece.data
                literal += len(piece.data)
            else:
                c = chunks[piece.digest]
                out += old_data[c.offset : c.offset + c.length]
    return bytes(out), literal


def test_mid_file_rewrite(tmp_path: Path) -> None:
    data = bytearray(os.urandom(16 << 20))
    (tmp_path / "old").write_bytes(data)
    data[8 << 20 : 9 << 20] = os.urandom(1 << 20)
    (tmp_path / "new").write_bytes(data)
    out, literal = rebuild(tmp_path / "old", tmp_path / "new")
    assert out == bytes(data)
    assert (1 << 20) <= literal < (2 << 20)


def test_insertion_shifts_only_nearby_chunks(tmp_path: Path) -> None:
    data = os.urandom(8 << 20)
    (tmp_path / "old").write_bytes(data)
    new = data[: 3 << 20] + b"inserted!" + data[3 << 20 :]
    (tmp_path / "new").write_bytes(new)
    out, literal = rebuild(tmp_path / "old", tmp_path / "new")
    assert out == new and literal < (1 << 20)


def test_whole_file_when_the_receiver_has_nothing(tmp_path: Path) -> None:
    data = os.urandom(3 * delta.PIECE + 5)
    (tmp_path / "f").write_bytes(data)
    with open(tmp_path / "f", "rb") as f:
        pieces = list(delta.plan(f.fileno(), set()))
    assert b"".join(p.data for p in pieces if isinstance(p, delta.Literal)) == data
    assert len(pieces) == 4


def test_blockwise_chunking_equals_whole_buffer(tmp_path: Path) -> None:
    data = os.urandom((5 << 20) + 12345)
    (tmp_path / "f").write_bytes(data)
    whole = [(c.offset, c.length) for c in delta._chunker().cut_buf(data)]
    with open(tmp_path / "f", "rb") as f:
        for block in (1 << 20, 3 << 20, 64 << 20):
            got = [(off, length) for _, off, length, _ in delta._chunks(f.fileno(), block)]
            assert got == whole, block


def test_hash_and_chunks_read_ahead_sees_every_byte_once(tmp_path: Path) -> None:
    # Sizes around the block size: the last read may be short, empty, or a whole block.
    for size in (0, 1, delta.BLOCK - 1, delta.BLOCK, delta.BLOCK + 1, 2 * delta.BLOCK, (2 * delta.BLOCK) + 7777):
        data = os.urandom(size)
        (tmp_path / "f").write_bytes(data)
        with open(tmp_path / "f", "rb") as f:
            digest, chunks = delta.hash_and_chunks(f.fileno())
            assert digest == blake3.blake3(data).digest(), size
            assert chunks == delta.chunks_of(f.fileno()), size
        assert b"".join(data[c.offset : c.offset + c.length] for c in chunks) == data, size
        assert all(c.digest == delta.digest(data[c.offset : c.offset + c.length]) for c in chunks), size


@pytest.mark.parametrize("seed", range(12))
def test_chunking_guided_by_the_old_map_equals_chunking_afresh(tmp_path: Path, seed: int) -> None:
    """Whatever the edit (rewrite in place, insert, delete, append, truncate, a new file of the same size),
    the guided chunker cuts exactly where FastCDC over the whole file cuts, and sees every byte once."""
    rng = random.Random(seed)
    old = rng.randbytes(rng.randint(0, 3 << 20))
    new = bytearray(old)
    for _ in range(rng.randint(1, 3)):
        at = rng.randint(0, len(new))
        n = rng.randint(1, 300_000)
        kind = rng.choice(["rewrite", "insert", "delete", "append", "truncate", "replace"])
        if kind == "rewrite":
            new[at : at + n] = rng.randbytes(len(new[at : at + n]))
        elif kind == "insert":
            new[at:at] = rng.randbytes(n)
        elif kind == "delete":
            del new[at : at + n]
        elif kind == "append":
            new += rng.randbytes(n)
        elif kind == "truncate":
            del new[at:]
        else:
            new = bytearray(rng.randbytes(len(new)))
    (tmp_path / "old").write_bytes(old)
    (tmp_path / "new").write_bytes(new)
    with open(tmp_path / "old", "rb") as f:
        previous = delta.chunks_of(f.fileno())
    with open(tmp_path / "new", "rb") as f:
        for block in (300_000, 1 << 20, delta.BLOCK):
            afresh = [(d, off, n) for d, off, n, _ in delta._chunks(f.fileno(), block)]
            seen = bytearray()
            guided = [(d, off, n) for d, off, n, _ in delta._guided_chunks(f.fileno(), previous, block, seen.extend)]
            assert guided == afresh, (seed, block)
            assert seen == new, (seed, block)
        digest, chunks = delta.hash_and_chunks(f.fileno(), previous)
        assert digest == blake3.blake3(new).digest() and [(c.digest, c.offset, c.length) for c in chunks] == afresh
