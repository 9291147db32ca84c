"""A hostile peer is refused without anything written outside the roots; a killed receiver recovers."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shoal.engine.handshake import client_handshake
from shoal.engine.replica import Replica
from shoal.fs.config_source import load_node_config
from shoal.net.transport import Channel, dial
from shoal.proto import messages as m
from shoal.testing.cluster import SHOAL, Cluster


def wire(path: str, data: bytes) -> m.WireRecord:
    import blake3

    return m.WireRecord(
        path,
        0,
        len(data),
        0o644,
        0,
        0,
        "root",
        "root",
        1_700_000_000_000_000_000,
        blake3.blake3(data).digest(),
        None,
        0,
        [("alpha", 2_000_000_000)],
        None,
        False,
        1,
    )


@contextlib.asynccontextmanager
async def as_alpha(cluster: Cluster) -> AsyncIterator[Channel]:
    """A session with beta, authenticated with alpha's real identity and group key."""
    cfg = load_node_config(str(cluster.config), "alpha")
    replica = await Replica.open(cfg, str(cluster.nodes["alpha"].state))
    beta = cluster.nodes["beta"]
    try:
        ch = await dial(beta.address, beta.port, tls=True)
        await client_handshake(replica, ch, "beta")
        try:
            yield ch
        finally:
            await ch.close()
    finally:
        await replica.close()


async def hostile_session(cluster: Cluster, outside: Path) -> None:
    """Authenticate as alpha (valid identity and key), then serve beta's pull with malicious records."""
    records = [
        wire("%d%/../escape.txt", b"dotdot"),
        wire("%d%/sub/../../escape2.txt", b"dotdot"),
        wire(str(outside / "absolute.txt"), b"absolute"),
        wire("/etc/shoal-test-pwned", b"absolute"),
        wire("%d%/link/evil.txt", b"through a symlinked parent"),
        wire("%d%/nul\x00name", b"nul"),
        wire("%nope%/x", b"unknown prefix"),
        wire("%d%/legit.txt", b"fine"),
    ]
    async with as_alpha(cluster) as ch:
        await ch.send(m.PullDone(0, [], []))  # we pull nothing; beta pulls from us
        while True:
            msg = await ch.recv(10)
            if isinstance(msg, m.IndexRequest):
                await ch.send(m.IndexBatch(records, [None] * len(records), 8, False))
            elif isinstance(msg, m.ContentRequest):
                data = {"%d%/legit.txt": b"fine", "%d%/link/evil.txt": b"through a symlinked parent"}.get(msg.path, b"")
                await ch.send(m.ContentData(msg.id, data))
                await ch.send(m.ContentEnd(msg.id, None))
            elif isinstance(msg, m.PullDone):
                await ch.send(m.Bye("done"))
                break


def test_hostile_peer_is_refused_and_nothing_escapes(cluster: Cluster, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, cluster.nodes["beta"].data / "link")
    cluster.start("beta")
    asyncio.run(asyncio.wait_for(hostile_session(cluster, outside), 30))
    beta = cluster.nodes["beta"]
    assert (beta.data / "legit.txt").read_bytes() == b"fine"
    assert list(outside.iterdir()) == []
    assert not (beta.data.parent / "escape.txt").exists() and not (beta.data.parent / "escape2.txt").exists()
    assert not Path("/etc/shoal-test-pwned").exists()
    log = cluster.log_text("beta")
    for needle in (
        "%d%/../escape.txt from alpha",
        "/etc/shoal-test-pwned from alpha",
        "%nope%/x from alpha",
        "symlink or file where a directory should be",
    ):
        assert needle in log, needle

    # an oversize frame after a valid handshake, and garbage without one: dropped, daemon keeps serving
    async def oversize() -> None:
        async with as_alpha(cluster) as ch:
            ch.writer.write((64 << 20).to_bytes(4, "big") + b"\x00" * 1024)
            await ch.writer.drain()
            with pytest.raises(Exception):  # noqa: B017 (closed by the peer, however it surfaces)
                while True:
                    await ch.recv(10)

    asyncio.run(asyncio.wait_for(oversize(), 30))

    async def mismatched_page() -> None:
        async with as_alpha(cluster) as ch:
            await ch.send(m.PullDone(0, [], []))
            while not isinstance(await ch.recv(10), m.IndexRequest):
                pass
            await ch.send(m.IndexBatch([wire("%d%/x", b"x")], [], 1, False))  # records and inline differ
            with pytest.raises(Exception):  # noqa: B017 (dropped, however it surfaces)
                while True:
                    await ch.recv(10)

    asyncio.run(asyncio.wait_for(mismatched_page(), 30))
    assert "1 records but 0 inline contents" in cluster.log_text("beta")
    with socket.create_connection((beta.address, beta.port), timeout=5) as s:
        s.sendall(b"\x00\x00\x00\x05hello" + b"junk" * 100)
        s.settimeout(5)
        try:
            answer = s.recv(100)
        except ConnectionResetError:  # closed with our junk unread: the kernel answers with a reset
            answer = b""
        assert answer == b""  # dropped, never answered
    assert "exceeds the limit" in cluster.log_text("beta")
    (cluster.nodes["alpha"].data / "after").write_text("still served")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (beta.data / "after").exists()


def test_receiver_killed_mid_transfer_recovers(cluster: Cluster) -> None:
    cluster.start("beta")
    src = cluster.nodes["alpha"].data / "large.bin"
    dst = cluster.nodes["beta"].data / "large.bin"
    caught = False
    whole_versions: set[str] = set()  # every complete version the receiver could legitimately hold
    for _ in range(5):
        data = os.urandom(96 << 20)
        src.write_bytes(data)
        whole_versions.add(hashlib.sha256(data).hexdigest())
        proc = subprocess.Popen(
            [
                str(SHOAL),
                "-c",
                str(cluster.config),
                "-N",
                "alpha",
                "--state-dir",
                str(cluster.nodes["alpha"].state),
                "sync",
                "--peer",
                "beta",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and proc.poll() is None:
            temps = cluster.temp_files("beta")
            if temps and os.path.getsize(temps[0]) > (1 << 20):
                cluster.kill("beta")  # SIGKILL in the middle of writing the temp file
                caught = True
                # Whatever is at the managed path is a whole version, never a partial one.
                assert not dst.exists() or hashlib.sha256(dst.read_bytes()).hexdigest() in whole_versions
                break
            time.sleep(0.001)
        proc.wait(60)
        if caught:
            break
        cluster.start("beta")
    assert caught, "the transfer always finished before it could be interrupted"
    cluster.start("beta")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert dst.read_bytes() == src.read_bytes()
    assert cluster.tree("beta") == cluster.tree("alpha")
    listed = cluster.run("beta", "ls").stdout
    assert ".shoal-tmp." not in listed
