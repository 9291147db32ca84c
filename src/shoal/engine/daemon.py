"""``shoal daemon``: serve peers, watch the trees and send changes as they happen, until told to stop.

Owns: the listener, one task per peer session, and a graceful stop: SIGTERM or SIGINT stops accepting,
lets running sessions finish their batch (up to a grace period), and exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable
from typing import Any

from shoal.config.resolve import NodeConfig
from shoal.control.server import ControlServer, DaemonLock
from shoal.engine.exchange import Exchange
from shoal.engine.handshake import server_handshake
from shoal.engine.live import Live
from shoal.engine.metrics import MetricsServer, render
from shoal.engine.replica import Replica
from shoal.engine.sync import backoff_s
from shoal.errors import ShoalError
from shoal.fs.results import ScanResult
from shoal.net.transport import Channel, Listener, PeerClosed, PeerTimeout, address_allowed, server_context
from shoal.proto.errors import RemoteProtocolError
from shoal.state.db import StateDB

log = logging.getLogger(__name__)

GRACE_S = 20.0
LIVE_RESTART_MAX_S = 30.0  #: live mode that keeps failing is restarted at most this far apart
RESOLVE_TIMEOUT_S = 10.0  #: a peer host name that has not resolved by then is left out of the peer addresses


async def serve_session(replica: Replica, ch: Channel, seen: Callable[[str], None] | None = None) -> None:
    """One peer connected to us: authenticate it, then exchange until it is done. Failures are logged."""
    try:
        auth = await server_handshake(replica, ch)
        if auth is None:
            return
        if seen is not None:
            seen(auth.peer)
        report = await Exchange(replica, ch, auth, client=False, pull=True).run()
        if report.error:
            log.warning("session with %s ended: %s", auth.peer, report.error)
        log.info(
            "session with %s: %d files in, %d out, %d deleted, %d conflicts",
            auth.peer,
            report.files_in,
            report.files_out,
            report.deleted_in,
            len(report.conflicts),
        )
    except (RemoteProtocolError, PeerClosed, PeerTimeout) as e:
        log.warning("session with %s failed: %s", ch.peer_address, e)
    except ShoalError as e:
        log.warning("session with %s failed: %s", ch.peer_address, e)


def _peer_hosts(cfg: NodeConfig) -> tuple[frozenset[str], frozenset[str]]:
    """The addresses the config gives for this node's peers: (IP literals, host names to resolve)."""
    literals: set[str] = set()
    names: set[str] = set()
    for p in cfg.peers().values():
        try:
            literals.add(str(ipaddress.ip_address(p.address)))
        except ValueError:
            names.add(p.address)
    return frozenset(literals), frozenset(names)


async def _resolve(name: str) -> frozenset[str]:
    loop = asyncio.get_running_loop()
    try:
        infos = await asyncio.wait_for(loop.getaddrinfo(name, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S)
    except (OSError, TimeoutError, UnicodeError) as e:  # UnicodeError: not a name IDNA can encode
        log.info("peer host %s does not resolve (%s): its connections get a stranger's limits", name, e or "timed out")
        return frozenset()
    return frozenset(str(info[4][0]) for info in infos)


def _follow_peer_addresses(listener: Listener, cfg: NodeConfig) -> asyncio.Task[None] | None:
    """Give the listener ``cfg``'s peer addresses: the IP literals at once, host names once they resolve
    (in the returned task; until then, and if they never do, such a peer gets a stranger's limits)."""
    literals, names = _peer_hosts(cfg)
    listener.set_peer_addresses(literals)
    if not names:
        return None

    async def resolve() -> None:
        found = await asyncio.gather(*(_resolve(n) for n in sorted(names)))
        listener.set_peer_addresses(literals.union(*found))

    return asyncio.create_task(resolve(), name="shoal-resolve-peers")


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None and not task.done():
        task.cancel()
        with contextlib.suppress(BaseException):
            await task


def _listener(
    replica: Replica, host: str | None, port: int | None, handle: Callable[[Channel], Awaitable[None]]
) -> Listener:
    def allowed(address: str) -> bool:
        return any(not g.only_from or address_allowed(address, g.only_from) for g in replica.cfg.groups)

    return Listener(
        host or replica.cfg.listen_address,
        port or replica.cfg.listen_port,
        server_context(replica.ident.cert_path, replica.ident.key_path),
        handle,
        allowed,
        peer_addresses=_peer_hosts(replica.cfg)[0],
    )


async def serve_one(
    replica: Replica,
    *,
    host: str | None = None,
    port: int | None = None,
    sock: socket.socket | None = None,
    ready: asyncio.Event | None = None,
) -> int:
    """Serve exactly one connection, then return: the one already accepted on ``sock`` (an inetd or
    systemd socket-activated start), or the first one accepted on the listen address. No watching,
    no control socket: several of these may run at once."""
    done = asyncio.Event()

    async def handle(ch: Channel) -> None:
        try:
            await serve_session(replica, ch)
        finally:
            done.set()

    listener = _listener(replica, host, port, handle)
    resolving = _follow_peer_addresses(listener, replica.cfg)
    if sock is None:
        await listener.start()
        log.info("serving one connection on %s:%d", listener.host, listener.bound_port)
    if ready is not None:
        ready.set()
    try:
        if sock is not None:
            peer = sock.getpeername()
            address = peer[0] if isinstance(peer, tuple) else "local"
            if not listener.allowed(address):
                log.warning("refused connection from %s: not in any group's only-from networks", address)
                sock.close()
                return 1
            await listener.serve_accepted(sock, address)
        else:
            await done.wait()
            await listener.stop_accepting()
    finally:
        await _cancel(resolving)
        await listener.close()
    return 0


async def serve(
    replica: Replica,
    *,
    host: str | None = None,
    port: int | None = None,
    ready: asyncio.Event | None = None,
    watch: bool = True,
    reload: Callable[[], NodeConfig] | None = None,
    metrics_listen: str | None = None,
) -> int:
    """Serve until SIGTERM/SIGINT. SIGHUP calls ``reload`` for a new config and applies it without
    dropping sessions in flight; a config with errors is logged and the old one stays. A second
    daemon for the same state directory is refused (ShoalError) before it listens anywhere."""
    # Signal handlers come first: a SIGTERM that arrives while the listener starts must still mean
    # "stop cleanly", not the default action.
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    claim = DaemonLock(replica.state_dir)
    try:
        claim.acquire()
    except ShoalError:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        raise
    try:
        return await _serve_claimed(replica, stop, host, port, ready, watch, reload, metrics_listen)
    finally:
        claim.release()


async def _serve_claimed(
    replica: Replica,
    stop: asyncio.Event,
    host: str | None,
    port: int | None,
    ready: asyncio.Event | None,
    watch: bool,
    reload: Callable[[], NodeConfig] | None,
    metrics_listen: str | None,
) -> int:
    cfg = replica.cfg
    sessions: set[asyncio.Task[None]] = set()
    loop = asyncio.get_running_loop()

    async def handle(ch: Channel) -> None:
        task = asyncio.current_task()
        assert task is not None
        sessions.add(task)
        try:
            await serve_session(replica, ch, live.peer_seen if live is not None else None)
        finally:
            sessions.discard(task)

    listener = _listener(replica, host, port, handle)
    resolving = _follow_peer_addresses(listener, cfg)
    await listener.start()
    started = time.time()
    live: Live | None = None
    live_stop = asyncio.Event()
    live_task: asyncio.Task[None] | None = None
    live_failures, live_error = 0, None  # live mode restarted after a failure: how often, the last error

    async def run_live(stop_live: asyncio.Event) -> None:
        """Live mode, restarted if it ever fails: a daemon that kept serving while its watcher had died
        would leave every later local change unsent until the next full verify."""
        nonlocal live, live_failures, live_error
        failures = 0
        while live is not None:
            try:
                await live.run(stop_live)
                return
            except Exception as e:
                failures += 1
                live_failures += 1
                live_error = f"{type(e).__name__}: {e}"
                log.exception("live mode failed; restarting it (with a full scan) [failure %d]", failures)
            with contextlib.suppress(TimeoutError):
                pause = 0.5 + backoff_s(failures, base_s=0.5, cap_s=LIVE_RESTART_MAX_S)
                await asyncio.wait_for(stop_live.wait(), pause)
            if stop_live.is_set():
                return
            live = Live(replica)

    async def start_live() -> None:
        nonlocal live, live_task, live_stop
        if live_task is not None:
            live_stop.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(live_task, GRACE_S)
        live_stop = asyncio.Event()
        live = Live(replica) if watch else None
        live_task = asyncio.create_task(run_live(live_stop), name="shoal-live") if live is not None else None

    hup = asyncio.Event()
    if reload is not None:
        loop.add_signal_handler(signal.SIGHUP, hup.set)

    async def reloader() -> None:
        nonlocal resolving
        while True:
            await hup.wait()
            hup.clear()
            assert reload is not None
            try:
                cfg_new = await asyncio.to_thread(reload)
                replica.reconfigure(cfg_new)
            except ShoalError as e:
                log.error("SIGHUP: the new config has errors; keeping the running one:\n%s", e)
                continue
            await _cancel(resolving)
            resolving = _follow_peer_addresses(listener, cfg_new)
            await start_live()
            log.info("SIGHUP: config reloaded: %d group(s), %d peer(s)", len(cfg_new.groups), len(cfg_new.peers()))

    def status() -> dict[str, Any]:
        out: dict[str, Any] = {
            "node": cfg.node,
            "pid": os.getpid(),
            "listening": f"{listener.host}:{listener.bound_port}",
            "started": started,
            "sessions": len(sessions),
        }
        if live is not None:
            out.update(live.status())
            out["live_failures"], out["live_last_error"] = live_failures, live_error
        return out

    async def scan_pending() -> ScanResult | None:
        return await live.scan_pending() if live is not None else None

    control = ControlServer(replica, status, scan_pending)
    await control.start()
    metrics = None
    if metrics_listen or cfg.metrics_listen:

        async def collect() -> str:
            peers = sorted(replica.cfg.peers())

            def counts(db: StateDB) -> tuple[dict[str, int], int]:
                return {p: db.count_since(db.watermarks(p)[0]) for p in peers}, db.count_conflicts()

            lag, conflicts = await replica.db(counts)
            return render(status(), lag, conflicts)

        metrics = MetricsServer(metrics_listen or cfg.metrics_listen or "", collect)
        await metrics.start()
    log.info("shoal daemon for %s listening on %s:%d", cfg.node, listener.host, listener.bound_port)
    await start_live()
    reloading = asyncio.create_task(reloader(), name="shoal-reload")
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
        replica.stopping.set()  # lasting sessions end after their current batch
        live_stop.set()
        if live_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(live_task, GRACE_S)
    finally:
        reloading.cancel()
        with contextlib.suppress(BaseException):
            await reloading
        await _cancel(resolving)
        if reload is not None:
            loop.remove_signal_handler(signal.SIGHUP)
        if live_task is not None and not live_task.done():
            live_task.cancel()
            with contextlib.suppress(BaseException):
                await live_task
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
        log.info("stopping: %d session(s) in flight", len(sessions))
        await listener.stop_accepting()
        if sessions:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.gather(*sessions, return_exceptions=True), GRACE_S)
        await listener.close()
        await control.close()
        if metrics is not None:
            await metrics.close()
    return 0
