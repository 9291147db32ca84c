"""Nodes run through ``shoal-csync2`` the way csync2 admins test a cluster on one machine.

Loopback addresses are the host names (``host 127.2.1.1 127.2.1.2;``), every node uses the same port on
its own address, ``-N`` picks the node, one ``-D`` directory holds every node's database, a ``prefix``
block gives each node its data directory, and daemons run with ``-ii``. Used by the integration tests.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

BIN = Path(sys.executable).parent / "shoal-csync2"


@dataclass
class Result:
    rc: int
    out: bytes
    err: str

    @property
    def text(self) -> str:
        return self.out.decode("utf-8", "surrogateescape")


def _free_port(addresses: list[str]) -> int:
    for _ in range(50):
        with socket.socket() as s:
            s.bind((addresses[0], 0))
            port = int(s.getsockname()[1])
        try:
            for a in addresses[1:]:
                with socket.socket() as s:
                    s.bind((a, port))
        except OSError:
            continue
        return port
    raise RuntimeError("no port free on every node address")


@dataclass
class CompatCluster:
    base: Path
    subnet: int = 2  #: nodes are 127.<subnet>.1.1, 127.<subnet>.1.2, ...
    size: int = 2
    group_extra: str = ""
    top_extra: str = ""
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.names = [f"127.{self.subnet}.1.{i + 1}" for i in range(self.size)]
        self.etc, self.db = self.base / "etc", self.base / "db"
        self.etc.mkdir(parents=True, exist_ok=True)
        self.db.mkdir(exist_ok=True)
        self.port = _free_port(self.names)
        self.env = {**os.environ, "CSYNC2_SYSTEM_DIR": str(self.etc)}
        self.env.pop("SHOAL_STATE_DIR", None)
        for name in self.names:
            self.data(name).mkdir(parents=True, exist_ok=True)
        if not (self.etc / "group.key").exists():
            r = self.run(None, "-k", str(self.etc / "group.key"))
            assert r.rc == 0, r.err
        self.write_config()

    def data(self, name: str) -> Path:
        return self.base / f"n{self.names.index(name) + 1}"

    def write_config(self) -> None:
        ons = " ".join(f"on {n}: {self.data(n)};" for n in self.names)
        (self.etc / "csync2.cfg").write_text(
            f"{self.top_extra}\n"
            f"group g {{\n    host {' '.join(self.names)};\n    key group.key;\n    include %root%;\n"
            f"    exclude *.swp;\n{self.group_extra}\n}}\n"
            f"prefix root {{ {ons} }}\n"
        )

    def run(self, name: str | None, *args: str, timeout: float = 60) -> Result:
        """Run ``shoal-csync2`` as node ``name`` (``-N NAME -D DB -p PORT`` first)."""
        head = [] if name is None else ["-N", name, "-D", str(self.db), "-p", str(self.port)]
        p = subprocess.run(
            [str(BIN), *head, *args],
            capture_output=True,
            env=self.env,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        return Result(p.returncode, p.stdout, p.stderr.decode("utf-8", "replace"))

    def start(self, name: str, *extra: str) -> subprocess.Popen[bytes]:
        """Start ``-ii`` for ``name`` and wait until it accepts connections."""
        log = open(self.base / f"{name}.log", "ab")  # noqa: SIM115 (handed to the child; closed by stop)
        proc = subprocess.Popen(
            [str(BIN), "-N", name, "-D", str(self.db), "-p", str(self.port), "-ii", *extra],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=self.env,
        )
        log.close()
        self.procs[name] = proc
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {proc.returncode}: {self.log(name)}")
            with contextlib.suppress(OSError), socket.create_connection((name, self.port), timeout=0.5):
                return proc
            time.sleep(0.05)
        raise RuntimeError(f"{name} did not start listening: {self.log(name)}")

    def log(self, name: str) -> str:
        path = self.base / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self, name: str) -> int | None:
        proc = self.procs.pop(name, None)
        if proc is None:
            return None
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
