"""An authenticated peer cannot make a daemon (beta) hold without bound what it sends: index pages past
the ones asked for, or requests sent without ever reading the answers, end the session with a warning;
beta keeps serving the real peers."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from shoal.engine.exchange import MAX_REQUESTS_QUEUED
from shoal.net.transport import Channel
from shoal.proto import messages as m
from shoal.testing.cluster import Cluster
from tests.integration.scripted import run, session


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c") as c:
        (c.nodes["beta"].data / "big.bin").write_bytes(b"\xa5" * (1 << 20))
        assert c.run("beta", "check").returncode == 0
        c.start("beta")
        yield c


async def read_until_closed(ch: Channel, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    with pytest.raises(Exception):  # noqa: B017 (closed by beta, however it surfaces)
        while time.monotonic() < deadline:
            await ch.recv(timeout_s)
    assert time.monotonic() < deadline, "beta kept the session open"


def still_serves(c: Cluster) -> None:
    probe = c.nodes["alpha"].data / f"probe-{time.monotonic_ns()}"
    probe.write_text("still served")
    r = c.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (c.nodes["beta"].data / probe.name).read_text() == "still served"


def test_index_pages_past_those_asked_for_end_the_session(net: Cluster) -> None:
    async def attack() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            while not isinstance(await ch.recv(10), m.IndexRequest):
                pass
            page = m.IndexBatch([], [], 1, True)  # "more", for ever
            for _ in range(200):
                ch.writer.write(ch.conn.send(page))
            await ch.writer.drain()
            await read_until_closed(ch, 10)

    run(attack)
    assert "sent an index page nobody asked for" in net.log_text("beta")
    still_serves(net)


def test_requests_sent_without_reading_the_answers_end_the_session(net: Cluster) -> None:
    """Thousands of requests for a 1 MiB file, none of the answers read: beta's sends stall, and the
    requests piling up behind them are cut off at MAX_REQUESTS_QUEUED, not held."""
    digest = blake3.blake3(b"\xa5" * (1 << 20)).digest()

    async def attack() -> None:
        async with session(net, "alpha") as ch:
            ask = m.ContentRequest(1, "%d%/big.bin", digest, [], 1 << 20)
            for i in range(MAX_REQUESTS_QUEUED + 2000):
                ch.writer.write(ch.conn.send(ask))
                if i % 200 == 0:
                    await asyncio.sleep(0)
            await asyncio.sleep(1.0)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and "requests without waiting" not in net.log_text("beta"):
                await asyncio.sleep(0.1)
            ch.writer.transport.abort()  # what we queued will never be sent: do not wait to flush it

    run(attack)
    assert f"sent {MAX_REQUESTS_QUEUED} requests without waiting for answers" in net.log_text("beta")
    still_serves(net)
