"""One-shot synchronization (``shoal sync``): scan, then exchange with every reachable peer at once.

Owns: choosing peers, dialling them in parallel, and the run's summary. Must not: know message details.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
from collections.abc import Callable, Sequence

from shoal.config.resolve import NodeConfig
from shoal.engine.exchange import Exchange
from shoal.engine.handshake import client_handshake
from shoal.engine.replica import Replica
from shoal.engine.reports import SessionReport, SyncReport
from shoal.errors import AuthError, ShoalError
from shoal.fs.results import ScanResult
from shoal.fs.scan import Scanner
from shoal.net.transport import PeerClosed, PeerTimeout, PeerUnreachable, dial
from shoal.proto.errors import RemoteProtocolError
from shoal.state.db import DB_NAME, StateDB, ensure_state_dir

log = logging.getLogger(__name__)

DIAL_ATTEMPTS = 3


def backoff_s(attempt: int, base_s: float = 0.2, cap_s: float = 5.0) -> float:
    """Exponential backoff with full jitter: a restarting peer is not hit by every node at once."""
    return random.uniform(0, min(cap_s, base_s * 3**attempt))


async def sync_once(
    replica: Replica,
    *,
    paths: Sequence[str] | None = None,
    peers: Sequence[str] | None = None,
    groups: Sequence[str] | None = None,
    dry_run: bool = False,
    push_only: bool = False,
    on_session: Callable[[SessionReport], None] | None = None,
    progress: Callable[[SessionReport], None] | None = None,
    scanned: ScanResult | None = None,
    dial_attempts: int = DIAL_ATTEMPTS,
) -> SyncReport:
    """Scan (unless the caller did: ``scanned``, see ``scan_first``), then exchange with the peers."""
    report = SyncReport(scan=scanned)
    cfg = replica.cfg
    if not dry_run and scanned is None:
        # (paths a peer's batch is applying right now are left to that apply)
        report.scan = await replica.db(lambda db: replica.scanner(db).scan(list(paths) if paths else None))
    if report.scan is not None:
        s = report.scan
        log.debug(
            "scan: %d new, %d changed, %d deleted, %d unchanged, %d files read, in %.3fs",
            s.new,
            s.changed + s.metadata + s.type_changed,
            s.deleted,
            s.unchanged,
            s.hashed_files,
            s.seconds,
        )
        replica.actions.changed(s.changed_paths, local=True)
    targets = sorted(
        p
        for p in cfg.peers()
        if (peers is None or p in peers) and (groups is None or any(g.name in groups for g in replica.groups_with(p)))
    )

    async def one(name: str) -> None:
        peer = cfg.peers()[name]
        for attempt in range(dial_attempts):
            try:
                ch = await dial(peer.address, peer.port, cfg.uses_tls(name), source=replica.source_address)
                break
            except PeerUnreachable as e:
                if attempt == dial_attempts - 1:
                    report.unreachable[name] = str(e)
                    return
                await asyncio.sleep(backoff_s(attempt))
            except PeerClosed as e:
                report.sessions.append(SessionReport(name, error=str(e)))
                return
        try:
            auth = await client_handshake(replica, ch, name, offer=not dry_run)
            session = Exchange(replica, ch, auth, client=True, pull=not push_only, dry_run=dry_run, progress=progress)
            result = await session.run()
        except (AuthError, RemoteProtocolError, PeerClosed, PeerTimeout) as e:
            result = SessionReport(name, error=str(e))
        except ShoalError as e:
            result = SessionReport(name, error=str(e))
        finally:
            await ch.close()
        report.sessions.append(result)
        if on_session is not None:
            on_session(result)

    await asyncio.gather(*(one(n) for n in targets))
    report.sessions.sort(key=lambda s: s.peer)
    # Conflicts found by earlier runs stay open until settled: a run is not converged while any is.
    fresh = {(c, s.peer) for s in report.sessions for c in s.conflicts}
    report.open_conflicts = [
        f"{path} with {peer}"
        for path, peer, _, _ in await replica.db(lambda db: db.conflicts())
        if (path, peer) not in fresh and peer in targets
    ]
    await replica.actions.drain()  # as csync2: the run ends when its actions have run
    return report


def scan_first(cfg: NodeConfig, state_dir: str, paths: Sequence[str] | None, db_file: str = "") -> ScanResult:
    """Scan before any thread or event loop exists, so that a large tree's walk may be split over two
    processes (fs/walk.py forks only while a single thread runs)."""
    ensure_state_dir(state_dir)
    with StateDB.open(db_file or os.path.join(state_dir, DB_NAME), busy_timeout_s=float(cfg.lock_timeout_s)) as db:
        return Scanner(db, cfg).scan(list(paths) if paths else None)
