"""The daemon's end of the control socket (mode 0600 in the state directory; root or the daemon's user).

Owns: accepting local requests and running them on the daemon's replica. A sync requested here is the
same ``sync_once`` a standalone ``shoal sync`` runs, minus the process start-up and setup.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import fcntl
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.control.protocol import socket_path
from shoal.engine.replica import Replica
from shoal.engine.sync import sync_once
from shoal.errors import ShoalError
from shoal.fs.results import ScanResult

log = logging.getLogger(__name__)

LOCK_NAME = "daemon.lock"


class DaemonLock:
    """One daemon per state directory: an exclusive ``flock`` on ``daemon.lock`` (holding the pid),
    taken before the daemon listens anywhere and held until it exits. A second daemon is refused
    while the first lives, instead of taking over its control socket; a lock left by a killed daemon
    goes with its process."""

    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, LOCK_NAME)
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "?"
            os.close(fd)
            raise ShoalError(
                f"another shoal daemon (pid {holder}) runs for the state directory {os.path.dirname(self.path)}; "
                "stop it first (or give this one its own --state-dir)"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        control = socket_path(os.path.dirname(self.path))
        if _answers(control):
            self.release()
            raise ShoalError(f"something already answers on {control}; not taking it over")

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _answers(path: str) -> bool:
    """Whether a process accepts connections on the unix socket at ``path`` (a stale one does not)."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(1.0)
    try:
        sock.connect(path)
    except OSError:
        return False
    finally:
        sock.close()
    return True


class ControlServer:
    def __init__(
        self,
        replica: Replica,
        status: Callable[[], dict[str, Any]] | None = None,
        scan_pending: Callable[[], Awaitable[ScanResult | None]] | None = None,
    ) -> None:
        self.replica = replica
        #: a watching daemon already knows what changed: scan just that (None from it: scan everything)
        self._scan_pending = scan_pending
        self.path = socket_path(replica.state_dir)
        self._server: asyncio.AbstractServer | None = None
        self._status = status

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        old = os.umask(0o177)
        try:
            self._server = await asyncio.start_unix_server(self._handle, self.path)
        finally:
            os.umask(old)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            line = await asyncio.wait_for(reader.readline(), 10)
            request = json.loads(line or b"{}")
            answer = await self._dispatch(request)
        except (json.JSONDecodeError, TimeoutError, ValueError) as e:
            answer = {"error": f"bad request: {e}"}
        writer.write(json.dumps(answer).encode() + b"\n")
        with contextlib.suppress(ConnectionError):
            await writer.drain()
        writer.close()

    async def _dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        if request.get("verb") == "status":
            return {"status": self._status() if self._status is not None else {}}
        if request.get("verb") != "sync":
            return {"error": f"unknown request {request.get('verb')!r}"}
        log.debug("control: sync requested (%s)", {k: v for k, v in request.items() if v and k != "verb"} or "all")
        async with self.replica.sync_lock:
            scanned = None
            trust_watcher = not (request.get("paths") or request.get("dry_run") or request.get("full"))
            if trust_watcher and self._scan_pending is not None:
                scanned = await self._scan_pending()
            report = await sync_once(
                self.replica,
                scanned=scanned,
                paths=request.get("paths") or None,
                peers=request.get("peers") or None,
                groups=request.get("groups") or None,
                dry_run=bool(request.get("dry_run")),
                push_only=bool(request.get("push_only")),
            )
        return {"report": dataclasses.asdict(report)}
