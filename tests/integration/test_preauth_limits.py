"""The listener's limits before authentication, against a real daemon (beta): floods of idle sockets from
many loopback source addresses (Linux accepts any 127/8 source on loopback) must not keep a configured
peer (alpha, 127.0.0.1) out, per-network caps hold, and idle sockets are dropped quickly."""

from __future__ import annotations

import asyncio
import errno
import select
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from shoal.net.admission import MAX_PEER_ADDRESS, MAX_STRANGER_ADDRESS, MAX_STRANGER_NETWORK
from shoal.net.transport import STRANGER_DEADLINE_S, STRANGER_FIRST_BYTE_S
from shoal.testing.cluster import Cluster
from tests.integration.scripted import ATTACKER, connect, until_closed
from tests.integration.test_hostile_peers import warnings_since


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c") as c:
        c.start("beta")
        yield c


class Flood:
    """Idle TCP connections to ``host:port``, ``per_source`` from each source address, that never send a
    byte; whichever the server drops (at once, refused, or later, timed out) is opened again after
    ``reopen_s``, as an attacker would. Runs in a thread of its own."""

    def __init__(self, host: str, port: int, sources: list[str], per_source: int, reopen_s: float = 0.2) -> None:
        self.target = (host, port)
        self.sources, self.per_source, self.reopen_s = sources, per_source, reopen_s
        self.sel = selectors.DefaultSelector()
        self.held: dict[socket.socket, float] = {}  # socket -> when it connected
        self.pending: list[tuple[float, str]] = []  # (when, source) to open again
        self.drops = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="flood", daemon=True)

    def __enter__(self) -> Flood:
        now = time.monotonic()
        self.pending = [(now, s) for s in self.sources for _ in range(self.per_source)]
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)
        for s in list(self.held):
            s.close()
        self.sel.close()

    def _open(self, source: str) -> None:
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.bind((source, 0))
            err = s.connect_ex(self.target)
        except OSError:
            s.close()
            raise
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self.pending.append((time.monotonic() + self.reopen_s, source))
            return
        self.held[s] = time.monotonic()
        self.sel.register(s, selectors.EVENT_READ, source)

    def _run(self) -> None:
        while not self.stop.is_set():
            now = time.monotonic()
            due = [p for p in self.pending if p[0] <= now]
            self.pending = [p for p in self.pending if p[0] > now]
            for _, source in due:
                self._open(source)
            for key, _ in self.sel.select(0.05):
                s = key.fileobj
                assert isinstance(s, socket.socket)
                try:
                    data = s.recv(1)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:  # dropped by the server: come back
                    self.sel.unregister(s)
                    self.held.pop(s, None)
                    s.close()
                    self.drops += 1
                    self.pending.append((time.monotonic() + self.reopen_s, key.data))

    def count(self) -> int:
        return len(self.held)


def sources(networks: range, hosts: range) -> list[str]:
    return [f"127.0.{n}.{h}" for n in networks for h in hosts]


def test_a_flood_from_many_addresses_and_networks_does_not_keep_a_configured_peer_out(net: Cluster) -> None:
    beta = net.nodes["beta"]
    # 12 addresses in one /24 and 2 addresses in each of 10 more /24s, 8 idle sockets from each: far more
    # than any cap, kept full by reconnecting whatever beta drops
    attackers = sources(range(5, 6), range(1, 13)) + sources(range(6, 16), range(1, 3))
    with Flood(beta.address, beta.port, attackers, per_source=8) as flood:
        time.sleep(1.0)
        held = flood.count()
        assert held >= 48, held  # the flood is real: it holds every slot strangers may have
        probe = net.nodes["alpha"].data / "during-the-flood"
        probe.write_text("served")
        t0 = time.monotonic()
        r = net.sync("alpha", "--peer", "beta", timeout=30)
        took = time.monotonic() - t0
        drops = flood.drops
    assert r.returncode == 0, r.stdout + r.stderr
    assert (beta.data / "during-the-flood").read_text() == "served"
    assert took < 5, took
    assert drops > 0  # beta refused (or dropped) some of the flood


def idle(c: Cluster, source: str) -> socket.socket:
    beta = c.nodes["beta"]
    return socket.create_connection((beta.address, beta.port), timeout=5, source_address=(source, 0))


def dropped(s: socket.socket, within_s: float) -> bool:
    """Whether the server closes ``s`` within the time (EOF or a reset)."""
    s.settimeout(within_s)
    try:
        return s.recv(1) == b""
    except (TimeoutError, BlockingIOError):
        return False
    except OSError:
        return True


def refused(socks: list[socket.socket], wait_s: float = 0.3) -> list[socket.socket]:
    """Those of ``socks`` the server has closed after ``wait_s`` (those it refused on accept)."""
    time.sleep(wait_s)
    readable, _, _ = select.select(socks, [], [], 0)
    return [s for s in readable if dropped(s, 0)]


def test_idle_connections_from_a_stranger_are_dropped_after_the_first_byte_window(net: Cluster) -> None:
    offset = len(net.log_text("beta"))
    s = idle(net, "127.0.8.1")
    t0 = time.monotonic()
    try:
        assert dropped(s, STRANGER_FIRST_BYTE_S + 1)
    finally:
        s.close()
    took = time.monotonic() - t0
    assert STRANGER_FIRST_BYTE_S - 0.5 <= took <= STRANGER_FIRST_BYTE_S + 1, took
    until(lambda: "127.0.8.1 sent nothing within 3s" in net.log_text("beta")[offset:])
    assert not warnings_since(net, offset)  # an idle probe is an info line, not a warning


def test_a_stranger_that_does_tls_and_then_nothing_is_dropped_at_the_deadline(net: Cluster) -> None:
    async def attack() -> float:
        ch = await connect(net)  # TLS from ATTACKER, then silence
        t0 = time.monotonic()
        await until_closed(ch, STRANGER_DEADLINE_S + 5)
        return time.monotonic() - t0

    offset = len(net.log_text("beta"))
    took = asyncio.run(attack())
    assert took <= STRANGER_DEADLINE_S + 1, took
    until(lambda: bool(warnings_since(net, offset)))
    lines = warnings_since(net, offset)
    assert len(lines) == 1 and f"{ATTACKER} did not finish the handshake within 8s" in lines[0], lines


def test_one_network_of_strangers_gets_its_share_and_no_more(net: Cluster) -> None:
    time.sleep(0.3)  # the fixture's readiness probe (a connection from 127.0.0.1) is gone
    offset = len(net.log_text("beta"))
    held: list[socket.socket] = []
    try:
        # 12 addresses in 127.0.5.0/24, 3 sockets each, one after the other: the first 16 are let in
        for host in range(1, 13):
            for _ in range(3):
                held.append(idle(net, f"127.0.5.{host}"))
        network = list(held)
        # another network is not affected, and neither is a peer address
        held += [idle(net, "127.0.6.1") for _ in range(MAX_STRANGER_ADDRESS)]
        held += [idle(net, "127.0.0.1") for _ in range(MAX_PEER_ADDRESS)]
        out = refused(held)
        assert all(s in network for s in out), [s.getsockname() for s in out]
        assert len(network) - len(out) == MAX_STRANGER_NETWORK == 16, len(out)
    finally:
        for s in held:
            s.close()
    until(lambda: bool(warnings_since(net, offset)))
    time.sleep(0.3)
    lines = [line for line in warnings_since(net, offset) if "too many connections" in line]
    # one line for the network (refusals keyed by network), naming it
    assert len(lines) == 1, lines
    assert "refused connection from 127.0.5.6:" in lines[0] and "from its network 127.0.5.0/24" in lines[0], lines


def test_sighup_updates_the_peer_addresses(net: Cluster) -> None:
    """127.0.7.1 is a stranger until a host line names it: then the strangers filling its network do
    not keep it out."""

    def attempt() -> bool:
        """Whether 127.0.7.1 gets in while 127.0.7.2 and .3 fill the network's stranger slots."""
        socks = [idle(net, f"127.0.7.{h}") for h in (2, 3) for _ in range(MAX_STRANGER_ADDRESS)]
        try:
            probe = idle(net, "127.0.7.1")
            socks.append(probe)
            out = refused(socks)
            assert out in ([], [probe]), out
            return not out
        finally:
            for s in socks:
                s.close()

    assert not attempt()
    text = net.config.read_text().replace("host ", "host delta@127.0.7.1:1 ", 1)
    net.config.write_text(text)
    beta = net.nodes["beta"]
    assert beta.proc is not None
    beta.proc.send_signal(signal.SIGHUP)
    until(lambda: "SIGHUP: config reloaded" in net.log_text("beta"))
    assert attempt()


def until(cond: Callable[[], bool], timeout_s: float = 10) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
