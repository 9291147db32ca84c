"""The scanner: walk the managed roots, compare with the record table, record what changed.

Owns: detecting local changes (new, changed, metadata-only, type-changed, deleted) and turning them into
records with this node's vector entry bumped. Must not: talk to peers, or decide conflicts.

Change detection compares a signature of (kind, size, mtime_ns, ctime_ns, inode, mode, uid, gid) with the
one stored in the record (model/records.py) and reads content only when they differ. Two races are
covered: a file that changes while it is hashed is read again (fs/hashing.py); a file written so
recently that a same-size rewrite could still land in the same timestamp tick (which leaves every stat
field equal) is marked ``recheck`` and read again at the next scan (``recently_written``).
Directories that cannot be listed, files that cannot be read and roots that are missing are reported and
never turned into deletions.

Speed: the walk runs on bytes (no decoding per file), classifies per directory (model/patterns.py
``for_children``), computes logical names per directory, and compares one integer per file against a
(path, signature) index loaded in one query. (Loading that index on a second thread was measured slower:
the GIL contention cost more than the overlap saved.)
"""

from __future__ import annotations

import contextlib
import grp
import os
import pwd
import stat
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace

from shoal.config.resolve import NodeConfig
from shoal.fs.apply import SETID_BITS, STALE_TMP_S, writer_alive
from shoal.fs.hashing import Hashed, hash_file
from shoal.fs.results import Problem, ScanResult
from shoal.fs.walk import Candidate, Walker, WalkHelper, WalkTally, fsdecode
from shoal.model.paths import PathMap, UnsafePath, check_path, is_within
from shoal.model.patterns import Verdict, minimal_roots
from shoal.model.records import SIG_DELETED, Kind, Record, bump
from shoal.state.db import ScanIndex, StateDB
from shoal.transfer import delta
from shoal.transfer.delta import DELTA_MIN_BYTES, Chunk

RECENT_NS = 2_000_000_000  #: "recent" where timestamps may be coarse (ext3 and HFS+ keep seconds, FAT 2 s)
RECENT_FINE_NS = 100_000_000  #: "recent" where they are fine: a kernel timestamp tick is 1-10 ms
_COARSE_NS = 10_000_000


def recently_written(mtime_ns: int, start_ns: int) -> bool:
    """Could a same-size rewrite of a file with this mtime, read by a scan that started at ``start_ns``,
    still get the same mtime? An mtime with digits below 10 ms comes from a file system with fine
    timestamps, whose tick is at most 10 ms; one without may come from a file system that keeps whole
    seconds. (With the 2 s window everywhere, every scan cycle during a burst of writes re-read every
    file of the last 2 s.)"""
    return mtime_ns >= start_ns - (RECENT_NS if mtime_ns % _COARSE_NS == 0 else RECENT_FINE_NS)


FLUSH_EVERY = 10_000
POOL_FROM_BYTES = 1 << 20


class _Names:
    """uid/gid -> name, cached; "" where the id has no name here."""

    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], str] = {}

    def _lookup(self, kind: str, ident: int) -> str:
        name = self._cache.get((kind, ident))
        if name is None:
            try:
                name = pwd.getpwuid(ident).pw_name if kind == "user" else grp.getgrgid(ident).gr_name
            except KeyError:
                name = ""
            self._cache[kind, ident] = name
        return name

    def user(self, uid: int) -> str:
        return self._lookup("user", uid)

    def group(self, gid: int) -> str:
        return self._lookup("group", gid)


class Scanner:
    """Scans this node's managed trees into its state database."""

    def __init__(
        self,
        db: StateDB,
        cfg: NodeConfig,
        *,
        clock_ns: Callable[[], int] = time.time_ns,
        hash_workers: int = 4,
        hasher: Callable[[str, list[Chunk] | None], Hashed] = hash_file,
        busy: Callable[[str], bool] | None = None,
        walk_helper: WalkHelper | None = None,
    ) -> None:
        #: real paths a peer's change is being applied to right now: their files may be on disk before
        #: their records are stored, so the scan leaves them alone (the apply records them)
        self.busy = busy
        self.db = db
        self.cfg = cfg
        self.node = cfg.node
        self.matcher = cfg.matcher()
        self.pmap = PathMap(dict(cfg.prefixes))
        self.clock_ns = clock_ns
        self.hash_workers = hash_workers
        self.hasher = hasher
        self.names = _Names()
        self.walker = Walker(self.matcher, self.pmap, walk_helper)
        self._maps: dict[bytes, list[tuple[bytes, int, int]]] = {}  # chunk maps of large files, to store
        self._maps_stored = False
        self._journal = False  #: the apply journal holds entries (checked at the start of each scan)
        self._adopted: list[str] = []  #: journal entries this scan took as the peers' versions, to drop

    def _roots(self, paths: Sequence[str] | None, res: ScanResult) -> list[str]:
        if paths is None:
            return self.matcher.roots()
        roots = []
        for p in paths:
            try:
                clean = check_path(p.rstrip("/") or "/")
            except UnsafePath as e:
                res.problems.append(Problem(p, str(e)))
                continue
            if self.matcher.reach(clean) is Verdict.SKIP:
                res.problems.append(Problem(p, "not managed by any group of this node"))
                continue
            roots.append(clean)
        return minimal_roots(roots)

    def _parents(self, roots: list[str], alone: Sequence[str] = ()) -> list[str]:
        """The managed directories holding ``roots``, and those in ``alone``, that no root covers (each
        looked at alone)."""
        out = {os.path.dirname(r) for r in roots if r != "/"} | {a.rstrip("/") or "/" for a in alone}
        return sorted(d for d in out if not any(is_within(d, r) for r in roots) and self.matcher.is_managed(d))

    # -- scanning ------------------------------------------------------------------------------------

    def scan(self, paths: Sequence[str] | None = None, alone: Sequence[str] = ()) -> ScanResult:
        """Scan everything (``paths`` None) or only the given real paths and what lies below them, and
        the directories in ``alone`` without what lies below them."""
        t0 = time.monotonic()
        start_ns = self.clock_ns()
        res = ScanResult()
        full = paths is None
        self._journal = self.db.journal_any()  # received versions whose records may not have been stored
        roots = self._roots(paths, res)
        index = self.db.scan_index() if full else self.db.scan_index_under([self.pmap.to_logical(r) for r in roots])
        tally = WalkTally()
        pending: list[Candidate] = []
        changes: list[Record] = []
        refreshes: list[Record] = []
        with ThreadPoolExecutor(self.hash_workers, thread_name_prefix="shoal-hash") as pool:

            def on_batch(batch: list[Candidate]) -> None:
                pending.extend(batch)
                if len(pending) >= FLUSH_EVERY:
                    self._settle(pending, pool, start_ns, res, changes, refreshes)
                    self._flush(changes, refreshes, [])
                    pending.clear()

            for root in roots:
                first, stack = self.walker.start(root, tally, index)
                on_batch(first)
                self.walker.walk_split(stack, tally, index, on_batch)
            if not full:  # what changed below a directory changed its mtime: look at the directory itself
                parents = self._parents(roots, alone)
                own = self.db.scan_index_of(self.pmap.to_logical(d) for d in parents)
                for d in parents:
                    on_batch(self.walker.start(d, tally, own)[0])
            self._settle(pending, pool, start_ns, res, changes, refreshes)
        res.unchanged += tally.unchanged
        res.problems += tally.problems
        _remove_stale(tally.temp_files)
        incomplete = tally.incomplete
        for root in roots:
            if full and not os.path.lexists(root) and self._has_live_records(index, root):
                res.problems.append(
                    Problem(root, "managed root is missing; its records are kept (not treated as deleted)")
                )
                incomplete.append(root)
        forget = self._deletions(index, roots, incomplete, full, start_ns, res, changes)
        res.incomplete = incomplete
        self._flush(changes, refreshes, forget)
        if full and (self._maps_stored or res.deleted or res.changed):
            self.db.prune_chunk_maps()
        if full and self._journal:  # what this scan did not adopt was never renamed into place, or is gone
            self.db.journal_drop_older(start_ns)
        res.seconds = time.monotonic() - t0
        return res

    def _has_live_records(self, index: ScanIndex, root: str) -> bool:
        for raw, sig in index.items():
            real = self.pmap.to_real_safe(fsdecode(raw))
            if sig != SIG_DELETED and real is not None and is_within(real, root):
                return True
        return False

    def _flush(self, changes: list[Record], refreshes: list[Record], forget: list[str]) -> None:
        if changes or refreshes or forget:
            self.db.apply_scan(changes, refreshes, forget)
        if self._adopted:
            self.db.journal_drop(self._adopted)
            self._adopted.clear()
        if self._maps:
            self.db.put_chunk_maps(self._maps)
            self._maps_stored = True
            self._maps.clear()
        changes.clear()
        refreshes.clear()

    def _previous_chunks(self, old: Record | None, size: int) -> list[Chunk] | None:
        """The chunk map of the version recorded before, if both it and the file now are large: the new
        map is then checked against it rather than cut afresh where the bytes did not change."""
        if (
            old is None
            or old.deleted
            or old.kind is not Kind.FILE
            or old.hash is None
            or min(old.size_bytes, size) < DELTA_MIN_BYTES
        ):
            return None
        rows = self.db.chunk_map(old.hash)
        return None if rows is None else delta.stored(rows)

    def _settle(
        self,
        pending: list[Candidate],
        pool: ThreadPoolExecutor,
        start_ns: int,
        res: ScanResult,
        changes: list[Record],
        refreshes: list[Record],
    ) -> None:
        """Read content where needed and turn candidates into changes or refreshes."""
        if self.busy is not None:
            busy = self.busy
            # Asked once per path: the set behind ``busy`` changes on another thread meanwhile.
            flags = [busy(fsdecode(p[0])) for p in pending]
            if any(flags):
                skipped = [p for p, f in zip(pending, flags, strict=True) if f]
                res.busy.extend(fsdecode(p[0]) for p in skipped if p[3] is not Kind.DIR)
                res.busy_dirs.extend(fsdecode(p[0]) for p in skipped if p[3] is Kind.DIR)
                pending = [p for p, f in zip(pending, flags, strict=True) if not f]
        if not pending:
            return
        olds = self.db.get_records(fsdecode(p[1]) for p in pending)
        journal = self.db.journal_get(fsdecode(p[1]) for p in pending) if self._journal else {}

        def read(item: Candidate, previous: list[Chunk] | None = None) -> Hashed | OSError | None:
            if item[3] is not Kind.FILE:
                return None
            try:
                return self.hasher(fsdecode(item[0]), previous)
            except OSError as e:
                return e

        # Small files are hashed right here: for them, threads only add GIL contention (measured: one
        # thread 75k files/s, four threads 26k). Large ones go to the pool, where reading and BLAKE3
        # release the GIL.
        big = {
            i: pool.submit(read, item, self._previous_chunks(olds.get(fsdecode(item[1])), item[2].st_size))
            for i, item in enumerate(pending)
            if item[3] is Kind.FILE and item[2].st_size >= POOL_FROM_BYTES
        }
        results = (big[i].result() if i in big else read(item) for i, item in enumerate(pending))
        now_s = start_ns // 1_000_000_000
        for item, hashed in zip(pending, results, strict=True):
            real, logical = fsdecode(item[0]), fsdecode(item[1])
            st, kind = item[2], item[3]
            digest: bytes | None = None
            target: str | None = None
            stable = True
            if isinstance(hashed, OSError):
                if isinstance(hashed, FileNotFoundError):
                    continue  # vanished: the next scan records the deletion
                res.problems.append(Problem(real, f"cannot read: {hashed.strerror or hashed}"))
                continue
            if hashed is not None:
                st, digest, stable = hashed.st, hashed.digest, hashed.stable
                res.hashed_files += 1
                res.hashed_bytes += st.st_size
                if hashed.chunks is not None and stable:
                    self._maps[digest] = [(c.digest, c.offset, c.length) for c in hashed.chunks]
                if not stable:
                    res.problems.append(Problem(real, "kept changing while being read; will re-read"))
            elif kind is Kind.SYMLINK:
                try:
                    target = os.readlink(real)
                except OSError as e:
                    if not isinstance(e, FileNotFoundError):
                        res.problems.append(Problem(real, f"cannot read link: {e.strerror}"))
                    continue
            mode, uid, gid, mtime_ns = stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, st.st_mtime_ns
            rdev = st.st_rdev if kind in (Kind.CHR, Kind.BLK) else 0
            user, group = self.names.user(uid), self.names.group(gid)
            old = olds.get(logical)
            prev = old if old is not None and not old.deleted else None  # the live version, if any
            same_content = prev is not None and (prev.kind, prev.hash, prev.target, prev.rdev) == (
                kind,
                digest,
                target,
                rdev,
            )
            same_meta = prev is not None and (prev.mode, prev.uid, prev.gid, prev.mtime_ns, prev.user, prev.group) == (
                mode,
                uid,
                gid,
                mtime_ns,
                user,
                group,
            )
            origin = None
            j = journal.get(logical)
            if prev is not None and same_content and same_meta:
                vector, base = prev.vector, prev.base
            elif (
                j is not None
                and (j.kind, j.hash, j.target, j.rdev, j.uid, j.gid, j.mtime_ns)
                == (kind, digest, target, rdev, uid, gid, mtime_ns)
                and self._received_mode(j.mode, mode, real)
            ):  # a received version whose record the daemon did not live to store: it is the peer's
                vector, base, origin = j.vector, j.base, j.origin
                self._adopted.append(logical)
            else:
                vector = bump(old.vector if old is not None else (), self.node, now_s)
                base = prev.hash if prev is not None else None
            rec = Record(
                path=logical,
                kind=kind,
                size_bytes=st.st_size if kind is Kind.FILE else 0,
                mode=mode,
                uid=uid,
                gid=gid,
                user=user,
                group=group,
                mtime_ns=mtime_ns,
                hash=digest,
                target=target,
                rdev=rdev,
                vector=vector,
                base=base,
                ctime_ns=st.st_ctime_ns,
                inode=st.st_ino,
                recheck=not stable or recently_written(mtime_ns, start_ns),
                origin=origin,
            )
            if same_content and same_meta:
                refreshes.append(rec)
                res.unchanged += 1
                continue
            if prev is None:
                res.new += 1
            elif prev.kind != kind:
                res.type_changed += 1
            elif same_content:
                res.metadata += 1
            else:
                res.changed += 1
            changes.append(rec)
            res.changed_paths.append(logical)

    def _received_mode(self, received: int, mode: int, real: str) -> bool:
        """Is ``mode`` on disk what applying a received version of mode ``received`` leaves at ``real``?
        Where a group managing it does not ``allow setuid``, the apply strips setuid and setgid, so
        their absence is no local change (which would travel back and strip them at the origin)."""
        if received == mode:
            return True
        return received & ~SETID_BITS == mode and not self._allows_setuid(real)

    def _allows_setuid(self, real: str) -> bool:
        """Every group managing ``real`` says ``allow setuid`` (the apply strips where any one does not)."""
        names = set(self.matcher.groups_of(real))
        return all(g.allow_setuid for g in self.cfg.groups if g.name in names)

    def _deletions(
        self,
        index: ScanIndex,
        roots: list[str],
        incomplete: list[str],
        full: bool,
        start_ns: int,
        res: ScanResult,
        changes: list[Record],
    ) -> list[str]:
        """Records not seen by the walk: tombstones if still managed, forgotten if no longer managed."""
        gone: list[str] = []
        forget: list[str] = []
        for raw, sig in index.items():
            if sig == SIG_DELETED:
                continue
            logical = fsdecode(raw)
            real = self.pmap.to_real_safe(logical)
            if real is None or not any(is_within(real, r) for r in roots):
                if full:
                    forget.append(logical)
                continue
            if any(is_within(real, d) for d in incomplete):
                continue
            if self.busy is not None and self.busy(real):
                res.busy.append(real)
                continue
            if self.matcher.reach(real) is Verdict.MANAGED:
                gone.append(logical)
            else:
                forget.append(logical)
        now_s = start_ns // 1_000_000_000
        journal = self.db.journal_get(gone) if self._journal else {}
        for old in self.db.get_records(gone).values():
            j = journal.get(old.path)
            if j is not None and j.deleted:  # a received deletion whose record was not stored
                vector, origin, mtime_ns = j.vector, j.origin, j.mtime_ns
                self._adopted.append(old.path)
            else:  # a local change: every peer must hear of it
                vector, origin, mtime_ns = bump(old.vector, self.node, now_s), None, start_ns
            changes.append(
                replace(
                    old,
                    hash=None,
                    size_bytes=0,
                    base=old.hash,
                    deleted=True,
                    recheck=False,
                    origin=origin,
                    vector=vector,
                    mtime_ns=mtime_ns,
                )
            )
            res.deleted += 1
            res.changed_paths.append(old.path)
        res.forgotten += len(forget)
        return forget


def _remove_stale(temp_files: list[str], older_than_s: float = STALE_TMP_S) -> None:
    """Temp files left by a transfer that was killed midway: those whose writing process is gone (the
    name carries its pid), and any older than ``older_than_s`` (a pid may have been reused)."""
    limit_ns = time.time_ns() - int(older_than_s * 1e9)
    by_dir: dict[str, list[str]] = {}
    for path in temp_files:
        by_dir.setdefault(os.path.dirname(path), []).append(path)
    for directory, paths in by_dir.items():
        try:
            before = os.lstat(directory)  # the walk recorded this mtime: removing an entry must not move it
        except OSError:
            continue
        removed = False
        for path in paths:
            try:
                if not writer_alive(path) or os.lstat(path).st_mtime_ns < limit_ns:
                    os.unlink(path)
                    removed = True
            except OSError:
                continue
        if removed:
            with contextlib.suppress(OSError):
                os.utime(directory, ns=(before.st_atime_ns, before.st_mtime_ns), follow_symlinks=False)
