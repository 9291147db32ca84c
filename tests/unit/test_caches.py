"""The replica's short-lived caches stay within their bounds and return only what was put under a key."""

from __future__ import annotations

import threading

from shoal.engine.replica import ChunkCache, InlineCache
from shoal.transfer.delta import Chunk


def test_inline_cache_is_bounded_in_bytes_and_keyed_by_hash() -> None:
    cache = InlineCache(max_bytes=100)
    cache.put("%d%/a", b"h1", b"x" * 60)
    assert cache.get("%d%/a", b"h1") == b"x" * 60
    assert cache.get("%d%/a", b"h2") is None  # another version of the same path
    cache.put("%d%/b", b"h1", b"y" * 60)  # over the budget: the oldest goes
    assert cache.get("%d%/a", b"h1") is None and cache.get("%d%/b", b"h1") == b"y" * 60


def test_inline_cache_from_many_threads() -> None:
    cache = InlineCache(max_bytes=1000)

    def fill(n: int) -> None:
        for i in range(500):
            cache.put(f"%d%/{n}/{i}", b"h", b"z" * 10)

    threads = [threading.Thread(target=fill, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    held = sum(1 for n in range(4) for i in range(500) if cache.get(f"%d%/{n}/{i}", b"h") is not None)
    assert held == 100  # exactly the byte budget's worth


def test_chunk_cache_evicts_least_recently_used() -> None:
    cache = ChunkCache(entries=2)
    one, two, three = [Chunk(b"d", 0, 1)], [Chunk(b"e", 0, 2)], [Chunk(b"f", 0, 3)]
    cache.put(b"1", one)
    cache.put(b"2", two)
    assert cache.get(b"1") == one  # now the most recent
    cache.put(b"3", three)
    assert cache.get(b"2") is None and cache.get(b"1") == one and cache.get(b"3") == three
