"""Hostile peers against a real daemon (beta): scripted clients with and without valid keys.

Each attack is refused with one warning line in beta's log, nothing is written outside (or, for the
refused records, inside) the managed roots, and beta goes on serving the real peers: after every attack
``alpha`` still syncs with it. (Path tricks through a valid session, oversize frames and a killed
receiver are in test_hostile_and_crash.py.)
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.engine.handshake import HANDSHAKE_TIMEOUT_S
from shoal.net.admission import MAX_STRANGER_ADDRESS
from shoal.net.transport import STRANGER_DEADLINE_S
from shoal.proto import messages as m
from shoal.proto.frames import frame
from shoal.testing.cluster import Cluster
from tests.integration.scripted import ATTACKER, Keys, connect, handshake, record, run, session, until_closed


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    """alpha and beta are full hosts, gamma a slave (it may only receive)."""
    with Cluster(tmp_path / "c") as c:
        hosts = " ".join(
            f"{n.name}@{n.address}:{n.port}" if n.name != "gamma" else f"({n.name}@{n.address}:{n.port})"
            for n in c.nodes.values()
        )
        c.config.write_text(
            f"group g {{\n  host {hosts};\n  key {c.key};\n  include %d%;\n}}\n"
            f"prefix d {{ {' '.join(f'on {n.name}: {n.data};' for n in c.nodes.values())} }}\n"
        )
        c.start("beta")
        yield c


def warnings_since(c: Cluster, offset: int) -> list[str]:
    return [line for line in c.log_text("beta")[offset:].splitlines() if " WARNING " in line or " ERROR " in line]


@contextlib.contextmanager
def one_refusal(c: Cluster, needle: str, wait_s: float = 10.0) -> Iterator[None]:
    """The block's attack leaves exactly one warning in beta's log, containing ``needle``; then alpha
    still syncs with beta (the daemon keeps serving)."""
    offset = len(c.log_text("beta"))
    yield
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline and not warnings_since(c, offset):
        time.sleep(0.05)
    time.sleep(0.3)  # a second line, if there were one, would follow at once
    lines = warnings_since(c, offset)
    assert len(lines) == 1 and needle in lines[0], lines
    probe = c.nodes["alpha"].data / f"probe-{time.monotonic_ns()}"
    probe.write_text("still served")
    r = c.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (c.nodes["beta"].data / probe.name).read_text() == "still served"


# -- without valid keys -------------------------------------------------------------------------------


def refused_as_alpha(net: Cluster, forge: Callable[[Keys], None], answer: str, log_line: str) -> None:
    """A handshake as alpha with what ``forge`` made of alpha's keys: refused with ``answer`` on the wire
    and ``log_line`` in beta's log, and the connection dropped."""

    async def attack() -> None:
        keys = await Keys.of(net, "alpha")
        forge(keys)
        ch = await connect(net, net.nodes["alpha"].address)  # where alpha may come from
        _, _, got = await handshake(ch, keys)
        assert isinstance(got, m.Refused) and answer in got.reason
        await until_closed(ch)

    with one_refusal(net, log_line):
        run(attack)


def test_wrong_group_key(net: Cluster) -> None:
    def forge(keys: Keys) -> None:
        keys.group_key = os.urandom(32)

    refused_as_alpha(net, forge, "wrong group key", "refused alpha at 127.0.0.1: wrong group key for group 'g'")


def test_copied_certificate_without_its_key(net: Cluster) -> None:
    # alpha is pinned at beta already (alpha has synced); the attacker has alpha's certificate and the
    # group key, but not alpha's private key
    assert net.sync("alpha", "--peer", "beta").returncode == 0

    def forge(keys: Keys) -> None:
        keys.key = ed25519.Ed25519PrivateKey.generate()

    refused_as_alpha(net, forge, "proof is invalid", "refused alpha at 127.0.0.1: the peer's node-key proof is invalid")


def test_replayed_handshake(net: Cluster) -> None:
    recorded: list[m.Message] = []

    async def record_one() -> None:  # a real session as alpha, as an eavesdropper would have seen it
        ch = await connect(net, net.nodes["alpha"].address)  # where alpha may come from
        hello, proof, answer = await handshake(ch, await Keys.of(net, "alpha"))
        assert isinstance(answer, m.Proof)
        assert isinstance(await ch.recv(10), m.Welcome)
        recorded.extend([hello, proof])
        await ch.send(m.Bye("done"))
        await ch.close()

    run(record_one)

    async def replay() -> None:  # the same bytes again, without any key
        ch = await connect(net, net.nodes["alpha"].address)  # where alpha may come from
        await ch.send(recorded[0])
        assert isinstance(await ch.recv(10), m.Hello)  # a fresh server nonce: the old proof cannot fit
        await ch.send(recorded[1])
        answer = await ch.recv(10)
        assert isinstance(answer, m.Refused), answer
        await until_closed(ch)

    with one_refusal(net, "refused alpha at 127.0.0.1: the peer's node-key proof is invalid"):
        run(replay)


def test_garbage_truncated_and_unknown_frames(net: Cluster) -> None:
    beta = net.nodes["beta"]

    def raw(payload: bytes, *, tls: bool) -> bytes:
        s = socket.create_connection((beta.address, beta.port), timeout=10, source_address=(ATTACKER, 0))
        if tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        try:
            s.sendall(payload)
            if not tls:
                s.shutdown(socket.SHUT_WR)  # (on a TLS socket this would drop TLS, not just half-close)
            s.settimeout(10)
            with contextlib.suppress(ConnectionResetError, ssl.SSLError):
                return s.recv(100)  # b"" once beta closes; never an answer
            return b""
        finally:
            s.close()

    with one_refusal(net, "closed the connection"):  # a frame cut short, then EOF
        assert raw(b"\x00\x00\x03\xe8" + b"x" * 10, tls=False) == b""
    with one_refusal(net, "exceeds the limit of 65536"):  # a large frame before any authentication
        assert raw((1 << 20).to_bytes(4, "big") + b"x" * 100, tls=True) == b""
    unknown = msgspec.msgpack.encode({"type": "exec", "cmd": "touch /tmp/pwned"})
    with one_refusal(net, "undecodable message"):  # an unknown message type as the first message
        assert raw(frame(unknown), tls=True) == b""
    with one_refusal(net, "undecodable message"):  # the same without TLS
        assert raw(frame(unknown), tls=False) == b""

    async def after_welcome() -> None:  # an unknown message type inside an authenticated session
        async with session(net, "alpha") as ch:
            ch.writer.write(frame(unknown))
            await until_closed(ch)

    with one_refusal(net, "undecodable message"):
        run(after_welcome)
    assert not Path("/tmp/pwned").exists()


def test_slow_loris_cannot_crowd_out_real_peers(net: Cluster) -> None:
    beta = net.nodes["beta"]
    idle: list[socket.socket] = []
    offset = len(net.log_text("beta"))

    async def trickle() -> float:
        """TLS done, then a Hello one byte every 0.4 s: beta must drop it at the deadline for an address
        the config does not name (STRANGER_DEADLINE_S, shorter than the handshake's own timeout)."""
        ch = await connect(net)
        keys = await Keys.of(net, "alpha")
        data = frame(m.encode(m.Hello(m.PROTOCOL_VERSION, "alpha", os.urandom(32), keys.cert, ["g"], "x", True)))
        t0 = time.monotonic()
        try:
            for b in data:
                ch.writer.write(bytes([b]))
                await ch.writer.drain()
                await asyncio.sleep(0.4)
                if ch.reader.at_eof():
                    break
        except (ConnectionError, OSError):
            pass
        await until_closed(ch, HANDSHAKE_TIMEOUT_S + 10)
        return time.monotonic() - t0

    async def attack() -> float:
        # the per-address cap, filled by connections that never say anything
        for _ in range(MAX_STRANGER_ADDRESS + 4):
            s = socket.create_connection((beta.address, beta.port), timeout=5, source_address=(ATTACKER, 0))
            idle.append(s)
        await asyncio.sleep(0.5)
        # alpha (another address) is not affected at all
        probe = net.nodes["alpha"].data / "during-the-flood"
        probe.write_text("served")
        r = await asyncio.to_thread(net.sync, "alpha", "--peer", "beta")
        assert r.returncode == 0, r.stdout + r.stderr
        for s in idle:
            s.close()
        await asyncio.sleep(0.5)
        return await trickle()

    try:
        held = asyncio.run(asyncio.wait_for(attack(), 90))
    finally:
        for s in idle:
            s.close()
    assert (beta.data / "during-the-flood").read_text() == "served"
    assert held <= STRANGER_DEADLINE_S + 1, held
    lines = warnings_since(net, offset)
    too_many = [line for line in lines if "too many connections still in their handshake" in line]
    assert len(too_many) == 1, lines  # one line, not one per refused connection
    assert sum("did not finish the handshake within" in line for line in lines) == 1, lines


# -- with valid keys ----------------------------------------------------------------------------------


def test_a_slave_pushing_changes_is_refused(net: Cluster) -> None:
    async def attack() -> None:
        async with session(net, "gamma") as ch:
            await ch.send(m.IndexBatch([record("%d%/from-slave", b"slave")], [b"slave"], 1, False))
            await until_closed(ch)

    with one_refusal(net, "gamma sent an index page nobody asked for"):
        run(attack)
    assert not (net.nodes["beta"].data / "from-slave").exists()


def test_unsolicited_content_is_refused(net: Cluster) -> None:
    async def attack() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.ContentData(0, b"x" * 1000))
            await until_closed(ch)

    with one_refusal(net, "alpha sent content nobody asked for"):
        run(attack)


def test_more_content_than_the_record_says_is_refused(net: Cluster) -> None:
    """A peer streaming past the announced size is cut off before it can fill the disk."""

    async def attack() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            rec = record("%d%/big", b"ten bytes!", size=100_000)
            while True:
                msg = await ch.recv(10)
                if isinstance(msg, m.IndexRequest):
                    await ch.send(m.IndexBatch([rec], [None], 1, False))
                elif isinstance(msg, m.ContentRequest):
                    for _ in range(100):  # 10 MiB for a 100 kB file
                        await ch.send(m.ContentData(msg.id, b"z" * (100 << 10)))
                    await ch.send(m.ContentEnd(msg.id, None))
                elif isinstance(msg, m.PullDone):
                    assert any("more than the record's 100000 bytes" in p for p in msg.problems), msg
                    await ch.send(m.Bye("done"))
                    return

    with one_refusal(net, "more than the record's 100000 bytes"):
        run(attack)
    assert not (net.nodes["beta"].data / "big").exists()
    assert net.temp_files("beta") == []


def test_a_4096_byte_path_is_refused(net: Cluster) -> None:
    long_path = "%d%/" + "/".join(["d" * 200] * 21)  # 4,224 bytes on beta, more than PATH_MAX allows
    assert len(long_path) > 4096

    async def attack() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            while True:
                msg = await ch.recv(10)
                if isinstance(msg, m.IndexRequest):
                    await ch.send(m.IndexBatch([record(long_path, b"deep")], [b"deep"], 1, False))
                elif isinstance(msg, m.PullDone):
                    await ch.send(m.Bye("done"))
                    return

    with one_refusal(net, "longer than 4095 bytes"):
        run(attack)
    assert not (net.nodes["beta"].data / ("d" * 200)).exists()


def test_a_session_cut_mid_batch_leaves_no_temp_file(net: Cluster) -> None:
    """The sender vanishes after one whole file and half of the next: nothing of the batch appears,
    no temp file stays (those of a live process were left for an hour before), and the peer's records
    are taken again later."""
    files = {f"%d%/cut{i}": os.urandom(300_000) for i in range(3)}

    async def attack() -> None:
        async with session(net, "alpha") as ch:
            await ch.send(m.PullDone(0, [], []))
            sent = 0
            while True:
                msg = await ch.recv(10)
                if isinstance(msg, m.IndexRequest):
                    recs = [record(p, d) for p, d in files.items()]
                    await ch.send(m.IndexBatch(recs, [None] * len(recs), 1, False))
                elif isinstance(msg, m.ContentRequest):
                    data = files[msg.path]
                    if sent == 0:
                        await ch.send(m.ContentData(msg.id, data))
                        await ch.send(m.ContentEnd(msg.id, None))
                    else:
                        await ch.send(m.ContentData(msg.id, data[:100_000]))
                        await asyncio.sleep(0.5)
                        return  # the connection drops here
                    sent += 1

    offset = len(net.log_text("beta"))
    run(attack)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not warnings_since(net, offset):
        time.sleep(0.05)
    beta = net.nodes["beta"].data
    assert not any((beta / p.removeprefix("%d%/")).exists() for p in files)
    assert net.temp_files("beta") == []
