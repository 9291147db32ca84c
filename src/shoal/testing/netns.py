"""A cluster whose nodes live in network namespaces of their own (root only; tests/netns and bench/).

Each node gets a namespace ``<tag>-<node>`` with ``lo`` and ``eth0`` (10.77.<n>.<i>/24), the other end of
its veth pair plugged into a bridge inside a hub namespace ``<tag>-hub``. Nothing is added to the root
namespace, and addresses exist only inside these namespaces. A node is cut off by taking its veth end
in the hub down and healed by bringing it back up; its daemon is a real process started with
``ip netns exec``. Everything is removed on ``close`` (also after a failure), and namespaces left by an
earlier crashed run with the same tag are removed first.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
from pathlib import Path

from shoal.testing.cluster import SHOAL, Cluster

PORT = 30866


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs the 'ip' command (iproute2)"
    return None


def _ip(*args: str, ns: str | None = None) -> None:
    cmd = ["ip", *args] if ns is None else ["ip", "netns", "exec", ns, "ip", *args]
    subprocess.run(cmd, check=True, capture_output=True, timeout=10)


class NetnsCluster(Cluster):
    """``Cluster`` with one namespace per node; same API (start, stop, kill, run, sync, tree)."""

    tag: str
    net: int

    def __post_init__(self) -> None:
        self.tag = f"shoal{secrets.token_hex(3)}"
        self.net = 77
        super().__post_init__()
        for i, node in enumerate(self.nodes.values(), start=1):
            node.address = f"10.{self.net}.0.{i}"
            node.port = PORT
        self.write_config()
        self._made: list[str] = []
        self._cuts: set[tuple[str, str]] = set()
        try:
            self._setup()
        except BaseException:
            self.close()
            raise

    def ns(self, name: str) -> str:
        return f"{self.tag}-{name}"

    @property
    def hub(self) -> str:
        return f"{self.tag}-hub"

    def _add_ns(self, name: str) -> None:
        subprocess.run(["ip", "netns", "del", name], capture_output=True, check=False, timeout=10)
        _ip("netns", "add", name)
        self._made.append(name)
        _ip("link", "set", "lo", "up", ns=name)

    def _setup(self) -> None:
        self._add_ns(self.hub)
        _ip("link", "add", "br0", "type", "bridge", ns=self.hub)
        _ip("link", "set", "br0", "up", ns=self.hub)
        for i, node in enumerate(self.nodes.values(), start=1):
            ns = self.ns(node.name)
            self._add_ns(ns)
            inner, outer = f"{self.tag[:6]}i{i}", f"{self.tag[:6]}o{i}"
            _ip("link", "add", inner, "netns", ns, "type", "veth", "peer", "name", outer, "netns", self.hub)
            _ip("link", "set", inner, "name", "eth0", ns=ns)
            _ip("addr", "add", f"{node.address}/24", "dev", "eth0", ns=ns)
            _ip("link", "set", "eth0", "up", ns=ns)
            _ip("link", "set", outer, "master", "br0", ns=self.hub)
            _ip("link", "set", outer, "up", ns=self.hub)

    def _outer(self, name: str) -> str:
        i = list(self.nodes).index(name) + 1
        return f"{self.tag[:6]}o{i}"

    def cut(self, name: str) -> None:
        """Disconnect ``name`` from every other node (its cable is pulled)."""
        _ip("link", "set", self._outer(name), "down", ns=self.hub)

    def heal(self, name: str) -> None:
        _ip("link", "set", self._outer(name), "up", ns=self.hub)

    def cut_pair(self, a: str, b: str) -> None:
        """Drop everything between ``a`` and ``b`` (both directions); their other links stay up. A
        blackhole route for the other's address in each namespace: established connections stall
        exactly as when a cable between two switches is pulled."""
        if (a, b) in self._cuts or (b, a) in self._cuts:
            return
        _ip("route", "add", "blackhole", f"{self.nodes[b].address}/32", ns=self.ns(a))
        _ip("route", "add", "blackhole", f"{self.nodes[a].address}/32", ns=self.ns(b))
        self._cuts.add((a, b))

    def heal_pair(self, a: str, b: str) -> None:
        for x, y in ((a, b), (b, a)):
            if (x, y) in self._cuts:
                _ip("route", "del", "blackhole", f"{self.nodes[y].address}/32", ns=self.ns(x))
                _ip("route", "del", "blackhole", f"{self.nodes[x].address}/32", ns=self.ns(y))
                self._cuts.discard((x, y))

    def heal_all(self) -> None:
        for a, b in list(self._cuts):
            self.heal_pair(a, b)
        for name in self.nodes:
            self.heal(name)

    def command(self, name: str, args: list[str]) -> list[str]:
        return ["ip", "netns", "exec", self.ns(name), *args]

    def start(self, name: str, *, config: Path | None = None, wait_s: float = 15.0, watch: bool = False) -> None:
        sock = self.nodes[name].state / "control.sock"
        if self.nodes[name].proc is None and sock.exists():
            sock.unlink()  # left by a killed daemon: readiness is judged by it
        super().start(name, config=config, wait_s=wait_s, watch=watch)

    def listening(self, name: str) -> bool:
        """The daemon opens its control socket right after its listener (unreachable from out here)."""
        return (self.nodes[name].state / "control.sock").exists()

    def close(self) -> None:
        super().close()
        for ns in reversed(getattr(self, "_made", [])):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, check=False, timeout=10)
        self._made = []


__all__ = ["PORT", "SHOAL", "NetnsCluster", "available"]
