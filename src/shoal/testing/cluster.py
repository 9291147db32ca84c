"""A cluster of real shoal nodes on loopback: separate processes, real TLS, one port per node.

Owns: laying out configs, keys, identities and data directories (through a ``prefix``), starting and
killing daemons, running commands as a node, and snapshotting trees for comparison. Used by the
integration tests and the benchmarks; everything lives under one base directory.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from shoal.control.protocol import SOCKET_NAME
from shoal.fs.keyfile import write_key_file
from shoal.net.identity import create_identity

SHOAL = Path(sys.executable).parent / "shoal"


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass
class Node:
    name: str
    data: Path
    state: Path
    port: int
    address: str = "127.0.0.1"
    proc: subprocess.Popen[bytes] | None = None
    log: Path | None = None


@dataclass
class Cluster:
    base: Path
    names: tuple[str, ...] = ("alpha", "beta", "gamma")
    group_extra: str = ""
    top_extra: str = ""
    nodes: dict[str, Node] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.base.mkdir(parents=True, exist_ok=True)
        self.key = self.base / "group.key"
        if not self.key.exists():
            write_key_file(str(self.key))
        for name in self.names:
            node = Node(name, self.base / name / "data", self.base / name / "state", free_port())
            node.data.mkdir(parents=True, exist_ok=True)
            node.state.mkdir(parents=True, exist_ok=True, mode=0o700)
            create_identity(str(node.state), name)
            self.nodes[name] = node
        self.write_config()

    @property
    def config(self) -> Path:
        return self.base / "shoal.cfg"

    def write_config(self, group_extra: str | None = None) -> None:
        if group_extra is not None:
            self.group_extra = group_extra
        hosts = " ".join(f"{n.name}@{n.address}:{n.port}" for n in self.nodes.values())
        prefix = " ".join(f"on {n.name}: {n.data};" for n in self.nodes.values())
        self.config.write_text(
            f"{self.top_extra}\n"
            f"group g {{\n  host {hosts};\n  key {self.key};\n  include %d%;\n  exclude *.swp;\n"
            f"  {self.group_extra}\n}}\n"
            f"prefix d {{ {prefix} }}\n"
        )

    # -- processes -------------------------------------------------------------------------------------

    def run(
        self,
        name: str,
        *args: str,
        timeout: float = 120,
        check: bool = False,
        config: Path | None = None,
        cwd: Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        node = self.nodes[name]
        cmd = [str(SHOAL), "-c", str(config or self.config), "-N", name, "--state-dir", str(node.state), *args]
        cmd = self.command(name, cmd)
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, check=check, stdin=subprocess.DEVNULL, cwd=cwd
        )

    def sync(self, name: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return self.run(name, "sync", *args, timeout=timeout)

    def start(self, name: str, *, config: Path | None = None, wait_s: float = 15.0, watch: bool = False) -> None:
        """Start ``name``'s daemon; by default it only serves (``--no-watch``), so a test decides when
        changes move; ``watch=True`` runs it live."""
        node = self.nodes[name]
        if node.proc is not None and node.proc.poll() is None:
            return
        node.log = self.base / f"{name}.log"
        with open(node.log, "ab") as log:
            node.proc = subprocess.Popen(
                self.command(
                    name,
                    [
                        str(SHOAL),
                        "-c",
                        str(config or self.config),
                        "-N",
                        name,
                        "--state-dir",
                        str(node.state),
                        "-v",
                        "daemon",
                        *([] if watch else ["--no-watch"]),
                    ],
                ),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            if node.proc.poll() is not None:
                raise RuntimeError(f"daemon {name} exited with {node.proc.returncode}: {self.log_text(name)}")
            if self.listening(name) and self.controllable(name):
                return
            time.sleep(0.05)
        raise RuntimeError(f"daemon {name} did not listen within {wait_s}s: {self.log_text(name)}")

    def command(self, name: str, args: list[str]) -> list[str]:
        """How to run ``args`` as node ``name`` (a subclass may wrap it, e.g. in a network namespace)."""
        return args

    def listening(self, name: str) -> bool:
        node = self.nodes[name]
        # From the node's own address: a probe from elsewhere would be refused (and logged) under only-from.
        probe = (node.address, node.port)
        with contextlib.suppress(OSError), socket.create_connection(probe, 0.2, source_address=(node.address, 0)):
            return True
        return False

    def controllable(self, name: str) -> bool:
        """Does the daemon answer on its control socket (opened a moment after the TCP listener; a file
        left by a killed daemon refuses connections)?"""
        with contextlib.suppress(OSError), socket.socket(socket.AF_UNIX) as s:
            s.settimeout(0.2)
            s.connect(str(self.nodes[name].state / SOCKET_NAME))
            return True
        return False

    def stop(self, name: str, sig: int = signal.SIGTERM, timeout: float = 30.0) -> int | None:
        node = self.nodes[name]
        if node.proc is None:
            return None
        if node.proc.poll() is None:
            node.proc.send_signal(sig)
            try:
                node.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                node.proc.kill()
                node.proc.wait()
        rc = node.proc.returncode
        node.proc = None
        return rc

    def kill(self, name: str) -> None:
        self.stop(name, signal.SIGKILL)

    def close(self) -> None:
        for name in self.nodes:
            self.stop(name)

    def __enter__(self) -> Cluster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log_text(self, name: str) -> str:
        log = self.nodes[name].log
        return log.read_text(errors="replace") if log is not None and log.exists() else ""

    # -- trees -----------------------------------------------------------------------------------------

    def tree(self, name: str) -> dict[str, tuple[object, ...]]:
        """Every entry below the node's data directory: kind, content (hash or target), mode, owner, mtime."""
        root = self.nodes[name].data
        out: dict[str, tuple[object, ...]] = {}
        for dirpath, dirnames, filenames in os.walk(os.fsencode(root)):
            for entry in [*dirnames, *filenames]:
                if entry.startswith(b".shoal-tmp."):
                    continue  # see temp_files()
                full = os.path.join(dirpath, entry)
                rel = os.fsdecode(os.path.relpath(full, os.fsencode(root)))
                st = os.lstat(full)
                if stat.S_ISREG(st.st_mode):
                    with open(full, "rb") as f:
                        payload: object = hashlib.sha256(f.read()).hexdigest()
                elif stat.S_ISLNK(st.st_mode):
                    payload = os.fsdecode(os.readlink(full))
                else:
                    payload = None
                mode = None if stat.S_ISLNK(st.st_mode) else stat.S_IMODE(st.st_mode)  # symlinks have no mode
                size = st.st_size if stat.S_ISREG(st.st_mode) else 0
                out[rel] = (stat.S_IFMT(st.st_mode), payload, mode, st.st_uid, st.st_gid, st.st_mtime_ns, size)
        root_st = os.lstat(root)
        out["."] = (
            stat.S_IFDIR,
            None,
            stat.S_IMODE(root_st.st_mode),
            root_st.st_uid,
            root_st.st_gid,
            root_st.st_mtime_ns,
            0,
        )
        return out

    def temp_files(self, name: str) -> list[str]:
        return [
            os.path.join(d, f)
            for d, _, files in os.walk(self.nodes[name].data)
            for f in files
            if f.startswith(".shoal-tmp.")
        ]
