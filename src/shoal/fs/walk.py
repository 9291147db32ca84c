"""The directory walk behind a scan: the hot loop, and splitting it over two processes.

Owns: finding the managed paths below a root (never following symlinks) whose stat signature differs
from the record table's, as fast as Python allows. Must not: read content or write records.

Per file the loop does one lstat, one dict pop and one signature; decoding, classification and prefix
encoding happen once per directory. On a large tree the walk is CPU-bound in one interpreter, so after
the root's own listing half of the pending subdirectories go to a forked child, which walks them
against its copy-on-write copy of the index and writes what it found to an unlinked temporary file.
The child is only forked while this process runs no other thread (forking a threaded process is
unsafe); a process that runs threads (the daemon) hands the share to its long-lived helper process
instead (``WalkHelper``). If either fails, the parent walks its share itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import stat
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO

from shoal.fs.results import Problem
from shoal.model.paths import PathMap
from shoal.model.patterns import Matcher, Verdict
from shoal.model.records import KIND_OF_FMT, Kind, stat_signature

log = logging.getLogger(__name__)

#: Below this many records the fork costs more than it saves.
PARALLEL_MIN_RECORDS = 20_000

KINDS = KIND_OF_FMT
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_KIND_CODES = {fmt: int(kind) for fmt, kind in KINDS.items()}

#: A path whose stat differs from its record: (real path, logical name, lstat, kind), paths as bytes.
Candidate = tuple[bytes, bytes, os.stat_result, Kind]
#: The scan index: stat signature by logical name (see state/db.py).
Index = dict[bytes, int]


def fsdecode(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def fsencode(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


@dataclass
class WalkTally:
    """What a walk saw besides candidates."""

    unchanged: int = 0
    problems: list[Problem] = field(default_factory=list)
    incomplete: list[str] = field(default_factory=list)  #: subtrees not fully seen: never tombstoned
    temp_files: list[str] = field(default_factory=list)  #: shoal's own temp files met on the way

    def add(self, other: WalkTally) -> None:
        self.unchanged += other.unchanged
        self.problems += other.problems
        self.incomplete += other.incomplete
        self.temp_files += other.temp_files


class Walker:
    def __init__(self, matcher: Matcher, pmap: PathMap, helper: WalkHelper | None = None) -> None:
        self.matcher = matcher
        self.pmap = pmap
        #: where half of a large walk goes when this process may not fork (it runs other threads)
        self.helper = helper

    def _symlinked_ancestor(self, path: str) -> str | None:
        cut = path.find("/", 1)
        while cut > 0:
            try:
                if stat.S_ISLNK(os.lstat(path[:cut]).st_mode):
                    return path[:cut]
            except OSError:
                return None
            cut = path.find("/", cut + 1)
        return None

    def start(self, root: str, tally: WalkTally, index: Index) -> tuple[list[Candidate], list[str]]:
        """The root itself: (its candidate if it changed, the directory stack to walk from it)."""
        verdict = self.matcher.reach(root)
        if verdict is Verdict.SKIP:
            return [], []
        link = self._symlinked_ancestor(root)
        if link is not None:
            tally.problems.append(Problem(root, f"reached through symlinked directory {link}; not managed"))
            tally.incomplete.append(root)
            return [], []
        try:
            st = os.lstat(root)
        except FileNotFoundError:
            return [], []
        except OSError as e:
            tally.problems.append(Problem(root, f"cannot stat: {e.strerror}"))
            tally.incomplete.append(root)
            return [], []
        out: list[Candidate] = []
        kind = KINDS.get(stat.S_IFMT(st.st_mode))
        if verdict is Verdict.MANAGED and kind is not None:
            logical = fsencode(self.pmap.to_logical(root))
            size = st.st_size if kind is Kind.FILE else 0
            if index.pop(logical, None) == stat_signature(
                kind, size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid
            ):
                tally.unchanged += 1
            else:
                out.append((fsencode(root), logical, st, kind))
        return out, [root] if stat.S_ISDIR(st.st_mode) else []

    def walk(
        self,
        stack: list[str],
        tally: WalkTally,
        index: Index,
        seen: list[bytes] | None = None,
        max_dirs: int | None = None,
    ) -> Iterator[list[Candidate]]:
        """Walk the directories on ``stack`` and below (or only ``max_dirs`` of them, leaving the rest on
        ``stack``); yield a directory's changed paths at a time. Entries found are popped from ``index``
        (and listed in ``seen`` if given)."""
        for_children = self.matcher.for_children
        step_into = self.matcher.step_into_any
        pop = index.pop
        sig = stat_signature
        codes = _KIND_CODES
        enc = str.encode
        s_ifdir, s_ifreg = stat.S_IFDIR, stat.S_IFREG
        done = 0
        while stack and (max_dirs is None or done < max_dirs):
            done += 1
            d = stack.pop()
            try:
                # By descriptor: a directory swapped for a symlink since it was listed is refused, and
                # each entry's lstat is relative to it (fstatat), ~15 % cheaper than by whole path.
                fd = os.open(d, _DIR_FLAGS)
            except OSError as e:
                tally.problems.append(Problem(d, f"cannot list directory: {e.strerror}"))
                tally.incomplete.append(d)
                continue
            prefix = d + "/" if d != "/" else "/"
            bprefix = fsencode(prefix)
            lprefix = fsencode(self.pmap.to_logical(d) + "/" if d != "/" else "/")
            # Outside every prefix (an ancestor of a prefixed root), a child may itself be a prefix's
            # directory, whose logical name is '%name%': map each child on its own there.
            unmapped = lprefix == bprefix and bool(self.pmap.prefixes)
            rule = for_children(d)
            batch: list[Candidate] = []
            unchanged = 0
            with _listing(fd) as it:
                for entry in _entries(it, d, tally):
                    name = entry.name  # str (surrogate-escaped), as scandir gives names by descriptor
                    if name.startswith(".shoal-tmp."):  # a transfer in progress (or a stale one)
                        tally.temp_files.append(prefix + name)
                        continue
                    try:
                        if rule is True or (rule is not False and rule(name)):
                            st = entry.stat(follow_symlinks=False)
                        else:
                            if entry.is_dir(follow_symlinks=False) and step_into(prefix + name):
                                stack.append(prefix + name)
                            continue
                    except FileNotFoundError:
                        continue  # vanished since listing: the next scan sees the deletion
                    except OSError as e:
                        tally.problems.append(Problem(prefix + name, f"cannot stat: {e.strerror}"))
                        tally.incomplete.append(prefix + name)
                        continue
                    mode = st.st_mode
                    fmt = mode & 0o170000
                    if fmt == s_ifdir:
                        stack.append(prefix + name)
                    code = codes.get(fmt)
                    if code is None:
                        continue  # sockets and the like are not synchronized
                    bname = enc(name, "utf-8", "surrogateescape")
                    logical = lprefix + bname if not unmapped else fsencode(self.pmap.to_logical(prefix + name))
                    if seen is not None:
                        seen.append(logical)
                    if pop(logical, None) == sig(
                        code,
                        st.st_size if fmt == s_ifreg else 0,
                        st.st_mtime_ns,
                        st.st_ctime_ns,
                        st.st_ino,
                        mode & 0o7777,
                        st.st_uid,
                        st.st_gid,
                    ):
                        unchanged += 1
                    else:
                        batch.append((bprefix + bname, logical, st, KINDS[fmt]))
            tally.unchanged += unchanged
            if batch:
                yield batch

    def walk_split(
        self, stack: list[str], tally: WalkTally, index: Index, on_batch: Callable[[list[Candidate]], None]
    ) -> None:
        """``walk``, with half of the top-level directories in another process when that pays off: a
        forked child, or where forking is unsafe, the helper process."""
        if len(index) >= PARALLEL_MIN_RECORDS and (os.cpu_count() or 1) > 1 and len(stack) == 1:
            for batch in self.walk(stack, tally, index, max_dirs=1):  # list the root, share out its subdirs
                on_batch(batch)
        child: _Child | _Handed | None = None
        if len(stack) >= 2 and len(index) >= PARALLEL_MIN_RECORDS and (os.cpu_count() or 1) > 1:
            theirs, stack[:] = stack[::2], stack[1::2]
            # Fork only while no other thread runs: on_batch may have started hashing threads meanwhile.
            if threading.active_count() == 1:
                child = _Child.fork(self, theirs, index)
            elif self.helper is not None:
                child = self.helper.hand(self, theirs, index)
            if child is None:
                stack += theirs
        try:
            for batch in self.walk(stack, tally, index):
                on_batch(batch)
        except BaseException:
            if child is not None:
                child.collect()  # not left running, nor holding the helper
            raise
        if child is None:
            return
        result = child.collect()
        if result is None:
            log.warning("parallel walk helper failed; walking its share in this process")
            for batch in self.walk(child.stack, tally, index):
                on_batch(batch)
            return
        candidates, seen, child_tally = result
        for key in seen:
            index.pop(key, None)
        tally.add(child_tally)
        if candidates:
            on_batch(candidates)


class _Child:
    """A forked helper that walks part of the tree; results come back through an unlinked temp file
    written by our own forked copy (never by anyone else), which is why pickle is acceptable here."""

    def __init__(self, pid: int, spool: IO[bytes], stack: list[str]) -> None:
        self.pid = pid
        self.spool = spool
        self.stack = stack  #: what it was given, for the parent to walk if it fails

    @classmethod
    def fork(cls, walker: Walker, stack: list[str], index: Index) -> _Child | None:
        spool = tempfile.TemporaryFile()  # noqa: SIM115 (handed to the collector, closed there)
        stack = list(stack)
        try:
            pid = os.fork()
        except OSError as e:
            log.warning("cannot fork a walk helper: %s", e)
            spool.close()
            return None
        if pid == 0:  # child: walk, write, and leave without running any cleanup of the parent's state
            code = 1
            try:
                spool.write(pickle.dumps(_share(walker, stack, index), protocol=pickle.HIGHEST_PROTOCOL))
                spool.flush()
                code = 0
            finally:
                os._exit(code)
        return cls(pid, spool, list(stack))

    def collect(self) -> Share | None:
        try:
            _, status = os.waitpid(self.pid, 0)
            if not os.WIFEXITED(status) or os.WEXITSTATUS(status) != 0:
                return None
            self.spool.seek(0)
            result: Share = pickle.loads(self.spool.read())  # noqa: S301
            return result
        finally:
            self.spool.close()


@contextlib.contextmanager
def _listing(fd: int) -> Iterator[Iterator[os.DirEntry[str]]]:
    """The entries of the open directory ``fd``, which is closed after them."""
    try:
        with os.scandir(fd) as it:
            yield it
    finally:
        os.close(fd)


Share = tuple[list[Candidate], list[bytes], WalkTally]


def _share(walker: Walker, stack: list[str], index: Index) -> Share:
    """What another process sends back for its share of a walk: (candidates, names seen, tally)."""
    tally = WalkTally()
    seen: list[bytes] = []
    candidates = [c for batch in walker.walk(stack, tally, index, seen) for c in batch]
    return candidates, seen, tally


class WalkHelper:
    """A process that walks half of a large tree for one that must not fork (the daemon runs threads).

    It is started with fork+exec (safe beside threads) at its first use and lives until ``close``. Each
    walk sends it the patterns, the path map, its share of the directories and the index, and it answers
    what a forked child would. Both travel as pickles on its own pipes: it is our own program, as trusted
    as a forked copy. Costs: ~20 MiB of memory while it lives, and ~10 ms per walk to pass the index of
    20,000 records and the names seen back, against ~35 ms of walking saved."""

    def __init__(self, command: Sequence[str] = ()) -> None:
        self.command = list(command) or [sys.executable, "-m", "shoal.fs.walk_helper"]
        self._proc: subprocess.Popen[bytes] | None = None
        self._lock = threading.Lock()  # one walk at a time

    def hand(self, walker: Walker, stack: list[str], index: Index) -> _Handed | None:
        """Give the helper ``stack`` to walk (starting it if needed); None if it cannot take it."""
        if not self._lock.acquire(blocking=False):
            return None
        proc = self._proc
        try:
            if proc is None or proc.poll() is not None:
                proc = self._proc = subprocess.Popen(
                    self.command,
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    env={**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)},
                )
            assert proc.stdin is not None
            data = pickle.dumps((walker.matcher, walker.pmap, stack, index), protocol=pickle.HIGHEST_PROTOCOL)
            proc.stdin.write(len(data).to_bytes(8, "big") + data)
            proc.stdin.flush()
        except OSError as e:
            log.warning("cannot hand a share of the walk to the helper process: %s", e)
            self._stop()
            self._lock.release()
            return None
        return _Handed(self, proc, list(stack))

    def _stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    with contextlib.suppress(OSError):
                        pipe.close()

    def close(self) -> None:
        with self._lock:
            self._stop()


class _Handed:
    """A share of a walk the helper process is doing."""

    def __init__(self, helper: WalkHelper, proc: subprocess.Popen[bytes], stack: list[str]) -> None:
        self.helper = helper
        self.proc = proc
        self.stack = stack  #: what it was given, for this process to walk if the helper fails

    def collect(self) -> Share | None:
        try:
            assert self.proc.stdout is not None
            head = self.proc.stdout.read(8)
            data = self.proc.stdout.read(int.from_bytes(head, "big")) if len(head) == 8 else b""
            if not data:
                raise EOFError("the helper process ended")
            result: Share = pickle.loads(data)  # noqa: S301 (our own helper's answer)
            return result
        except (OSError, EOFError, ValueError, pickle.UnpicklingError) as e:  # (a cut answer: the last two)
            log.warning("the walk helper process failed (%s); it is started again at the next walk", e)
            self.helper._stop()
            return None
        finally:
            self.helper._lock.release()


def serve_helper(requests: IO[bytes], answers: IO[bytes]) -> None:
    """The helper process's loop (``python -m shoal.fs.walk_helper``): walk each share asked for."""
    while len(head := requests.read(8)) == 8:
        matcher, pmap, stack, index = pickle.loads(requests.read(int.from_bytes(head, "big")))  # noqa: S301
        data = pickle.dumps(_share(Walker(matcher, pmap), stack, index), protocol=pickle.HIGHEST_PROTOCOL)
        answers.write(len(data).to_bytes(8, "big") + data)
        answers.flush()


def _entries(it: Iterator[os.DirEntry[str]], d: str, tally: WalkTally) -> Iterator[os.DirEntry[str]]:
    """The entries of an open directory listing. Reading it may still fail after it opened (a directory
    a peer's batch is replacing, a failing disk): that directory is then incomplete, never a crash that
    would end the scan, or in a daemon, live mode."""
    try:
        yield from it
    except OSError as e:
        tally.problems.append(Problem(d, f"cannot list directory: {e.strerror}"))
        tally.incomplete.append(d)
