"""One authenticated session: each side pulls the other's changes, and serves the other's pulls.

Owns: turning index batches into decisions, content requests and applied changes (the puller), and
answering index and content requests (the responder). Must not: parse frames or speak TLS (net/), or
decide conflicts beyond reconcile's verdict (model/).

Puller, per index batch: keep the records whose path one of the authenticated groups manages here,
reconcile each against ours, re-check the disk for the ones to apply (a path that changed since our
last scan is rescanned first, so a local edit becomes a conflict instead of being overwritten), then
apply in a safe order (deletions deepest first, directories top down, then files and special files),
commit the batch durably, store the records (with our own sequence numbers: that is what forwards them
to our other peers), advance the watermark and acknowledge. A record that could not be applied holds
the watermark back, so it is offered again next time.

Content: files up to ``INLINE_MAX`` ride inline in the index batch; larger ones are requested, many at
a time, and come whole or, for a large file we hold an older version of, as a chunk delta.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import replace
from typing import TypeVar

from shoal.config.resolve import GroupView
from shoal.engine.handshake import Authenticated
from shoal.engine.keeping import keep_copies, needs_copy
from shoal.engine.replica import Replica
from shoal.engine.reports import SessionReport
from shoal.engine.resolution import settled_conflicts
from shoal.engine.serving import Responder
from shoal.engine.wire import record_bytes, to_record
from shoal.fs.apply import (
    ApplyError,
    ContentMismatch,
    DirectoryNotEmpty,
    FileWriter,
    RefusedByPolicy,
    Staged,
    Tree,
    discard,
    disk_matches,
)
from shoal.fs.scan import Scanner
from shoal.model.paths import UnsafePath
from shoal.model.reconcile import Action, Context, Decision, reconcile, stored_vector
from shoal.model.records import Kind, Record, Vector, bump, merge
from shoal.net.transport import Channel, PeerClosed
from shoal.proto import messages as m
from shoal.proto.errors import RemoteProtocolError
from shoal.state.db import KeptVersion, StateDB
from shoal.transfer import delta

log = logging.getLogger(__name__)
T = TypeVar("T")

INLINE_MAX = 64 << 10
MAX_IN_FLIGHT = 256  #: content requests outstanding at once
#: messages of content (pieces of up to a frame each) read ahead of the puller: past this the read loop
#: waits, and TCP holds the sender back (without it a peer could fill our memory as fast as it can send)
CONTENT_QUEUED = 32
#: requests of the peer not yet answered: an honest peer waits for answers long before this (it has at
#: most MAX_IN_FLIGHT content requests and a few index requests out); one that does not is cut
MAX_REQUESTS_QUEUED = 2 * MAX_IN_FLIGHT + 64
DRAIN_S = 2.0  #: how long a finished session waits for requests it already read
MAX_PATHS_ASKED = 1000  #: paths per by-path index request (the responder's limit too)
MAX_PROBLEMS_SHOWN = 5  #: per peer, in 'shoal status'
KEEPALIVE_S = 15.0  #: a lasting session pokes at least this often
RETRY_HELD_S = 1.0  #: a lasting session pulls again this soon after a record held its pull back (doubling)


def _depth(path: str) -> int:
    return path.count("/")


class Exchange:
    def __init__(
        self,
        replica: Replica,
        ch: Channel,
        auth: Authenticated,
        *,
        client: bool,
        pull: bool,
        dry_run: bool = False,
        progress: Callable[[SessionReport], None] | None = None,
        persistent: bool = False,
    ) -> None:
        self.progress = progress or (lambda _: None)  #: told after every applied batch and served file
        self.r = replica
        self.ch = ch
        self.auth = auth
        self.client = client
        self.pull_enabled = pull and auth.peer_offers and not replica.peer_is_slave(auth.peer, auth.groups)
        self.dry_run = dry_run
        self.report = SessionReport(auth.peer)
        self.matcher = replica.matcher_for(auth.groups)
        self.roots = self.matcher.roots()
        self._walkable: dict[str, bool] = {}  # directory -> reachable under the shared groups' patterns
        self._new_maps: dict[bytes, list[tuple[bytes, int, int]]] = {}  # chunk maps of received large files
        # Index pages stream back to back while content answers for an earlier page arrive: two queues,
        # each in order, so the puller can take either without tripping over the other.
        self._index_q: asyncio.Queue[m.Message] = asyncio.Queue()
        self._content_q: asyncio.Queue[m.Message] = asyncio.Queue(CONTENT_QUEUED)
        self._requests: asyncio.Queue[m.Message | None] = asyncio.Queue()
        self.acked_upto = 0  #: the highest Ack the peer sent (Acks are coalesced, not queued one by one)
        self._ack_queued = False
        self._peer_done = asyncio.Event()
        self._bye = asyncio.Event()
        self._closed = asyncio.Event()
        self._close_reason: str | None = None
        self.persistent = persistent  #: a client that keeps the session open (live mode's link)
        #: stays open after the first round (a server session, or a live link): pokes, ends on stop
        self.lasting = persistent or not client
        self._poked = asyncio.Event()  # the peer has records we may not have
        self.local_changed = asyncio.Event()  # we have records the peer may not have: poke it
        self._peer_upto = 0
        self._held_pulls = 0  # pulls in a row that a record which could not be applied held back
        self._retry_at: float | None = None  # when a lasting session pulls again unasked, after such a pull
        # What we asked for and not yet fully received: anything else of those kinds is a protocol error
        # (a peer may not push pages or content at us, so our queues only ever hold answers).
        self._pages_asked: collections.deque[int] = collections.deque()  # per index request: pages still due
        self._content_asked = 0  # content requests whose ContentEnd has not arrived
        self._aborted: list[str] = []  # paths whose temp file was removed: their directory's time is restored

    # -- session lifecycle ---------------------------------------------------------------------------

    async def run(self) -> SessionReport:
        if self.lasting:  # from the start: a change made during the first round must still be poked about
            self.r.sessions[self] = None
        reader = asyncio.create_task(self._read_loop(), name=f"read-{self.auth.peer}")
        responder = asyncio.create_task(Responder(self).run(), name=f"respond-{self.auth.peer}")
        try:
            if self.pull_enabled:
                await self._pull()
            rep = self.report
            await self.ch.send(m.PullDone(rep.files_in + rep.deleted_in, rep.conflicts[:1000], rep.problems[:1000]))
            if self.client and not self.persistent:
                await self._wait_for(self._peer_done)
                await self.ch.send(m.Bye("done"))
            else:
                await self._stay()
        except (PeerClosed, OSError, RemoteProtocolError) as e:
            if isinstance(e, RemoteProtocolError):
                log.warning("session with %s dropped: %s", self.auth.peer, e)
            if not (self._bye.is_set() and not self.client):
                self.report.error = str(e)
        finally:
            self.r.sessions.pop(self, None)
            self._requests.put_nowait(None)
            # Requests already read are still answered or recorded: above all the peer's last Ack, which
            # arrives just before its PullDone (else our view of what it holds lags by one batch).
            await asyncio.wait({responder}, timeout=DRAIN_S)
            for t in (reader, responder):
                t.cancel()
            for t in (reader, responder):
                with contextlib.suppress(BaseException):
                    await t
        return self.report

    async def _stay(self) -> None:
        """After the first round: the server until the client's Bye, a persistent client until it is
        cancelled or the connection ends. Either side pulls again when poked (if the poke says the peer
        has records past our watermark), pokes the peer when our records change, and pokes every
        ``KEEPALIVE_S`` so that neither side's read timeout fires on a quiet link. A pull that a record
        held back is tried again unasked, after ``RETRY_HELD_S`` doubling (the peer may have nothing new
        to poke about: a full disk here that has since been cleared, a local edit now scanned)."""
        keepalive_at = time.monotonic() + KEEPALIVE_S
        while not self._bye.is_set():
            wake_at = keepalive_at if self._retry_at is None else min(keepalive_at, self._retry_at)
            waits = [
                asyncio.create_task(e.wait())
                for e in (self._poked, self.local_changed, self._bye, self._closed, self.r.stopping)
            ]
            try:
                timeout = max(0.0, wake_at - time.monotonic())
                await asyncio.wait(waits, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for w in waits:
                    w.cancel()
            if self._bye.is_set() or self.r.stopping.is_set():
                return
            if self._closed.is_set():
                raise PeerClosed(self._close_reason or f"{self.auth.peer} went away")
            retry = self._retry_at is not None and time.monotonic() >= self._retry_at
            if self._poked.is_set() or retry:
                self._poked.clear()
                received = (await self.r.db(lambda db: db.watermarks(self.auth.peer)))[1]
                if self.pull_enabled and (retry or self._peer_upto > received):
                    await self._pull()
                    self.progress(self.report)
            # Poke when our records changed, or as a keepalive every KEEPALIVE_S; never in answer to a
            # poke (two lasting sessions would bounce pokes forever).
            keepalive = time.monotonic() >= keepalive_at
            if self.local_changed.is_set() or keepalive:
                self.local_changed.clear()
                keepalive_at = time.monotonic() + KEEPALIVE_S
                # (a keepalive reads the database: another process may have written it meanwhile)
                upto = await (self.r.db(lambda db: db.last_seq()) if keepalive else self.r.last_seq())
                await self.ch.send(m.Poke(upto))

    async def _wait_for(self, event: asyncio.Event) -> None:
        reader_failed = asyncio.create_task(self._closed.wait())
        waiter = asyncio.create_task(event.wait())
        try:
            await asyncio.wait({reader_failed, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for t in (reader_failed, waiter):
                t.cancel()
        if not event.is_set():
            raise PeerClosed(self._close_reason or f"{self.auth.peer} went away")

    def _fail(self, reason: str) -> None:
        """End the session: wake every waiter with ``reason``."""
        self._close_reason = self._close_reason or reason
        self._index_q.put_nowait(m.Bye(reason))
        while self._content_q.full():  # what is left of the content no longer matters
            self._content_q.get_nowait()
        self._content_q.put_nowait(m.Bye(reason))
        self._closed.set()

    async def _read_loop(self) -> None:
        try:
            while True:
                msg = await self.ch.recv()
                if isinstance(msg, m.IndexBatch):
                    if not self._pages_asked:
                        raise RemoteProtocolError(f"{self.auth.peer} sent an index page nobody asked for")
                    self._pages_asked[0] -= 1
                    if not msg.more or self._pages_asked[0] == 0:
                        self._pages_asked.popleft()
                    self._index_q.put_nowait(msg)  # bounded: at most the pages asked for
                elif isinstance(msg, m.ContentData | m.ContentCopy | m.ContentEnd):
                    if self._content_asked == 0:
                        raise RemoteProtocolError(f"{self.auth.peer} sent content nobody asked for")
                    self._content_asked -= isinstance(msg, m.ContentEnd)
                    await self._content_q.put(msg)
                elif isinstance(msg, m.PullDone):
                    self.report.peer_applied = msg.applied
                    self.report.peer_conflicts = list(msg.conflicts)
                    self.report.peer_problems = list(msg.problems)
                    self._peer_done.set()
                elif isinstance(msg, m.Poke):
                    self._peer_upto = max(self._peer_upto, msg.upto)
                    self._poked.set()
                elif isinstance(msg, m.Bye):
                    self._bye.set()
                    return
                elif isinstance(msg, m.Ack):
                    self.acked_upto = max(self.acked_upto, msg.upto)
                    if not self._ack_queued:
                        self._ack_queued = True
                        self._requests.put_nowait(msg)
                else:
                    if self._requests.qsize() >= MAX_REQUESTS_QUEUED:
                        raise RemoteProtocolError(
                            f"{self.auth.peer} sent {MAX_REQUESTS_QUEUED} requests without waiting for answers"
                        )
                    self._requests.put_nowait(msg)
        except Exception as e:  # handed to whoever waits: the session is over
            self._fail(str(e))
        finally:
            self._closed.set()

    async def _next(self, queue: asyncio.Queue[m.Message]) -> m.Message:
        """The next message of ``queue``; PeerClosed if the session ends, or the daemon stops while a
        lasting session waits (nothing is lost: the watermark moves only with applied batches)."""
        if not queue.empty() or not self.lasting:
            msg = await queue.get()
        else:
            getter = asyncio.create_task(queue.get())
            stopping = asyncio.create_task(self.r.stopping.wait())
            try:
                await asyncio.wait({getter, stopping}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopping.cancel()
                if not getter.done():
                    getter.cancel()
            if not getter.done() or getter.cancelled():
                raise PeerClosed("this daemon is stopping")
            msg = getter.result()
        if isinstance(msg, m.Bye):
            raise PeerClosed(msg.reason)
        return msg

    # -- puller --------------------------------------------------------------------------------------

    async def _pull(self) -> None:
        """Take the peer's records past our watermark; after one that could not be applied, schedule
        the next try (a lasting session's)."""
        if await self._pull_pages():
            self._held_pulls += 1
            delay = min(KEEPALIVE_S, RETRY_HELD_S * 2 ** min(self._held_pulls - 1, 8))
            self._retry_at = time.monotonic() + delay
        else:
            self._held_pulls, self._retry_at = 0, None

    async def _pull_pages(self) -> bool:
        """One pull; True if a record could not be applied (the watermark stays before it)."""
        peer = self.auth.peer
        known_db = await self.r.db(lambda db: db.get_meta(f"peer_db_id:{peer}"))
        if known_db != self.auth.peer_db_id:
            await self.r.db(_new_peer_db(peer, self.auth.peer_db_id))
        if any(g.slave for g in self.r.cfg.groups if g.name in self.auth.groups):
            await self._slave_catch_up()
        since = (await self.r.db(lambda db: db.watermarks(peer)))[1]
        await self._ask_index(m.IndexRequest(since, INLINE_MAX, pages=m.PAGES_PER_REQUEST))
        held = False  # a record could not be applied: do not move the watermark past it
        due = m.PAGES_PER_REQUEST  # pages of the current request still to come
        while True:
            batch = await self._next(self._index_q)
            if not isinstance(batch, m.IndexBatch):
                raise PeerClosed(f"{peer} answered an index request with {type(batch).__name__}")
            due -= 1
            if batch.more and due == 0:  # the request's last page: ask for the next ones while we apply
                await self._ask_index(m.IndexRequest(batch.upto, INLINE_MAX, pages=m.PAGES_PER_REQUEST))
                due = m.PAGES_PER_REQUEST
            if len(batch.inline) != len(batch.records):
                raise RemoteProtocolError(
                    f"{peer} sent an index page with {len(batch.records)} records but "
                    f"{len(batch.inline)} inline contents"
                )
            t0 = time.monotonic()
            async with self.r.apply_lock:
                failed_seq = await self._apply_batch(batch)
            log.debug("batch of %d records from %s applied in %.3fs", len(batch.records), peer, time.monotonic() - t0)
            self.progress(self.report)
            if not self.dry_run:
                if failed_seq is not None:
                    held = True
                    await self.r.db(_set_received(peer, failed_seq - 1))
                elif not held:
                    self.r.apply_problems.pop(peer, None)
                    await self.r.db(_set_received(peer, batch.upto))
                    await self.ch.send(m.Ack(batch.upto))
            if not batch.more:
                return held

    async def _ask_index(self, request: m.IndexRequest) -> None:
        """Send an index request; the read loop then takes just the pages it is answered with."""
        self._pages_asked.append(1 if request.paths else min(request.pages or m.PAGES_PER_REQUEST, m.PAGES_PER_REQUEST))
        await self.ch.send(request)

    def take_ack(self) -> int:
        """The highest acknowledgement the peer sent, for the responder to store (one at a time)."""
        self._ack_queued = False
        return self.acked_upto

    async def _slave_catch_up(self) -> None:
        """A slave's own changes must be replaced by the master's versions, which we may have received
        long ago (the watermark is past them): ask for the master's current records of those paths."""
        me = self.r.cfg.node
        own = await self.r.db(lambda db: db.paths_changed_by(me))
        own = [p for p in own if (real := self.r.pmap.to_real_safe(p)) is not None and self.matcher.is_managed(real)]
        for i in range(0, len(own), MAX_PATHS_ASKED):
            await self._ask_index(m.IndexRequest(0, INLINE_MAX, own[i : i + MAX_PATHS_ASKED]))
            batch = await self._next(self._index_q)
            if not isinstance(batch, m.IndexBatch) or batch.more:
                raise PeerClosed(f"{self.auth.peer} answered a request by path with {type(batch).__name__}")
            async with self.r.apply_lock:
                await self._apply_batch(batch)

    async def _apply_batch(self, batch: m.IndexBatch) -> int | None:
        """Apply one batch; return the lowest peer sequence number that could not be applied, if any."""
        items: list[tuple[Record, str, bytes | None, int]] = []
        for w, data in zip(batch.records, batch.inline, strict=True):
            try:
                rec = to_record(w)
                real = self.r.pmap.to_real(rec.path)
            except (UnsafePath, ValueError) as e:
                self._refuse(w.path, str(e))
                continue
            if not self.matcher.managed_cached(real, self._walkable):
                self._refuse(w.path, "not managed by a group shared with this peer")
                continue
            items.append((rec, real, data, w.seq))
        if not items:
            return None
        paths = [it[0].path for it in items]
        locals_, open_ = await self.r.db(lambda db: (db.get_records(paths), db.conflicts_on(paths)))
        seen: dict[tuple[str, bool, bool], Context] = {}  # most records of a batch share one context
        ctxs = {rec.path: self._context(real, rec.path, open_, seen) for rec, real, _, _ in items}
        decisions = {rec.path: reconcile(locals_.get(rec.path), rec, ctxs[rec.path]) for rec, _, _, _ in items}
        # Paths whose disk no longer matches our record are rescanned first, and decided again: before
        # a replacement, and before a merge too (storing the peer's vector over an unrecorded local edit
        # would hide that edit for good).
        stale = {
            rec.path: real
            for rec, real, _, _ in items
            if decisions[rec.path].action in (Action.APPLY, Action.MERGE)
            and not disk_matches(real, locals_.get(rec.path))
        }
        if stale and not self.dry_run:
            stale_reals = list(stale.values())
            await self.r.db(lambda db: Scanner(db, self.r.cfg).scan(stale_reals))
            locals_ = await self.r.db(lambda db: db.get_records(paths))
            # Every path is decided again, not only the stale ones: meanwhile another scan (the
            # watcher's) may have recorded a local version of any path of the batch, and a decision
            # made against the version before it would replace it unkept (seen in the crash campaign:
            # "the peer's version is newer" carried out over a newer local version).
            decisions = {rec.path: reconcile(locals_.get(rec.path), rec, ctxs[rec.path]) for rec, _, _, _ in items}
        # Until their records are stored, scans (ours, the watcher's) leave these paths alone: a file
        # may be on disk before its record, and must not be taken for a local edit. So for their
        # directories, whose mtimes move until the batch puts the recorded ones back.
        reals = {real for _, real, _, _ in items}
        reals |= {os.path.dirname(real) for real in reals}
        self.r.applying.update(reals)
        try:
            return await self._execute(items, locals_, decisions, open_)
        finally:
            self.r.applying.difference_update(reals)
            self.r.batch_done.set()

    def _group_of(self, real: str) -> GroupView:
        """The group whose settings (policy, backups) rule ``real``: the first in the config managing it."""
        if len(self.auth.groups) == 1:  # the common case: no pattern matching per record
            return self.r.group(self.auth.groups[0])
        names = set(self.matcher.groups_of(real))
        return next((g for g in self.r.cfg.groups if g.name in names), self.r.group(self.auth.groups[0]))

    def _context(
        self,
        real: str,
        path: str,
        open_: dict[str, dict[str, tuple[bytes, str | None]]],
        seen: dict[tuple[str, bool, bool], Context],
    ) -> Context:
        g = self._group_of(real)
        mine = open_.get(path, {})
        keep_remote = mine.get(self.auth.peer, (b"", None))[1] == "remote"
        key = (g.name, keep_remote, bool(mine))
        ctx = seen.get(key)
        if ctx is None:
            ctx = seen[key] = Context(
                me=self.r.cfg.node,
                peer=self.auth.peer,
                policy=g.auto,
                hosts=g.hosts,
                slaves=g.slaves,
                me_started=self.client,
                force="remote" if keep_remote else None,
                open_conflict=bool(mine),
            )
        return ctx

    def _refuse(self, path: str, why: str) -> None:
        self.report.refused.append(path)
        log.warning("refused %s from %s: %s", path, self.auth.peer, why)

    async def _execute(
        self,
        items: list[tuple[Record, str, bytes | None, int]],
        locals_: dict[str, Record],
        decisions: dict[str, Decision],
        open_: dict[str, dict[str, tuple[bytes, str | None]]],
    ) -> int | None:
        failed: list[int] = []
        to_store: list[tuple[Record, str, Record | None]] = []  # (record, real, expect) applied or merged
        conflicts: list[tuple[Record, int]] = []
        deletes, dirs, files, specials = [], [], [], []
        retouch: list[tuple[Record, str, int]] = []
        peer, me = self.auth.peer, self.r.cfg.node
        now_s = time.time_ns() // 1_000_000_000
        outcome: dict[str, tuple[Vector, str | None]] = {}  # real -> (vector to store, origin)
        keeps: list[tuple[Record, str, Record, Decision, int]] = []
        settle: list[tuple[str, Vector]] = []  # open conflicts a new stored version may have settled
        resurrect: list[tuple[Record, Record]] = []  # (our dir, the peer's tombstone) we could not delete
        trace = log.isEnabledFor(logging.DEBUG)
        for rec, real, data, seq in items:
            local = locals_.get(rec.path)
            decision = decisions[rec.path]
            if trace and (decision.action is not Action.IGNORE or decision.conflict):
                log.debug(
                    "%s from %s: %s (%s); ours %s %s, theirs %s %s base %s",
                    rec.path,
                    peer,
                    decision.action.value,
                    decision.reason,
                    None if local is None else local.vector,
                    None if local is None or local.hash is None else local.hash.hex()[:12],
                    rec.vector,
                    None if rec.hash is None else rec.hash.hex()[:12],
                    None if rec.base is None else rec.base.hex()[:12],
                )
            if decision.action is Action.IGNORE:
                if decision.conflict and not self.dry_run:
                    self._resolved(rec.path, decision)
                    settle.append((rec.path, ()))
                continue
            if decision.action is Action.CONFLICT:
                conflicts.append((rec, seq))
                continue
            if self.dry_run:
                self.report.would_change.append(f"{decision.reason}: {rec.path}")
                continue
            vector = stored_vector(decision, local, rec)
            if decision.bump:
                vector = bump(vector, me, now_s)
            outcome[real] = (vector, self.auth.peer_db_id if vector == rec.vector else None)
            if decision.conflict:
                self._resolved(rec.path, decision)
            if rec.path in open_:
                settle.append((rec.path, vector))
            if local is not None and needs_copy(rec, local, decision, self._group_of(real)):
                keeps.append((rec, real, local, decision, seq))
            if decision.action is Action.MERGE:
                merged = rec if decision.take_metadata or local is None else local
                to_store.append((merged, real, None))
                if decision.take_metadata and local is not None and not rec.deleted:
                    retouch.append((rec, real, seq))  # same content, the peer's metadata wins: apply it
                continue
            if rec.deleted:
                deletes.append((rec, real, local, seq))
            elif rec.kind is Kind.DIR:
                dirs.append((rec, real, local, seq))
            elif rec.kind is Kind.FILE:
                files.append((rec, real, local, seq, data))
            else:
                specials.append((rec, real, local, seq))
        kept_rows: list[KeptVersion] = []
        if keeps:
            kept = await asyncio.to_thread(
                keep_copies,
                [(real, local, decision) for _, real, local, decision, _ in keeps],
                self._group_of,
                self.r.state_dir,
                me,
                peer,
            )
            kept_rows = kept.rows
            not_kept = kept.not_kept
            for _, real, _, _, seq in keeps:
                if real in not_kept:
                    self._problem(not_kept[real], seq, failed)
            if not_kept:  # never replace a version we could not keep
                deletes = [d for d in deletes if d[1] not in not_kept]
                dirs = [d for d in dirs if d[1] not in not_kept]
                files = [f for f in files if f[1] not in not_kept]
                specials = [x for x in specials if x[1] not in not_kept]
        tree = Tree(self.roots, self.r.cfg.ignore, self._group_of)  # (setuid bits, device nodes: per group)
        applied: list[tuple[Record, str, Record | None]] = []
        staged: list[Staged] = []
        seqs: dict[str, int] = {}

        def local_work() -> None:
            """Everything that needs no further bytes from the peer (runs off the event loop)."""
            for rec, real, local, seq in sorted(deletes, key=lambda x: -_depth(x[1])):
                try:
                    tree.delete(real, local)
                    applied.append((rec, real, local))
                    self.report.deleted_in += 1
                except DirectoryNotEmpty:
                    # Something here still lives inside it (kept by a conflict decision, or not
                    # managed): the directory stays, as a new version of ours that travels back.
                    assert local is not None
                    resurrect.append((local, rec))
                except (ApplyError, UnsafePath) as e:
                    self._problem(str(e), seq, failed)
            for rec, real, local, seq in sorted(dirs, key=lambda x: _depth(x[1])):
                try:
                    tree.make_dir(real, rec, local)
                    applied.append((rec, real, local))
                except (ApplyError, UnsafePath, OSError) as e:
                    self._problem(str(e), seq, failed)
            for rec, real, local, seq in specials:
                try:
                    staged.append(tree.make_special(real, rec, local))
                    seqs[real] = seq
                except RefusedByPolicy as e:  # not a failure to retry: the same record is refused again
                    self._refuse(rec.path, str(e))
                except (ApplyError, UnsafePath) as e:
                    self._problem(str(e), seq, failed)
            for rec, real, local, seq, data in files:
                if data is not None:
                    self._write_inline(tree, rec, real, local, seq, data, staged, seqs, failed)
            for rec, real, seq in retouch:
                try:
                    tree.set_metadata(real, rec)
                except (ApplyError, UnsafePath) as e:
                    self._problem(str(e), seq, failed)

        def finish_work() -> list[Record]:
            """Make the batch durable and visible, then describe what is now on disk."""
            for st in staged:  # large files that came whole: chunk them now, while they are in the cache
                h = st.record.hash
                if (
                    st.record.kind is Kind.FILE
                    and st.record.size_bytes >= delta.DELTA_MIN_BYTES
                    and h is not None
                    and h not in self._new_maps
                ):
                    fd = os.open(st.tmp, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=st.dfd)
                    try:
                        self._new_maps[h] = [(c.digest, c.offset, c.length) for c in delta.chunks_of(fd)]
                    finally:
                        os.close(fd)
            done, problems = tree.commit(staged)
            for p in problems:
                self.report.problems.append(p)
                log.warning("%s (from %s)", p, self.auth.peer)
            done_reals = {s.real for s in done}
            failed.extend(seqs[s.real] for s in staged if s.real not in done_reals)
            applied.extend((s.record, s.real, s.expect) for s in done)
            for rec, real, _ in applied:
                if rec.kind is Kind.DIR and not rec.deleted:
                    tree.set_dir_time(real, rec.mtime_ns)
            self.report.files_in += sum(1 for s in done if s.record.kind is Kind.FILE)
            merged = [self._observed(rec, real, *outcome[real]) for rec, real, _ in to_store]
            to_store.extend(applied)
            # A version taken unchanged from this peer (same vector) is never offered back to it.
            back = [
                replace(local, vector=bump(merge(local.vector, tomb.vector), me, now_s), origin=None, recheck=False)
                for local, tomb in resurrect
            ]
            return merged + back + [self._observed(rec, real, *outcome[real]) for rec, real, _ in applied]

        # What is about to appear on (or go from) disk, journalled first (0005_journal.sql: a crash
        # between the change on disk and its record must not make the next scan take a received version
        # or deletion for a local edit).
        appearing = [(d[0], d[1]) for d in (*deletes, *dirs, *specials)] + [(f[0], f[1]) for f in files]
        journal = [
            replace(rec, vector=outcome[real][0], origin=outcome[real][1]) for rec, real in appearing if real in outcome
        ]
        if journal:
            await self.r.db(lambda db: db.journal_put(journal, time.time_ns()))
        try:
            await _whole(local_work)
            wanted = [(rec, real, local, seq) for rec, real, local, seq, data in files if data is None]
            for i in range(0, len(wanted), MAX_IN_FLIGHT):
                staged += await self._fetch(tree, wanted[i : i + MAX_IN_FLIGHT], seqs, failed)
            stored = await _whole(finish_work)
        except BaseException:
            # The session ended midway (or the daemon stops): what was received whole but not yet
            # renamed into place goes, and the directories get their recorded times back.
            for st in staged:
                discard(st)
            with contextlib.suppress(Exception):
                await asyncio.shield(self._restore_parent_times([rec.path for rec, *_ in items]))
            raise
        finally:
            tree.close()
        now = time.time_ns()
        peer = self.auth.peer

        new_maps = dict(self._new_maps)
        self._new_maps.clear()

        def store(db: StateDB) -> None:
            if stored:
                db.apply_scan(stored)
            db.put_chunk_maps(new_maps)
            for rec, seq in conflicts:
                db.record_conflict(rec.path, peer, record_bytes(rec, seq), now)
            for row in kept_rows:
                db.add_kept(row)
            if settle:
                db.clear_conflicts(settled_conflicts(settle, open_, peer))
            if journal:
                db.journal_drop(rec.path for rec in journal)

        await self.r.db(store)
        if stored:
            self.r.notify_forwarded(self.auth.peer)  # our other peers may want what this one sent
        self.r.actions.changed([rec.path for rec, _, _ in applied], local=False)
        await self._revive_parents([rec.path for rec, _, _ in applied if not rec.deleted])
        if to_store or self._aborted:  # (an aborted temp file changed its directory's mtime too)
            await self._restore_parent_times([rec.path for rec, _, _ in to_store] + self._aborted)
            self._aborted.clear()
        for rec, _ in conflicts:
            self.report.conflicts.append(rec.path)
            log.warning("conflict on %s: changed both here and on %s; both versions kept", rec.path, peer)
        return min(failed) if failed else None

    async def _restore_parent_times(self, paths: list[str]) -> None:
        """Creating, replacing or deleting an entry changes its directory's mtime: put the recorded
        mtimes back, deepest directory first (design: directory mtimes must not drift)."""
        parents = {p[: p.rfind("/")] for p in paths if p.rfind("/") > 0}
        records = await self.r.db(lambda db: db.get_records(parents))
        with Tree(self.roots, self.r.cfg.ignore) as tree:
            for logical in sorted(records, key=_depth, reverse=True):
                rec = records[logical]
                real = self.r.pmap.to_real_safe(logical)
                if real is not None and rec.kind is Kind.DIR and not rec.deleted and self.matcher.is_managed(real):
                    tree.set_dir_time(real, rec.mtime_ns)

    # -- conflict decisions and kept versions ----------------------------------------------------------

    def _resolved(self, path: str, decision: Decision) -> None:
        how = f"{path}: {decision.reason}"
        self.report.resolved.append(how)
        log.warning("conflict with %s settled: %s", self.auth.peer, how)

    async def _revive_parents(self, paths: list[str]) -> None:
        """A live entry was applied under a directory our records call deleted (deleted here while the peer
        created or kept something inside): the directory exists again, so record it as a new version."""
        parents = {p[: p.rfind("/")] for p in paths if p.rfind("/") > 0}
        if not parents:
            return

        def run(db: StateDB) -> None:
            dead = [p for p, r in db.get_records(parents).items() if r.deleted]
            reals = [real for real in (self.r.pmap.to_real_safe(p) for p in dead) if real is not None]
            if reals:
                Scanner(db, self.r.cfg).scan(reals)

        await self.r.db(run)

    def _problem(self, message: str, seq: int, failed: list[int], *, hold: bool = True) -> None:
        """``message`` goes to the report, the status and the log; with ``hold`` the peer's record ``seq``
        holds the watermark back (it is offered again). Without: what arrived was not the version the
        record describes, so the peer's file changed, and its record of the change comes later."""
        self.report.problems.append(message)
        if hold:
            failed.append(seq)
        recent = self.r.apply_problems.setdefault(self.auth.peer, [])
        recent.append(message)
        del recent[:-MAX_PROBLEMS_SHOWN]
        log.warning("%s (from %s)", message, self.auth.peer)

    def _superseded(self, real: str, why: str | None) -> None:
        """The peer no longer has the version it offered: not a problem, and nothing to ask again for."""
        self.report.superseded += 1
        log.info("%s: not taken from %s: %s there; its record of the change follows", real, self.auth.peer, why)

    def _observed(self, rec: Record, real: str, vector: Vector, origin: str | None) -> Record:
        """The record to store for an applied change: the peer's version, as it now is on our disk."""
        if rec.deleted:
            return replace(rec, vector=vector, origin=origin)
        try:
            st = os.lstat(real)
        except OSError:
            return replace(rec, vector=vector, origin=origin)
        return Record(
            path=rec.path,
            kind=rec.kind,
            size_bytes=rec.size_bytes,
            mode=st.st_mode & 0o7777,
            uid=st.st_uid,
            gid=st.st_gid,
            user=rec.user,
            group=rec.group,
            mtime_ns=st.st_mtime_ns if rec.kind is not Kind.DIR else rec.mtime_ns,
            hash=rec.hash,
            target=rec.target,
            rdev=rec.rdev,
            vector=vector,
            base=rec.base,
            ctime_ns=st.st_ctime_ns,
            inode=st.st_ino,
            origin=origin,
        )

    def _write_inline(
        self,
        tree: Tree,
        rec: Record,
        real: str,
        local: Record | None,
        seq: int,
        data: bytes,
        staged: list[Staged],
        seqs: dict[str, int],
        failed: list[int],
    ) -> None:
        try:
            w = FileWriter(tree, real, rec, local)
            w.write(data)
            staged.append(w.finish())
            seqs[real] = seq
            self.report.bytes_in += len(data)
        except ContentMismatch as e:  # the peer's file changed as it read it: that version is gone
            self._problem(str(e), seq, failed, hold=False)
        except (ApplyError, UnsafePath, OSError) as e:
            self._problem(str(e), seq, failed)

    async def _fetch(
        self, tree: Tree, wanted: list[tuple[Record, str, Record | None, int]], seqs: dict[str, int], failed: list[int]
    ) -> list[Staged]:
        """Request all of ``wanted`` at once, then take the answers in order."""
        bases: dict[int, tuple[int, dict[bytes, tuple[int, int]]] | None] = {}
        for i, (rec, real, local, _) in enumerate(wanted):
            base = None
            if (
                local is not None
                and local.kind is Kind.FILE
                and not local.deleted
                and local.size_bytes >= delta.DELTA_MIN_BYTES
                and rec.size_bytes >= delta.DELTA_MIN_BYTES
            ):
                stored = await self.r.db(_chunk_map(local.hash or b""))
                base = await asyncio.to_thread(_open_base, self.roots, real, stored)
            bases[i] = base
            have = list(base[1]) if base is not None else []
            self._content_asked += 1
            await self.ch.send(m.ContentRequest(i, rec.path, rec.hash or b"", have, rec.size_bytes))
        out: list[Staged] = []
        writer: FileWriter | None = None
        try:
            for i, (rec, real, local, seq) in enumerate(wanted):
                writer = None
                error: str | None = None
                hold = True  # the failure is ours (or unexplained): this record is offered again
                gone = False  # the peer no longer has this version: its newer record follows
                copied = False  # chunks came from our own copy (which may have changed meanwhile)
                new_map: list[tuple[bytes, int, int]] = []  # delta mode: the new version's chunks, for free
                offset = 0
                try:
                    writer = FileWriter(tree, real, rec, local)
                except (ApplyError, UnsafePath, OSError) as e:
                    error = str(e)
                while True:
                    msg = await self._next(self._content_q)
                    if not isinstance(msg, m.ContentData | m.ContentCopy | m.ContentEnd) or msg.id != i:
                        raise PeerClosed(f"{self.auth.peer} sent content out of order")
                    if isinstance(msg, m.ContentEnd):
                        gone = error is None and msg.gone
                        error = error or msg.error
                        break
                    if writer is None or error is not None:
                        continue
                    if offset + _content_length(msg) > rec.size_bytes:  # the hash check would come too late
                        error = f"the peer sent more than the record's {rec.size_bytes} bytes"
                        hold = False  # its file grew while it was read (or it lies): not that version
                        continue
                    try:
                        if isinstance(msg, m.ContentData):
                            writer.write(msg.data)
                            self.report.bytes_in += len(msg.data)
                            if bases[i] is not None:  # a delta's literal pieces are whole chunks
                                new_map.append((delta.digest(msg.data), offset, len(msg.data)))
                            offset += len(msg.data)
                        else:
                            base = bases[i]
                            ranges: list[tuple[int, int]] = []  # in our copy; neighbours merged
                            for ref, length in msg.refs:
                                where = base[1].get(ref) if base is not None else None
                                if base is None or where is None or where[1] != length:
                                    error = "the peer referred to a chunk we do not have"
                                    break
                                if ranges and sum(ranges[-1]) == where[0]:
                                    ranges[-1] = (ranges[-1][0], ranges[-1][1] + length)
                                else:
                                    ranges.append((where[0], length))
                                new_map.append((ref, offset, length))
                                offset += length
                            if error is None and base is not None:
                                copied = True
                                # (off the event loop; _whole: a cancellation must not close the
                                # temp file under the copying thread)
                                await _whole(functools.partial(writer.copy_from, base[0], ranges))
                    except OSError as e:
                        error = f"cannot write: {e.strerror}"
                if writer is not None and error is None:
                    try:
                        out.append(writer.finish())
                        writer = None
                        seqs[real] = seq
                        if bases[i] is not None and rec.hash is not None:
                            self._new_maps[rec.hash] = new_map
                        continue
                    except ContentMismatch as e:  # the peer's file changed as it read it, unless ours did
                        error, hold = str(e), copied
                    except ApplyError as e:
                        error = str(e)
                if writer is not None:
                    writer.abort()
                    self._aborted.append(rec.path)
                writer = None
                if gone:
                    self._superseded(real, error)
                else:
                    self._problem(f"{real}: {error}", seq, failed, hold=hold)
        except BaseException:
            if writer is not None:  # cut off in the middle of this file
                writer.abort()
            for st in out:
                discard(st)
            raise
        finally:
            for base in bases.values():
                if base is not None:
                    os.close(base[0])
        return out


async def _whole(fn: Callable[[], T]) -> T:
    """``fn()`` on a worker thread, which a cancellation does not cut short: the caller learns of the
    cancellation only once the thread is done. (A thread cannot be stopped; had the batch closed its
    directory fds while the thread still renamed through them, a number reused meanwhile would point
    the rename at some other directory.)"""
    work = asyncio.ensure_future(asyncio.to_thread(fn))
    cancelled = False
    while not work.done():
        try:
            await asyncio.wait({work})
        except asyncio.CancelledError:
            cancelled = True
    if cancelled:
        if not work.cancelled():
            work.exception()  # retrieved: the cancellation is what the caller must see
        raise asyncio.CancelledError
    return work.result()


def _content_length(msg: m.ContentData | m.ContentCopy) -> int:
    return len(msg.data) if isinstance(msg, m.ContentData) else sum(length for _, length in msg.refs)


def _open_base(
    roots: list[str], real: str, stored: list[tuple[bytes, int, int]] | None
) -> tuple[int, dict[bytes, tuple[int, int]]] | None:
    """Our current copy of a large file, opened (never through a symlink, never outside the roots: its
    chunk digests go to the peer), with its chunk map (digest -> offset, length): the one stored for its
    content hash, else computed now."""
    try:
        with Tree(roots) as tree:
            fd = tree.open_file(real)
    except (ApplyError, OSError):
        return None
    try:
        chunks = stored if stored is not None else [(c.digest, c.offset, c.length) for c in delta.chunks_of(fd)]
        return fd, {d: (off, length) for d, off, length in chunks}
    except (OSError, ValueError):
        os.close(fd)
        return None


def _chunk_map(content_hash: bytes) -> Callable[[StateDB], list[tuple[bytes, int, int]] | None]:
    return lambda db: db.chunk_map(content_hash)


def _set_received(peer: str, upto: int) -> Callable[[StateDB], None]:
    def run(db: StateDB) -> None:
        acked, received = db.watermarks(peer)
        db.set_watermarks(peer, acked, max(upto, received))

    return run


def _new_peer_db(peer: str, db_id: str) -> Callable[[StateDB], None]:
    def run(db: StateDB) -> None:
        db.forget_watermarks(peer)
        db.set_meta(f"peer_db_id:{peer}", db_id)

    return run
