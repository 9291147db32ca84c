"""A sender whose files change while a peer asks for them, against a real daemon (beta).

The version a record describes may be gone from the sender's disk by the time its content is asked for
(deleted, replaced, grown). The sender says so (``ContentEnd.gone``), and the receiver does not hold its
watermark for it: the sender's record of what it has now comes later anyway. A record that fails for a
reason of the receiver's own, or an unexplained one, still holds the watermark, and a lasting session
tries it again by itself, without waiting for the peer to poke.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import blake3
import msgspec
import pytest

from shoal.net.transport import Channel, PeerTimeout
from shoal.proto import messages as m
from shoal.testing.cluster import Cluster
from tests.integration.scripted import record, run, session

BIG = b"x" * 100_000  # more than rides inline: beta asks for its content


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c", names=("alpha", "beta")) as c:
        c.write_config()
        c.start("beta")
        yield c


async def recv_until(ch: Channel, deadline: float) -> m.Message | None:
    """The next message, or None once ``deadline`` (monotonic) has passed."""
    try:
        return await ch.recv(max(0.01, deadline - time.monotonic()))
    except PeerTimeout:
        return None


def offer_two(net: Cluster, end: m.ContentEnd, linger_s: float) -> list[m.Message]:
    """As alpha, offer beta a large file (seq 1) whose content request is answered with ``end``, and a
    small inline one (seq 2). Returns what beta sent from its first content request on, up to
    ``linger_s`` after its PullDone (answering a second index request with an empty page)."""
    seen: list[m.Message] = []

    async def script() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            big = record("%d%/big", BIG)
            small = msgspec.structs.replace(record("%d%/small", b"small"), seq=2)
            asked = 0
            done_at: float | None = None
            while True:
                msg = await recv_until(ch, time.monotonic() + 10 if done_at is None else done_at + linger_s)
                if msg is None:
                    break
                if isinstance(msg, m.IndexRequest):
                    asked += 1
                    if asked == 1:
                        await ch.send(m.IndexBatch([big, small], [None, b"small"], 2, False))
                        continue
                    await ch.send(m.IndexBatch([], [], 2, False))
                seen.append(msg)
                if isinstance(msg, m.ContentRequest):
                    await ch.send(msgspec.structs.replace(end, id=msg.id))
                elif isinstance(msg, m.PullDone):
                    done_at = time.monotonic()
            await ch.send(m.Bye("done"))

    run(script)
    return seen


def test_a_version_gone_from_the_sender_does_not_hold_the_pull(net: Cluster) -> None:
    seen = offer_two(net, m.ContentEnd(0, "changed since it was recorded", gone=True), linger_s=0.5)
    requests = [x for x in seen if isinstance(x, m.ContentRequest)]
    assert len(requests) == 1 and requests[0].path == "%d%/big" and requests[0].size == len(BIG)
    assert m.Ack(2) in seen  # the watermark moved past the gone version
    done = next(x for x in seen if isinstance(x, m.PullDone))
    assert done.problems == [] and done.applied == 1, done
    beta = net.nodes["beta"].data
    assert (beta / "small").read_bytes() == b"small" and not (beta / "big").exists()
    assert " WARNING " not in net.log_text("beta")
    assert "not taken from alpha: changed since it was recorded there" in net.log_text("beta")


def test_a_failure_without_explanation_holds_the_pull_and_is_tried_again_unasked(net: Cluster) -> None:
    """No Ack (the watermark stays before the record), and beta asks again by itself, though alpha
    never pokes it."""
    seen = offer_two(net, m.ContentEnd(0, "read error: Input/output error"), linger_s=5.0)
    done = next(x for x in seen if isinstance(x, m.PullDone))
    assert any("read error" in p for p in done.problems), done
    before, after = seen[: seen.index(done)], seen[seen.index(done) + 1 :]
    assert not any(isinstance(x, m.Ack) for x in before), seen
    again = [x for x in after if isinstance(x, m.IndexRequest)]
    assert again and again[0].since == 0, seen
    assert m.Ack(2) in after  # the second try (an empty page now) let the watermark move
    assert "read error: Input/output error (from alpha)" in net.log_text("beta")


def test_the_sender_answers_gone_for_a_version_it_no_longer_has(net: Cluster) -> None:
    beta = net.nodes["beta"].data
    contents = {"here": b"0123456789", "grown": b"short", "missing": b"0123456789", "unknown": b"any size"}
    for name, data in contents.items():
        (beta / name).write_bytes(data)
    (beta / "adir").mkdir()
    assert net.run("beta", "check").returncode == 0  # beta serves only versions it holds a record of
    (beta / "missing").unlink()
    answers: dict[str, m.Message] = {}

    async def script() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            asks = {"here": 10, "grown": 5, "missing": 10, "adir": 0, "unknown": -1}
            (beta / "grown").write_bytes(b"longer than five")
            for i, (name, size) in enumerate(asks.items()):
                digest = blake3.blake3(contents.get(name, b"")).digest()
                await ch.send(m.ContentRequest(i, f"%d%/{name}", digest, [], size))
            data: dict[int, bytes] = {}
            while sum(isinstance(a, m.ContentEnd) for a in answers.values()) < len(asks):
                msg = await ch.recv(10)
                if isinstance(msg, m.IndexRequest):
                    await ch.send(m.IndexBatch([], [], 0, False))
                elif isinstance(msg, m.ContentData):
                    data[msg.id] = data.get(msg.id, b"") + msg.data
                elif isinstance(msg, m.ContentEnd):
                    name = list(asks)[msg.id]
                    answers[name] = msg
                    answers[f"{name} data"] = m.ContentData(msg.id, data.get(msg.id, b""))
            await ch.send(m.Bye("done"))

    run(script)
    assert answers["here"] == m.ContentEnd(0, None) and answers["here data"] == m.ContentData(0, b"0123456789")
    assert answers["unknown"] == m.ContentEnd(4, None) and answers["unknown data"] == m.ContentData(4, b"any size")
    for name in ("grown", "missing", "adir"):
        end = answers[name]
        assert isinstance(end, m.ContentEnd) and end.gone and end.error, (name, end)
        assert answers[f"{name} data"] == m.ContentData(end.id, b""), name  # nothing of it was sent
