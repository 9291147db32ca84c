"""Watching the managed trees with inotify: which real paths changed, as soon as the kernel says so.

Owns: one inotify instance, a watch per managed directory, and turning events into "these paths need a
scan" (``on_change(paths)``) or "everything needs a scan" (``on_change(None)``, after a queue overflow).
Must not: read file contents or touch records (the scanner does, for the paths reported here).

Theory of operation:
- Directories are watched top down, skipping subtrees the patterns prune and symlinked directories.
- Watch, then scan: a directory that appears (created or moved in) is watched first and then reported
  as a whole, so the scan of its subtree sees everything created in it before the watch existed, and
  the watch sees everything after.
- Renames: a directory's IN_MOVED_FROM and IN_MOVED_TO share a cookie; when both arrive, the watches of
  the moved subtree are renamed in place (the kernel keeps them on the inodes); a directory moved out of
  the trees (no partner in the same read) loses its watches. Both names are reported.
- IN_Q_OVERFLOW: events were lost; the owner rescans the roots. The watches stay; nothing restarts.
- The watch limit (ENOSPC from inotify_add_watch): that subtree is not watched; it is listed in
  ``unwatched`` for periodic scanning, and logged once, naming the sysctl to raise.
- Our own temp files (``.shoal-tmp.*``) are ignored.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import struct
from collections.abc import Callable

from inotify_simple import INotify, flags

from shoal.fs.apply import TMP_PREFIX
from shoal.model.patterns import Matcher, Verdict

log = logging.getLogger(__name__)

MASK = (
    flags.CREATE
    | flags.DELETE
    | flags.MODIFY
    | flags.CLOSE_WRITE
    | flags.ATTRIB
    | flags.MOVED_FROM
    | flags.MOVED_TO
    | flags.DELETE_SELF
    | flags.ONLYDIR
    | flags.DONT_FOLLOW
    | flags.EXCL_UNLINK
)
SYSCTL = "fs.inotify.max_user_watches"
READ_BYTES = 256 << 10  #: per read; more events wait for the next (the descriptor stays readable)
_EVENT = struct.Struct("iIII")  #: struct inotify_event: wd, mask, cookie, len; then len bytes of name
_TMP_PREFIX = os.fsencode(TMP_PREFIX)


class Watcher:
    def __init__(self, roots: list[str], matcher: Matcher, on_change: Callable[[list[str] | None], None]) -> None:
        self.roots = roots
        self.matcher = matcher
        self.on_change = on_change
        self.inotify = INotify(nonblocking=True)
        self.dirs: dict[int, str] = {}  # wd -> directory
        self.wds: dict[str, int] = {}  # directory -> wd
        self.unwatched: set[str] = set()  # subtrees left to periodic scanning (watch limit)
        self.events = 0
        self.overflows = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned_limit = False

    # -- watches -------------------------------------------------------------------------------------

    def watch_all(self) -> None:
        for root in self.roots:
            self.watch_tree(root)

    def watch_tree(self, top: str) -> list[str]:
        """Watch ``top`` and the directories below it that the patterns reach; returns the directories
        newly watched."""
        added: list[str] = []
        stack = [top]
        while stack:
            d = stack.pop()
            if d in self.wds:
                continue
            try:
                wd = self.inotify.add_watch(d, MASK)
            except OSError as e:
                if e.errno == errno.ENOSPC:
                    self._limit_hit(d)
                elif e.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP, errno.EACCES):
                    log.warning("cannot watch %s: %s", d, e.strerror)
                continue
            old = self.dirs.get(wd)
            if old is not None:  # the same inode under another name (renamed): keep the new name
                self.wds.pop(old, None)
            self.dirs[wd] = d
            self.wds[d] = wd
            self.unwatched.discard(d)
            added.append(d)
            try:
                with os.scandir(d) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False) and not entry.name.startswith(TMP_PREFIX):
                            sub = os.path.join(d, entry.name)
                            if self.matcher.reach(sub) is not Verdict.SKIP:
                                stack.append(sub)
            except OSError:
                continue
        return added

    def _limit_hit(self, d: str) -> None:
        self.unwatched.add(d)
        if not self._warned_limit:
            self._warned_limit = True
            log.warning(
                "inotify watch limit reached at %s (%d watches): that subtree is scanned periodically instead; "
                "raise the limit with: sysctl -w %s=<more>",
                d,
                len(self.wds),
                SYSCTL,
            )

    def _forget_tree(self, top: str) -> None:
        prefix = top + "/"
        for d in [d for d in self.wds if d == top or d.startswith(prefix)]:
            wd = self.wds.pop(d)
            self.dirs.pop(wd, None)

    def _rename_tree(self, old: str, new: str) -> None:
        prefix = old + "/"
        for d in [d for d in self.wds if d == old or d.startswith(prefix)]:
            wd = self.wds.pop(d)
            moved = new + d[len(old) :]
            self.wds[moved] = wd
            self.dirs[wd] = moved

    # -- events --------------------------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        loop.add_reader(self.inotify.fileno(), self.read)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.remove_reader(self.inotify.fileno())
            self._loop = None
        self.inotify.close()

    def read(self) -> None:
        """Take the events the kernel has, parsed here in one pass: a burst of writes brings several
        events per file (and a peer's apply several per received file, most of them on temp names,
        dropped before any decoding)."""
        try:
            data = os.read(self.inotify.fileno(), READ_BYTES)
        except BlockingIOError:
            return
        changed: list[str] = []
        moved_from: dict[int, str] = {}  # cookie -> directory that left
        pos, end = 0, len(data)
        while pos < end:
            wd, mask, cookie, size = _EVENT.unpack_from(data, pos)
            pos += _EVENT.size + size
            self.events += 1
            if mask & flags.Q_OVERFLOW:
                self.overflows += 1
                log.warning("inotify queue overflow: events were lost; rescanning every root")
                self.on_change(None)
                continue
            base = self.dirs.get(wd)
            if mask & flags.IGNORED:
                if base is not None and self.wds.get(base) == wd:
                    del self.wds[base]
                self.dirs.pop(wd, None)
                continue
            if base is None:
                continue
            raw = data[pos - size : pos].rstrip(b"\0")  # the kernel pads names with NULs
            if not raw:
                if mask & flags.DELETE_SELF:
                    changed.append(base)
                continue
            if raw.startswith(_TMP_PREFIX):
                continue
            path = os.path.join(base, os.fsdecode(raw))
            if not changed or changed[-1] != path:  # (create, modify, close: one path)
                changed.append(path)
            if not mask & flags.ISDIR:
                continue
            if mask & flags.MOVED_FROM:
                moved_from[cookie] = path
            elif mask & flags.MOVED_TO and cookie in moved_from:
                self._rename_tree(moved_from.pop(cookie), path)
                self.watch_tree(path)  # catches anything the rename map did not cover
            elif mask & (flags.CREATE | flags.MOVED_TO) and self.matcher.reach(path) is not Verdict.SKIP:
                self.watch_tree(path)  # then the scan of ``path`` sees what was made before the watch
            elif mask & flags.DELETE:
                self._forget_tree(path)
        for gone in moved_from.values():  # moved out of the watched trees
            self._forget_tree(gone)
        if changed:
            self.on_change(changed)
