"""Nodes in network namespaces of their own: a node cut off misses changes and catches up when healed;
a node killed mid-stream restarts and converges. Root only; skipped with the reason otherwise."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.testing import waiting
from shoal.testing.netns import NetnsCluster, available

pytestmark = [pytest.mark.netns, pytest.mark.skipif(available() is not None, reason=available() or "")]

NAMES = ("alpha", "beta", "gamma")


def eventually(check: Callable[[], bool], timeout_s: float = 30.0, what: str = "condition") -> float:
    return waiting.eventually(check, timeout_s, what)


@pytest.fixture
def net(tmp_path: Path) -> Iterator[NetnsCluster]:
    c = NetnsCluster(tmp_path / "c")
    try:
        yield c
    finally:
        c.close()
    leftover = (
        [line for line in Path("/run/netns").iterdir() if line.name.startswith(c.tag)]
        if Path("/run/netns").exists()
        else []
    )
    assert leftover == [], leftover


def holds(c: NetnsCluster, node: str, rel: str, text: str) -> bool:
    return (c.nodes[node].data / rel).read_text() == text


def test_a_cut_off_node_catches_up_when_healed(net: NetnsCluster) -> None:
    for n in NAMES:
        net.start(n, watch=True)
    a = net.nodes["alpha"].data
    (a / "one").write_text("1\n")
    for n in ("beta", "gamma"):
        eventually(lambda n=n: holds(net, n, "one", "1\n"), what=f"one on {n}")
    net.cut("gamma")
    (a / "two").write_text("2\n")
    eventually(lambda: holds(net, "beta", "two", "2\n"), what="two on beta")
    time.sleep(1.0)
    assert not (net.nodes["gamma"].data / "two").exists()  # really cut off
    (net.nodes["gamma"].data / "three").write_text("3\n")  # written during the partition
    net.heal("gamma")
    eventually(lambda: holds(net, "gamma", "two", "2\n"), what="two on gamma after the heal")
    eventually(
        lambda: holds(net, "alpha", "three", "3\n") and holds(net, "beta", "three", "3\n"),
        what="gamma's write everywhere",
    )


def test_a_killed_receiver_restarts_and_converges(net: NetnsCluster) -> None:
    for n in ("alpha", "beta"):
        net.start(n, watch=True)
    a = net.nodes["alpha"].data
    for i in range(300):
        (a / f"f{i}").write_bytes(b"x" * 4096)
    net.kill("beta")
    net.start("beta", watch=True)
    b = net.nodes["beta"].data
    eventually(lambda: all(holds_bytes(b / f"f{i}") for i in range(300)), what="all files whole on beta")
    # what the kill interrupted is left only under temp names, never at a managed path (removed by a
    # later scan once an hour old)
    assert all(Path(t).name.startswith(".shoal-tmp.") for t in net.temp_files("beta"))
    assert sorted(p.name for p in b.iterdir() if not p.name.startswith(".shoal-tmp.")) == sorted(
        f"f{i}" for i in range(300)
    )


def holds_bytes(path: Path) -> bool:
    return path.read_bytes() == b"x" * 4096
