"""Serving a peer's pulls: index pages (small files inline) and file contents (whole or as deltas).

Owns: answering IndexRequest, ContentRequest and Ack for one session, never showing the peer anything
outside the groups it authenticated for, and never offering it back the versions it gave us (their
origin is its database). Must not: change the local tree or records (that is the puller's, exchange.py).
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import TYPE_CHECKING

from shoal.engine.wire import to_wire
from shoal.fs.apply import ApplyError, Tree
from shoal.model.records import Kind, Record
from shoal.net.transport import PeerClosed
from shoal.proto import messages as m
from shoal.state.db import StateDB
from shoal.transfer import delta

if TYPE_CHECKING:
    from shoal.engine.exchange import Exchange

log = logging.getLogger(__name__)

INDEX_PAGE = 1000
MAX_PATHS_ASKED = 1000  #: records asked for by path in one request
OFFERED_KEPT = 8 * INDEX_PAGE  #: records of the last pages sent, kept to check content requests without the db


class Responder:
    """The serving half of a session; shares the session's channel, report and caches."""

    def __init__(self, session: Exchange) -> None:
        self.session = session
        self.r = session.r
        self.ch = session.ch
        self.auth = session.auth
        self.report = session.report
        self.matcher = session.matcher
        self._walkable = session._walkable
        self.progress = session.progress
        self.roots = session.roots
        #: path -> our record, for the records offered lately (what content requests ask for)
        self._offered: OrderedDict[str, Record] = OrderedDict()

    async def run(self) -> None:
        try:
            await self._respond()
        except (PeerClosed, OSError) as e:
            self.session._fail(str(e))
        except Exception as e:
            log.exception("serving %s failed", self.auth.peer)
            self.session._fail(f"internal error while serving {self.auth.peer}: {e}")

    async def _respond(self) -> None:
        while True:
            msg = await self.session._requests.get()
            if msg is None:
                return
            if isinstance(msg, m.IndexRequest):
                await self._serve_index(msg)
            elif isinstance(msg, m.ContentRequest):
                await self._serve_content(msg)
            elif isinstance(msg, m.Ack):  # coalesced: the latest of those that arrived meanwhile
                await self.r.db(_set_acked(self.auth.peer, self.session.take_ack()))

    def _shared(self, logical: str) -> str | None:
        """The real path of ``logical`` if the peer may see it here, else None."""
        real = self.r.pmap.to_real_safe(logical)
        if real is None or not self.matcher.managed_cached(real, self._walkable):
            return None
        return real

    async def _serve_index(self, req: m.IndexRequest) -> None:
        if req.paths:
            wanted = req.paths[:MAX_PATHS_ASKED]
            found = await self.r.db(lambda db: db.get_records(wanted))
            shared = [(rec, real) for rec in found.values() if (real := self._shared(rec.path)) is not None]
            inline = await asyncio.to_thread(self._read_inline, shared, req.inline_max)
            await self.ch.send(m.IndexBatch([to_wire(rec) for rec, _ in shared], inline, 0, False))
            return
        since = req.since
        pages = min(req.pages, m.PAGES_PER_REQUEST) if req.pages > 0 else m.PAGES_PER_REQUEST
        for sent in range(1, pages + 1):
            last, page = await self.r.db(_page(since))
            echo = None if req.everything else self.auth.peer_db_id
            shared = [
                (rec, real)
                for rec in page
                if (echo is None or rec.origin != echo) and (real := self._shared(rec.path)) is not None
            ]
            inline = await asyncio.to_thread(self._read_inline, shared, req.inline_max)
            upto = page[-1].seq if page else last
            more = len(page) == INDEX_PAGE
            await self.ch.send(m.IndexBatch([to_wire(rec) for rec, _ in shared], inline, upto, more))
            self.report.files_out += sum(1 for x in inline if x is not None)
            self.report.bytes_out += sum(len(x) for x in inline if x is not None)
            self.progress(self.report)
            if not more or sent == pages:
                return  # (more set on the last page of a request: the peer asks again from ``upto``)
            since = upto

    def _read_inline(self, shared: list[tuple[Record, str]], limit: int) -> list[bytes | None]:
        """Contents of the small files of a page (None where the file changed since it was recorded: the
        peer then asks for it, and every content is hash-checked on arrival anyway)."""
        cache = self.r.inline_cache
        out: list[bytes | None] = []
        with Tree(self.roots) as tree:
            for rec, real in shared:
                self._remember(rec)
                data = None
                if (
                    rec.kind is Kind.FILE
                    and not rec.deleted
                    and rec.size_bytes <= limit
                    and rec.hash is not None
                    and not self._echo(rec)
                ):
                    data = cache.get(rec.path, rec.hash)
                    if data is None:
                        fd = open_recorded(tree, real, rec)
                        if fd is not None:
                            try:
                                data = os.read(fd, rec.size_bytes + 1)
                            except OSError:
                                data = None
                            finally:
                                os.close(fd)
                        if data is not None and len(data) == rec.size_bytes:
                            cache.put(rec.path, rec.hash, data)
                        else:
                            data = None
                out.append(data)
        return out

    def _remember(self, rec: Record) -> None:
        self._offered[rec.path] = rec
        self._offered.move_to_end(rec.path)
        if len(self._offered) > OFFERED_KEPT:
            self._offered.popitem(last=False)

    async def _record_of(self, path: str) -> Record | None:
        rec = self._offered.get(path)
        if rec is None:
            rec = (await self.r.db(lambda db: db.get_records([path]))).get(path)
        return rec

    def _echo(self, rec: Record) -> bool:
        """The peer made this version itself: it has the content already."""
        return bool(rec.vector) and max(rec.vector, key=lambda e: e[1])[0] == self.auth.peer

    async def _serve_content(self, req: m.ContentRequest) -> None:
        real = self._shared(req.path)
        rec = None if real is None else await self._record_of(req.path)
        if real is None or rec is None or rec.kind is not Kind.FILE or rec.deleted or rec.hash != req.hash:
            # Only a version this node holds a record for is ever read: not a path the scanner never
            # recorded (through a symlink, not yet scanned), not another version of a recorded one.
            why = "not shared with you" if real is None else "no such version here"
            self.report.refused.append(req.path)
            await self.ch.send(m.ContentEnd(req.id, why, gone=real is not None))
            return
        fd = await asyncio.to_thread(_open_in, self.roots, real, rec)
        if fd is None:
            await self.ch.send(m.ContentEnd(req.id, "changed since it was recorded", gone=True))
            return
        try:
            chunks = self.r.chunk_cache.get(req.hash) if req.have else None
            if req.have and chunks is None:
                wanted = req.hash
                stored = await self.r.db(lambda db: db.chunk_map(wanted))
                if stored is not None:
                    chunks = delta.stored(stored)
                else:
                    chunks = await asyncio.to_thread(delta.chunks_of, fd)
                self.r.chunk_cache.put(req.hash, chunks)  # the next peer asking for this version reuses it
            groups = delta.batches(delta.plan(fd, set(req.have), chunks))
            while (group := await asyncio.to_thread(next, groups, None)) is not None:
                refs: list[tuple[bytes, int]] = []
                for piece in group:
                    if isinstance(piece, delta.Reference):
                        refs.append((piece.digest, piece.length))
                        continue
                    if refs:
                        await self.ch.send(m.ContentCopy(req.id, refs))
                        refs = []
                    await self.ch.send(m.ContentData(req.id, piece.data))
                    self.report.bytes_out += len(piece.data)
                if refs:
                    await self.ch.send(m.ContentCopy(req.id, refs))
            self.report.files_out += 1
            await self.ch.send(m.ContentEnd(req.id, None))
            self.progress(self.report)
        except OSError as e:
            await self.ch.send(m.ContentEnd(req.id, f"read error: {e.strerror}"))
        finally:
            os.close(fd)


def open_recorded(tree: Tree, real: str, rec: Record) -> int | None:
    """A read-only fd of the file ``rec`` records at ``real``, reached without following any symlink and
    without leaving the roots (``Tree.open_file``), if what is there is still that file (size, mtime and,
    where recorded, inode agree); else None (the scan that records what is there now follows)."""
    try:
        fd = tree.open_file(real)
    except (ApplyError, OSError):
        return None
    st = os.fstat(fd)
    if st.st_size != rec.size_bytes or st.st_mtime_ns != rec.mtime_ns or (rec.inode and st.st_ino != rec.inode):
        os.close(fd)
        return None
    return fd


def _open_in(roots: list[str], real: str, rec: Record) -> int | None:
    with Tree(roots) as tree:
        return open_recorded(tree, real, rec)


def _page(since: int) -> Callable[[StateDB], tuple[int, list[Record]]]:
    """Our last sequence number and the records after ``since``, in one turn of the database thread (a
    scan may hold it: one wait, not two). All records when ``since`` is past the last: the peer's
    watermark is from before our database was replaced."""

    def run(db: StateDB) -> tuple[int, list[Record]]:
        last = db.last_seq()
        return last, db.records_since(0 if since > last else since, INDEX_PAGE)

    return run


def _set_acked(peer: str, upto: int) -> Callable[[StateDB], None]:
    def run(db: StateDB) -> None:
        db.set_watermarks(peer, max(upto, db.watermarks(peer)[0]), db.watermarks(peer)[1])

    return run
