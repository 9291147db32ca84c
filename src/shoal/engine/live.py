"""Live mode: the daemon watches the trees and sends changes as they happen; scheduled full verifies.

Owns: the loop that turns inotify events (fs/watch.py) into coalesced batches (model/aggregate.py),
scans exactly those paths, and syncs with the peers when the scan recorded something; the per-group
``interval`` full verify (jittered); per-peer health (last success, last error, backoff while a peer
is down). Must not: speak the protocol (engine/sync.py and exchange.py do) or decide conflicts.

Echo suppression comes from the records: applying a remote change stores the applied file's own stat,
so the events our own writes cause scan as "unchanged" and start no sync (and our temp files are not
even reported by the watcher).

One sync runs at a time (``replica.sync_lock``, shared with ``shoal sync`` requests on the control
socket); events that arrive meanwhile gather into the next batch.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass, field
from typing import Any

from shoal.engine.exchange import Exchange
from shoal.engine.handshake import client_handshake
from shoal.engine.replica import Replica
from shoal.engine.reports import SessionReport
from shoal.engine.sync import backoff_s
from shoal.errors import ShoalError
from shoal.fs.results import ScanResult
from shoal.fs.watch import SYSCTL, Watcher
from shoal.model.aggregate import Aggregator
from shoal.model.patterns import Matcher
from shoal.net.transport import PeerClosed, PeerTimeout, PeerUnreachable, dial
from shoal.proto.errors import RemoteProtocolError

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 0.01  #: first event -> scan and send, unless a group sets ``delay``
DEFAULT_VERIFY_S = 3600.0  #: full verify when no group sets ``interval``
UNWATCHED_SCAN_S = 60.0  #: subtrees past the watch limit are scanned this often
MAX_DOWN_S = 60.0
RETRY_INCOMPLETE_S = 1.0  #: a directory a scan could not list is looked at again this much later
HOLD_MAX_S = 1.0  #: changes to paths a peer's batch is applying wait for it at most this long


@dataclass
class PeerHealth:
    last_ok: float | None = None  #: wall-clock time of the last completed session
    last_error: str | None = None
    failures: int = 0
    down_until: float = 0.0  #: monotonic; not dialled by live batches before this
    files_in: int = 0
    files_out: int = 0
    bytes_in: int = 0
    bytes_out: int = 0


@dataclass
class LiveStats:
    batches: dict[str, int] = field(default_factory=dict)  #: syncs started, by reason
    full_scans: int = 0
    last_full_scan: float | None = None
    last_batch_s: float | None = None
    events_cpu_s: float = 0.0
    peers: dict[str, PeerHealth] = field(default_factory=dict)


class Live:
    def __init__(self, replica: Replica) -> None:
        self.r = replica
        cfg = replica.cfg
        delays = [g.delay_ms / 1000 for g in cfg.groups if g.delay_ms is not None]
        # Changes at paths a peer's batch is applying (mostly that batch's own renames) are held until
        # the batch is done: scanned meanwhile they are only skipped, again and again.
        self.agg = Aggregator(delay_s=min(delays) if delays else DEFAULT_DELAY_S, hold_max_s=HOLD_MAX_S)
        intervals = [g.interval_ms / 1000 for g in cfg.groups if g.interval_ms]
        self.verify_s = min(intervals) if intervals else DEFAULT_VERIFY_S
        watched = [g for g in cfg.groups if g.watch]
        self.matcher = Matcher([(g.name, g.rules) for g in watched])
        self.watcher: Watcher | None = None
        self._watch_roots = self.matcher.roots() if watched else []
        self.wake = asyncio.Event()
        self.stats = LiveStats(peers={p: PeerHealth() for p in cfg.peers()})
        self.links: dict[str, asyncio.Task[None]] = {}
        self.link_reports: dict[str, SessionReport] = {}
        self._next_verify = time.monotonic() + self._jitter(self.verify_s)
        self._next_unwatched = time.monotonic() + UNWATCHED_SCAN_S

    @staticmethod
    def _jitter(s: float) -> float:
        return s * random.uniform(0.9, 1.1)

    def _on_change(self, paths: list[str] | None) -> None:
        self.agg.add(paths, time.monotonic())
        self.wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        if self._watch_roots:
            self.watcher = Watcher(self._watch_roots, self.matcher, self._on_change)
            t0 = time.monotonic()
            await asyncio.to_thread(self.watcher.watch_all)
            self.watcher.start(asyncio.get_running_loop())
            log.info("watching %d directories (%.2fs)", len(self.watcher.wds), time.monotonic() - t0)
        try:
            await self._cycle(None, "start-up")  # catch up on what changed while we were down
            while not stop.is_set():
                await self._wait(stop)
                if stop.is_set():
                    break
                now = time.monotonic()
                due = self.agg.due_at()
                if due is not None and now >= due:
                    alone = self.agg.take_alone()
                    paths = self.agg.take()
                    if paths is not None:
                        paths, alone = self._hold(paths, alone, now)
                    if paths is None or paths or alone:
                        await self._cycle(paths, "changes" if paths is not None else "queue overflow", alone)
                if now >= self._next_verify:
                    self._next_verify = now + self._jitter(self.verify_s)
                    await self._cycle(None, "scheduled verify")
                elif self.watcher is not None and self.watcher.unwatched and now >= self._next_unwatched:
                    self._next_unwatched = now + UNWATCHED_SCAN_S
                    await self._cycle(sorted(self.watcher.unwatched), "unwatched subtrees")
                elif self._peers_to_retry(now):
                    await self._cycle([], "retrying peers")
        finally:
            if self.watcher is not None:
                self.watcher.close()
            for t in list(self.links.values()):
                t.cancel()
            for t in list(self.links.values()):
                with contextlib.suppress(BaseException):
                    await t

    async def _wait(self, stop: asyncio.Event) -> None:
        now = time.monotonic()
        deadlines = [self._next_verify]
        due = self.agg.due_at()
        if due is not None:
            deadlines.append(due)
        if self.watcher is not None and self.watcher.unwatched:
            deadlines.append(self._next_unwatched)
        retry = [h.down_until for h in self.stats.peers.values() if h.down_until > 0]
        deadlines += retry
        held_until = self.agg.held_until()
        if held_until is not None:
            deadlines.append(held_until)
        timeout = max(0.0, min(deadlines) - now)
        self.wake.clear()
        if due is not None and timeout == 0:
            return
        waiters = [asyncio.create_task(self.wake.wait()), asyncio.create_task(stop.wait())]
        if held_until is not None:
            waiters.append(asyncio.create_task(self.r.batch_done.wait()))
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waiters:
                w.cancel()
        self.agg.release(time.monotonic(), early=self.r.batch_done.is_set())
        self.r.batch_done.clear()
        # A change woke us: give the batch its delay (counted from its first event) before scanning.
        due = self.agg.due_at()
        if due is not None and not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), max(0.0, due - time.monotonic()))

    async def scan_pending(self) -> ScanResult | None:
        """For a 'shoal sync' handed to us (the caller holds the sync lock): when every managed directory
        is watched, what changed is exactly what the watcher reported, so scan only that (the batch
        leaves the aggregator). None: scan everything (not watching, or something is unwatched)."""
        w = self.watcher
        if w is None or w.unwatched:
            return None
        w.read()  # events the kernel queued before the request came in (the writes our caller made)
        alone = self.agg.take_alone()
        paths = self.agg.take()
        if paths is None:
            return None
        res = await self.r.db(lambda db: self.r.scanner(db).scan(paths, alone) if paths or alone else ScanResult())
        self._again(res)
        return res

    def _hold(self, paths: list[str], alone: list[str], now: float) -> tuple[list[str], list[str]]:
        """Of a batch of changes, hold back the paths a peer's batch is applying (until a batch is done,
        or ``HOLD_MAX_S``: a scan then skips what is still being applied, and holds it again); return
        the rest."""
        busy = self.r.applying
        if not busy:
            return paths, alone
        self.agg.hold([p for p in paths if p in busy], [d for d in alone if d in busy], now)
        return [p for p in paths if p not in busy], [d for d in alone if d not in busy]

    def _again(self, res: ScanResult) -> None:
        """What a scan had to leave for later: paths a peer's batch was applying (held until it is
        done), and directories it could not read whole (a little later: a racing apply, a failing disk)."""
        now = time.monotonic()
        self.agg.hold(res.busy, res.busy_dirs, now)  # a directory alone: its entries have events of their own
        if res.incomplete:
            self.agg.add(res.incomplete, now + RETRY_INCOMPLETE_S)

    def peer_seen(self, name: str) -> None:
        """``name`` just connected to us: it is up, whatever our last attempt to reach it said."""
        h = self.stats.peers.get(name)
        if h is not None and h.down_until:
            h.down_until, h.failures = 0.0, 0
            self.wake.set()  # changes held back for it go out now

    def _peers_to_retry(self, now: float) -> bool:
        return any(0 < h.down_until <= now for h in self.stats.peers.values())

    async def _cycle(self, paths: list[str] | None, why: str, alone: list[str] | None = None) -> None:
        """Scan ``paths`` (None: everything; []: nothing) and the directories ``alone`` (without their
        contents), then sync with the peers that are up if the scan recorded a change, on a full verify,
        or to retry peers that were down."""
        t0 = time.monotonic()
        alone = alone or []
        async with self.r.sync_lock:
            scanned = None
            if paths is None or paths or alone:
                # The paths a peer's batch is applying right now are skipped (their files may be on
                # disk before their records): a scan must not take them for local edits.
                scanned = await self.r.db(lambda db: self.r.scanner(db).scan(paths, alone))
                self._again(scanned)  # a local edit may hide in what it skipped
                if paths is None:
                    self.stats.full_scans += 1
                    self.stats.last_full_scan = time.time()
            now = time.monotonic()
            changed = scanned is not None and scanned.recorded > 0
            if scanned is not None:
                self.r.actions.changed(scanned.changed_paths, local=True)
            if changed:
                self.r.notify_changed()  # every open session pokes its peer, which pulls
            linked = self.r.linked() | set(self.links)
            if changed or paths is None:
                targets = [p for p, h in self.stats.peers.items() if h.down_until <= now and p not in linked]
            else:
                targets = [p for p, h in self.stats.peers.items() if 0 < h.down_until <= now and p not in linked]
            for peer in targets:  # no session with it yet: open one (its first round is a full exchange)
                self.links[peer] = asyncio.create_task(self._link(peer), name=f"shoal-link-{peer}")
            if not changed and not targets:
                return
            if not changed and paths is not None:
                why = "retrying peers"  # nothing of ours changed (an echo of our applies): only the retry
        self.stats.batches[why] = self.stats.batches.get(why, 0) + 1
        self.stats.last_batch_s = time.monotonic() - t0
        log.info("%s: %d peer(s) poked, %d link(s) opened", why, len(linked), len(targets))

    async def _link(self, peer: str) -> None:
        """A lasting session with ``peer``: dial, authenticate, exchange, then stay (poke and pull) until
        the connection ends or we stop. A failure marks the peer down; the retry logic opens it again."""
        cfg, h = self.r.cfg, self.stats.peers.setdefault(peer, PeerHealth())
        info = cfg.peers().get(peer)
        try:
            if info is None:
                return
            try:
                ch = await dial(info.address, info.port, cfg.uses_tls(peer), source=self.r.source_address)
            except (PeerUnreachable, PeerClosed) as e:
                self._down(h, str(e), time.monotonic())
                return
            try:
                auth = await client_handshake(self.r, ch, peer)
                h.down_until, h.failures, h.last_error, h.last_ok = 0.0, 0, None, time.time()

                def alive(_: SessionReport) -> None:
                    h.last_ok = time.time()

                session = Exchange(self.r, ch, auth, client=True, pull=True, persistent=True, progress=alive)
                self.link_reports[peer] = session.report
                report = await session.run()
                if report.error and not self.r.stopping.is_set():
                    self._down(h, report.error, time.monotonic())
            except (ShoalError, PeerClosed, PeerTimeout, RemoteProtocolError, OSError) as e:
                self._down(h, str(e), time.monotonic())
            finally:
                done = self.link_reports.pop(peer, None)
                if done is not None:
                    h.files_in += done.files_in
                    h.files_out += done.files_out
                    h.bytes_in += done.bytes_in
                    h.bytes_out += done.bytes_out
                await ch.close()
        finally:
            self.links.pop(peer, None)

    @staticmethod
    def _down(h: PeerHealth, why: str, now: float) -> None:
        h.last_error = why
        h.failures += 1
        h.down_until = now + max(0.5, min(MAX_DOWN_S, backoff_s(h.failures, base_s=1.0, cap_s=MAX_DOWN_S)))

    def _live(self, peer: str, field_name: str) -> int:
        rep = self.link_reports.get(peer)
        return int(getattr(rep, field_name)) if rep is not None else 0

    def status(self) -> dict[str, Any]:
        w = self.watcher
        return {
            "watching": w is not None,
            "watches": len(w.wds) if w is not None else 0,
            "unwatched": sorted(w.unwatched) if w is not None else [],
            "watch_limit_hint": f"sysctl -w {SYSCTL}=<more>" if w is not None and w.unwatched else None,
            "events": w.events if w is not None else 0,
            "overflows": w.overflows if w is not None else 0,
            "queue": self.agg.pending,
            "delay_s": self.agg.delay_s,
            "verify_every_s": self.verify_s,
            "batches": self.stats.batches,
            "full_scans": self.stats.full_scans,
            "last_full_scan": self.stats.last_full_scan,
            "last_batch_s": self.stats.last_batch_s,
            "peers": {
                name: {
                    "linked": name in self.r.linked(),
                    "last_ok": h.last_ok,
                    "last_error": h.last_error,
                    "apply_problems": list(self.r.apply_problems.get(name, [])),
                    "down": h.down_until > time.monotonic(),
                    "files_in": h.files_in + self._live(name, "files_in"),
                    "files_out": h.files_out + self._live(name, "files_out"),
                    "bytes_in": h.bytes_in + self._live(name, "bytes_in"),
                    "bytes_out": h.bytes_out + self._live(name, "bytes_out"),
                }
                for name, h in sorted(self.stats.peers.items())
            },
        }
