"""A group member may read nothing but the content beta holds a record for: not through a symlink in a
parent directory (planted locally or pushed by a master), not a file of the tree beta never recorded,
not another version than the recorded one, and not as a slave through a by-path index request.

Each test plays a real, authenticated member (gamma, a receive-only slave, or alpha) against a real
daemon (beta) and asks for files it must not get; the answer must carry no byte of them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import blake3
import pytest

from shoal.proto import messages as m
from shoal.testing.cluster import Cluster
from tests.integration.scripted import run, session

SECRET = b"root:$6$not-for-peers:19000:0:99999:7:::\n"


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    """alpha and beta are full hosts, gamma a slave; beta's tree holds a symlink to a directory outside
    every root, with a secret in it, and a recorded file."""
    with Cluster(tmp_path / "c") as c:
        hosts = " ".join(
            f"{n.name}@{n.address}:{n.port}" if n.name != "gamma" else f"({n.name}@{n.address}:{n.port})"
            for n in c.nodes.values()
        )
        c.config.write_text(
            f"group g {{\n  host {hosts};\n  key {c.key};\n  include %d%;\n}}\n"
            f"prefix d {{ {' '.join(f'on {n.name}: {n.data};' for n in c.nodes.values())} }}\n"
        )
        outside = tmp_path / "outside"
        outside.mkdir()
        (outside / "shadow").write_bytes(SECRET)
        beta = c.nodes["beta"].data
        (beta / "public.txt").write_bytes(b"public\n" * 20_000)  # above the inline limit: asked by content
        os.symlink(outside, beta / "link")
        os.symlink(outside / "shadow", beta / "shadow-link")
        assert c.run("beta", "check").returncode == 0
        c.start("beta")
        yield c


def ask(c: Cluster, node: str, requests: list[m.ContentRequest]) -> dict[int, tuple[bytes, m.ContentEnd]]:
    """Send ``requests`` in one authenticated session as ``node``; what came back for each id."""
    got: dict[int, tuple[bytes, m.ContentEnd]] = {}

    async def go() -> None:
        async with session(c, node) as ch:
            for r in requests:
                await ch.send(r)
            parts: dict[int, list[bytes]] = {r.id: [] for r in requests}
            while len(got) < len(requests):
                msg = await ch.recv(10)
                if isinstance(msg, m.ContentData):
                    parts[msg.id].append(msg.data)
                elif isinstance(msg, m.ContentCopy):
                    parts[msg.id].append(b"<copy>")
                elif isinstance(msg, m.ContentEnd):
                    got[msg.id] = (b"".join(parts[msg.id]), msg)

    run(go)
    return got


def secret_hash() -> bytes:
    return blake3.blake3(SECRET).digest()


@pytest.mark.parametrize("node", ["gamma", "alpha"])
def test_no_read_through_a_symlinked_parent_or_a_symlink(net: Cluster, node: str) -> None:
    got = ask(
        net,
        node,
        [
            m.ContentRequest(1, "%d%/link/shadow", secret_hash(), [], len(SECRET)),
            m.ContentRequest(2, "%d%/link/shadow", b"\0" * 32, [], -1),
            m.ContentRequest(3, "%d%/shadow-link", secret_hash(), [], -1),
            m.ContentRequest(4, "%d%/link/../link/shadow", secret_hash(), [], -1),
        ],
    )
    for i in (1, 2, 3, 4):
        data, end = got[i]
        assert data == b"" and end.error, (i, data, end)
        assert SECRET not in data


def test_only_the_recorded_version_of_a_recorded_file_is_served(net: Cluster) -> None:
    public = net.nodes["beta"].data / "public.txt"
    good = blake3.blake3(public.read_bytes()).digest()
    # A file written after beta's last scan: in the tree, but beta holds no record of it.
    (net.nodes["beta"].data / "unrecorded.txt").write_bytes(b"not scanned yet")
    got = ask(
        net,
        "gamma",
        [
            m.ContentRequest(1, "%d%/public.txt", good, [], public.stat().st_size),
            m.ContentRequest(2, "%d%/public.txt", b"\1" * 32, [], public.stat().st_size),
            m.ContentRequest(3, "%d%/unrecorded.txt", blake3.blake3(b"not scanned yet").digest(), [], -1),
            m.ContentRequest(4, "%d%", b"\0" * 32, [], -1),
        ],
    )
    assert got[1][0] == public.read_bytes() and got[1][1].error is None
    for i in (2, 3, 4):
        data, end = got[i]
        assert data == b"" and end.error, (i, data, end)


def test_a_pushed_symlink_cannot_be_read_through(net: Cluster) -> None:
    """alpha pushes a symlink to /etc, beta applies it as a symlink (it is one), then alpha asks for
    a file below it: nothing."""
    alpha = net.nodes["alpha"].data
    os.symlink("/etc", alpha / "etc-link")
    assert net.sync("alpha", "--peer", "beta").returncode == 0
    assert os.readlink(net.nodes["beta"].data / "etc-link") == "/etc"
    passwd = Path("/etc/passwd").read_bytes()
    got = ask(
        net,
        "alpha",
        [m.ContentRequest(1, "%d%/etc-link/passwd", blake3.blake3(passwd).digest(), [], len(passwd))],
    )
    data, end = got[1]
    assert data == b"" and end.error


def test_index_by_path_shows_no_record_through_a_symlink(net: Cluster) -> None:
    async def go() -> list[str]:
        async with session(net, "gamma") as ch:
            await ch.send(m.IndexRequest(0, 1 << 16, ["%d%/link/shadow", "%d%/shadow-link", "%d%/public.txt"]))
            batch = await ch.recv(10)
            while not isinstance(batch, m.IndexBatch):  # beta's PullDone (it takes nothing from a slave)
                batch = await ch.recv(10)
            assert all(x is None or SECRET not in x for x in batch.inline)
            return [r.path for r in batch.records]

    paths: list[str] = []

    async def collect() -> None:
        paths.extend(await go())

    run(collect)
    assert "%d%/link/shadow" not in paths
    assert "%d%/public.txt" in paths
