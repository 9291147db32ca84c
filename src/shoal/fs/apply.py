"""Applying remote changes to the local tree: atomically, durably, and never outside the managed roots.

Owns: every write shoal makes to a managed tree. Must not: decide what to apply (engine/ and model/).

Safety. Directories are opened one component at a time with O_NOFOLLOW from ``/``, so a symlink in a
parent path is refused, and only paths at or below a managed root are accepted. File content is written
to a temp file (``.shoal-tmp.*``, never recorded by the scanner) in the destination directory, its hash
checked, owner, mode and mtime set on the open file; the target is re-checked against our record right
before ``rename`` puts the new version in place, so a concurrent local edit is never overwritten.
Metadata never follows a symlink: it is set on the open temp file or directory, or on an entry looked
up once as an ``O_PATH | O_NOFOLLOW`` fd whose type is checked against the record (``_set_entry``).

Policy (per group, config ``allow setuid|devices``): the setuid and setgid bits of a received mode are
applied only where the group allows them, and device nodes are created only where it allows those
(``RefusedByPolicy`` otherwise).

Durability, per batch (design.md section 2, step 6): all temp files are written, one ``syncfs`` makes
their data durable, the renames happen, a second ``syncfs`` makes the directory entries durable; only
then are records written and the peer acknowledged. A crash at any point leaves either the old or the
new version at the path, and at worst a stale temp file that the next scan removes.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import blake3

from shoal.fs.hashing import hash_file
from shoal.model.paths import UnsafePath, check_path, is_within
from shoal.model.records import Kind, Record, kind_of, stat_signature

TMP_PREFIX = ".shoal-tmp."
COPY_PIECE = 1 << 20  #: reused chunks are copied this much at a time
STALE_TMP_S = 3600


def temp_name() -> str:
    """``.shoal-tmp.<pid>.<random>``: the pid tells a later scan whether the writer is still running."""
    return f"{TMP_PREFIX}{os.getpid()}.{secrets.token_hex(6)}"


def writer_alive(path: str) -> bool:
    """Whether the process that named this temp file may still be writing it (True when unknown)."""
    pid = os.path.basename(path)[len(TMP_PREFIX) :].split(".", 1)[0]
    if not pid.isdigit():
        return True  # an older name without a pid: only its age tells
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by someone else
    return True


_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
#: an entry of any type, symlinks included, pinned for its metadata (fchmod refuses O_PATH fds: the
#: entry's /proc/self/fd link is changed instead, which reaches exactly the inode the fd holds)
_ENTRY_FLAGS = os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC
SETID_BITS = stat.S_ISUID | stat.S_ISGID


class GroupPolicy(Protocol):
    """What the group managing a path lets this node take from a peer (config.resolve.GroupView)."""

    @property
    def allow_setuid(self) -> bool: ...

    @property
    def allow_devices(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Allowance:
    allow_setuid: bool = False
    allow_devices: bool = False


NOTHING_ALLOWED = Allowance()

# The C library this process already runs with (find_library would run ldconfig at every start-up).
_libc = ctypes.CDLL(None, use_errno=True)


AT_FDCWD, RENAME_NOREPLACE, RENAME_EXCHANGE = -100, 1, 2
#: renameat2 errors meaning the filesystem cannot do it: fall back to a plain rename
_NO_RENAMEAT2 = frozenset({errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP})


def renameat2(dfd: int, src: str, dst: str, flags: int) -> None:
    """renameat2(2) within one directory (``dfd``; AT_FDCWD for absolute paths): RENAME_NOREPLACE
    fails with FileExistsError where ``dst`` exists; RENAME_EXCHANGE swaps the two entries atomically."""
    if _libc.renameat2(dfd, os.fsencode(src), dfd, os.fsencode(dst), flags) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err), src)


def _is_expected(st: os.stat_result, expect: Record) -> bool:
    """Is ``st``, an entry just renamed (which moved its ctime), the one ``expect`` describes?"""
    return (
        kind_of(st.st_mode) is expect.kind
        and (not expect.inode or st.st_ino == expect.inode)
        and st.st_mtime_ns == expect.mtime_ns
        and (expect.kind is not Kind.FILE or st.st_size == expect.size_bytes)
    )


def _set_aside(dfd: int, tmp: str, name: str) -> str:
    """Keep the local version at ``tmp`` under a visible name beside ``name`` (never removed)."""
    aside = f"{name}.shoal-kept-{time.time_ns()}"
    try:
        os.rename(tmp, aside, src_dir_fd=dfd, dst_dir_fd=dfd)
    except OSError as err:
        return f"the local version is left at {tmp} ({err.strerror})"
    return f"the other local version is kept as {aside}"


def syncfs(fd: int) -> None:
    """Flush the filesystem holding ``fd`` (one call instead of an fsync per file)."""
    if _libc.syncfs(fd) != 0:
        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))


class ApplyError(Exception):
    """One path could not be applied; the message says why. Nothing was changed at that path."""


class DirectoryNotEmpty(ApplyError):
    """A deletion of a directory that still holds entries: it stays."""


class LocalRace(ApplyError):
    """A local write landed as a received version was renamed into place: the local one stays (and the
    temp name no longer holds the received version, so it is not to be removed)."""


class ContentMismatch(ApplyError):
    """What arrived is not the record's version (the sender's file changed while it was read)."""


class RefusedByPolicy(ApplyError):
    """The group does not let this node take what the record describes (a device node without
    ``allow devices``): nothing was made, and offering it again would change nothing."""


def disk_matches(real: str, expect: Record | None) -> bool:
    """Does the disk still hold what ``expect`` says (nothing, for None or a tombstone)?"""
    try:
        st = os.lstat(real)
    except FileNotFoundError:
        return expect is None or expect.deleted
    except OSError:
        return False
    if expect is None or expect.deleted:
        return False
    kind = kind_of(st.st_mode)
    if expect.kind is Kind.DIR:
        # A directory's own mtime and ctime move whenever an entry in it changes (our own applies
        # included); what it holds is tracked by the records of its entries.
        return kind is Kind.DIR
    if (
        kind is None
        or stat_signature(
            kind,
            st.st_size if kind is Kind.FILE else 0,
            st.st_mtime_ns,
            st.st_ctime_ns,
            st.st_ino,
            stat.S_IMODE(st.st_mode),
            st.st_uid,
            st.st_gid,
        )
        != expect.stat_signature()
    ):
        return False
    if expect.recheck and kind is Kind.FILE:
        # Written right around its last scan: stat cannot tell a same-tick rewrite, the content can.
        try:
            return hash_file(real).digest == expect.hash
        except OSError:
            return False
    return True


def discard(st: Staged) -> None:
    """Remove a staged temp file that will not be renamed into place (its Tree must still be open)."""
    with contextlib.suppress(OSError):
        os.unlink(st.tmp, dir_fd=st.dfd)


@dataclass
class Staged:
    """A new version written to a temp file, waiting to be renamed into place."""

    real: str
    dfd: int
    tmp: str
    name: str
    record: Record
    expect: Record | None


class FileWriter:
    """Receives the content of one file into a temp file next to its destination."""

    def __init__(self, tree: Tree, real: str, record: Record, expect: Record | None) -> None:
        self.tree = tree
        self.real = real
        self.record = record
        self.expect = expect
        parent, self.name = tree.split(real)
        self.dfd = tree.open_dir(parent, create=True)
        self.tmp = temp_name()
        self.fd = os.open(
            self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=self.dfd
        )
        self.hasher = blake3.blake3()  # fed 64 KiB at a time: threads would cost more than they save
        self.written = 0
        self._removed = False

    def write(self, data: bytes | memoryview) -> None:
        self.hasher.update(data)
        self._append(data)

    def _append(self, data: bytes | memoryview) -> None:
        view = memoryview(data)
        while view:
            n = os.write(self.fd, view)
            view = view[n:]
        self.written += len(data)

    def copy_from(self, fd: int, ranges: Sequence[tuple[int, int]]) -> None:
        """Append the ``(offset, length)`` ranges of the open file ``fd`` (chunks of our own older copy
        that a delta reuses). Read a MiB at a time; each piece is hashed on a helper thread while it
        is written (BLAKE3 and write(2) both let go of the GIL: 64 MiB in ~0.055 s instead of ~0.07 s).
        OSError if ``fd`` has fewer bytes than asked for: our copy changed under the transfer."""
        with ThreadPoolExecutor(1, thread_name_prefix="shoal-hash") as pool:
            hashing: Future[object] | None = None
            try:
                for start, length in ranges:
                    offset, end = start, start + length
                    while offset < end:
                        data = os.pread(fd, min(COPY_PIECE, end - offset), offset)
                        if not data:
                            raise OSError(errno.EIO, "our copy of the file changed while its chunks were reused")
                        if hashing is not None:
                            hashing.result()  # in order
                        hashing = pool.submit(self.hasher.update, data)
                        self._append(data)
                        offset += len(data)
            finally:
                if hashing is not None:
                    hashing.result()

    def _close(self) -> None:
        """Close the temp file once. A second close(2) of the same number would close whatever was
        opened since under it (another thread's directory listing, the state database)."""
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def abort(self) -> None:
        """Drop the temp file; safe to call again, and after ``finish`` failed."""
        with contextlib.suppress(OSError):
            self._close()
        if not self._removed:
            self._removed = True
            with contextlib.suppress(OSError):
                os.unlink(self.tmp, dir_fd=self.dfd)

    def finish(self) -> Staged:
        """Check the content and set metadata; the result goes to ``Tree.commit``."""
        rec = self.record
        if self.hasher.digest() != rec.hash or self.written != rec.size_bytes:
            self.abort()
            raise ContentMismatch(f"{self.real}: received content does not match the record's hash")
        try:
            self.tree.set_owner_mode(self.fd, rec, self.real)
            os.utime(self.fd, ns=(time.time_ns(), rec.mtime_ns))
        except OSError as e:
            self.abort()
            raise ApplyError(f"{self.real}: cannot set metadata: {e.strerror}") from None
        self._close()
        return Staged(self.real, self.dfd, self.tmp, self.name, rec, self.expect)


class Tree:
    """The managed trees of this node, as the engine may write them. Close after each batch."""

    def __init__(
        self,
        roots: Sequence[str],
        ignore: Iterable[str] = (),
        policy: Callable[[str], GroupPolicy] | None = None,
    ) -> None:
        self.roots = list(roots)
        self.ignore = set(ignore)
        #: real path -> what its group allows (nothing, without a config: the safe side)
        self.policy: Callable[[str], GroupPolicy] = policy or (lambda _: NOTHING_ALLOWED)
        self._fds: dict[str, int] = {}

    def close(self) -> None:
        for fd in self._fds.values():
            with contextlib.suppress(OSError):
                os.close(fd)
        self._fds.clear()

    def __enter__(self) -> Tree:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def check(self, real: str) -> str:
        check_path(real)
        if not any(is_within(real, r) for r in self.roots):
            raise UnsafePath(f"path is outside every managed root: {real!r}")
        return real

    def split(self, real: str) -> tuple[str, str]:
        self.check(real)
        cut = real.rfind("/")
        return real[:cut] or "/", real[cut + 1 :]

    def open_dir(self, path: str, create: bool) -> int:
        """An fd of directory ``path``, reached without following any symlink; missing directories at
        or below a root are created when ``create``."""
        fd = self._fds.get(path)
        if fd is not None:
            return fd
        if path == "/":
            fd = os.open("/", _DIR_FLAGS)
        else:
            parent, name = path.rsplit("/", 1)
            pfd = self.open_dir(parent or "/", create)
            try:
                fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            except FileNotFoundError:
                if not create or not any(is_within(path, r) for r in self.roots):
                    raise ApplyError(f"{path}: directory does not exist") from None
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o755, dir_fd=pfd)
                fd = os.open(name, _DIR_FLAGS, dir_fd=pfd)
            except OSError as e:
                if e.errno in (errno.ELOOP, errno.ENOTDIR):
                    raise ApplyError(f"{path}: a symlink or file where a directory should be; refused") from None
                raise ApplyError(f"{path}: {e.strerror}") from None
        self._fds[path] = fd
        return fd

    def open_file(self, real: str) -> int:
        """A read-only fd of the regular file at ``real``, reached as writes reach it: component by
        component from ``/`` with O_NOFOLLOW, never through a symlink and never outside a root (what a
        peer may read must be exactly what it may write). ApplyError if anything else is there."""
        parent, name = self.split(real)
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(name, flags, dir_fd=self.open_dir(parent, create=False))
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise ApplyError(f"{real}: not a regular file")
        return fd

    def _owner(self, rec: Record) -> tuple[int, int]:
        return -1 if "uid" in self.ignore else rec.uid, -1 if "gid" in self.ignore else rec.gid

    def mode_of(self, real: str, rec: Record) -> int:
        """The mode to give ``real`` for ``rec``: without setuid and setgid unless its group allows them
        (the sticky bit is no privilege and stays)."""
        if "mod" in self.ignore:
            return 0o755 if rec.kind is Kind.DIR else 0o644
        if rec.mode & SETID_BITS and not self.policy(real).allow_setuid:
            return rec.mode & ~SETID_BITS
        return rec.mode

    def set_owner_mode(self, fd: int, rec: Record, real: str) -> None:
        """On the open file or directory ``fd`` (owner first: chown clears setuid and setgid)."""
        uid, gid = self._owner(rec)
        if uid != -1 or gid != -1:
            os.fchown(fd, uid, gid)
        os.fchmod(fd, self.mode_of(real, rec))

    def _set_entry(self, dfd: int, name: str, real: str, rec: Record, *, mode: bool) -> None:
        """Owner, mode (with ``mode``) and mtime of entry ``name`` of ``dfd``. It is looked up once,
        without following a symlink, and must be of the record's type; everything is then set through
        that fd, so an entry renamed into the name meanwhile (a symlink to /etc/shadow, by a local user
        who can write the directory) is never touched. A symlink's own owner and mtime are set, never
        its target's (the /proc link of an O_PATH fd of a symlink is the symlink). OSError, or
        ApplyError for an entry of another type."""
        fd = os.open(name, _ENTRY_FLAGS, dir_fd=dfd)
        try:
            found = kind_of(os.fstat(fd).st_mode)
            if found is not rec.kind:
                what = "an entry of no synchronised type" if found is None else f"a {found.name.lower()}"
                raise ApplyError(f"{real}: {what} where the record has a {rec.kind.name.lower()}; not changed")
            at = f"/proc/self/fd/{fd}"
            uid, gid = self._owner(rec)
            if uid != -1 or gid != -1:
                os.chown(at, uid, gid)
            if mode and rec.kind is not Kind.SYMLINK:
                os.chmod(at, self.mode_of(real, rec))
            os.utime(at, ns=(time.time_ns(), rec.mtime_ns))
        finally:
            os.close(fd)

    # -- whole-batch steps -----------------------------------------------------------------------------

    def commit(self, staged: list[Staged]) -> tuple[list[Staged], list[str]]:
        """Make staged content durable and rename it into place. Returns (committed, problems)."""
        problems: list[str] = []
        done: list[Staged] = []
        if not staged:
            return done, problems
        for fd in {s.dfd for s in staged}:
            syncfs(fd)
            break  # one syncfs per filesystem; the trees of a node rarely span several
        for s in staged:
            try:
                self._replace(s.dfd, s.name, s.real, s.expect)
                self._rename_in(s)
                done.append(s)
            except (ApplyError, OSError) as e:
                if not isinstance(e, LocalRace):
                    with contextlib.suppress(OSError):
                        os.unlink(s.tmp, dir_fd=s.dfd)
                problems.append(str(e) if isinstance(e, ApplyError) else f"{s.real}: {e.strerror}")
        if done:
            syncfs(done[0].dfd)
        return done, problems

    def _rename_in(self, s: Staged) -> None:
        """Rename ``s`` into place, never over a local write that landed after ``_replace`` looked. Over
        an entry: an atomic exchange, then a look at what came out, which goes back if it is not what
        the record expected. Where nothing was: a rename that fails if something appeared."""
        e = s.expect
        try:
            if e is None or e.deleted or e.kind is Kind.DIR:  # (an expected directory is removed by now)
                renameat2(s.dfd, s.tmp, s.name, RENAME_NOREPLACE)
                return
            mine = os.lstat(s.tmp, dir_fd=s.dfd).st_ino
            renameat2(s.dfd, s.tmp, s.name, RENAME_EXCHANGE)
        except FileExistsError:
            raise ApplyError(f"{s.real}: created locally since it was last scanned; not replaced") from None
        except FileNotFoundError:  # what we were to replace is gone (deleted locally meanwhile)
            raise ApplyError(f"{s.real}: deleted locally since it was last scanned; not replaced") from None
        except OSError as err:
            if err.errno not in _NO_RENAMEAT2:
                raise
            os.rename(s.tmp, s.name, src_dir_fd=s.dfd, dst_dir_fd=s.dfd)
            return
        # From here the temp name holds what was at the path: it is removed only once known to be
        # the expected version or our own.
        try:
            if _is_expected(os.lstat(s.tmp, dir_fd=s.dfd), e):
                os.unlink(s.tmp, dir_fd=s.dfd)
                return
            renameat2(s.dfd, s.tmp, s.name, RENAME_EXCHANGE)  # a local write came in: it goes back
            if os.lstat(s.tmp, dir_fd=s.dfd).st_ino == mine:
                os.unlink(s.tmp, dir_fd=s.dfd)
                raise LocalRace(f"{s.real}: changed locally as it was replaced; not replaced")
        except OSError as err:
            aside = _set_aside(s.dfd, s.tmp, s.name)
            raise LocalRace(f"{s.real}: {err.strerror} while replacing it; {aside}") from None
        # A second local write came in between our two exchanges: neither local version is dropped.
        raise LocalRace(f"{s.real}: changed locally twice as it was replaced; {_set_aside(s.dfd, s.tmp, s.name)}")

    @staticmethod
    def _unlink(dfd: int, name: str, real: str, expect: Record) -> None:
        """Delete the entry ``name``, which ``expect`` describes: it is moved to a temp name and looked
        at there first, so that a local write landing after the caller's check goes back, not away."""
        tmp = temp_name()
        try:
            renameat2(dfd, name, tmp, RENAME_NOREPLACE)
        except OSError as err:
            if err.errno not in _NO_RENAMEAT2:
                raise
            os.unlink(name, dir_fd=dfd)
            return
        if _is_expected(os.lstat(tmp, dir_fd=dfd), expect):
            os.unlink(tmp, dir_fd=dfd)
            return
        try:
            renameat2(dfd, tmp, name, RENAME_NOREPLACE)
        except OSError:  # another local entry is at the name by now: both stay
            raise LocalRace(f"{real}: changed locally twice as it was deleted; {_set_aside(dfd, tmp, name)}") from None
        raise LocalRace(f"{real}: changed locally as it was deleted; not deleted")

    def _replace(self, dfd: int, name: str, real: str, expect: Record | None) -> None:
        """Re-check the target against ``expect`` and clear the way for a new entry of any kind."""
        if not disk_matches(real, expect):
            raise ApplyError(f"{real}: changed locally since it was last scanned; not replaced")
        if expect is not None and not expect.deleted and expect.kind is Kind.DIR:
            try:
                os.rmdir(name, dir_fd=dfd)
            except OSError as e:
                raise ApplyError(f"{real}: directory is not empty; cannot replace it ({e.strerror})") from None
            self._fds.pop(real, None)

    def make_dir(self, real: str, rec: Record, expect: Record | None) -> None:
        parent, name = self.split(real)
        pfd = self.open_dir(parent, create=True)
        try:
            st = os.lstat(name, dir_fd=pfd)
            exists_as_dir = stat.S_ISDIR(st.st_mode)
        except FileNotFoundError:
            exists_as_dir = False
            st = None
        if st is not None and not exists_as_dir:
            if not disk_matches(real, expect):
                raise ApplyError(f"{real}: changed locally since it was last scanned; not replaced")
            os.unlink(name, dir_fd=pfd)
        if not exists_as_dir:
            with contextlib.suppress(FileExistsError):
                os.mkdir(name, 0o700, dir_fd=pfd)
        fd = self.open_dir(real, create=False)
        try:
            self.set_owner_mode(fd, rec, real)
        except OSError as e:
            raise ApplyError(f"{real}: cannot set metadata: {e.strerror}") from None

    def set_dir_time(self, real: str, mtime_ns: int) -> None:
        """Directory mtimes go last: creating children changes them."""
        with contextlib.suppress(ApplyError, OSError):
            os.utime(self.open_dir(real, create=False), ns=(time.time_ns(), mtime_ns))

    def make_special(self, real: str, rec: Record, expect: Record | None) -> Staged:
        """A symlink, fifo or device node, made under a temp name (renamed into place by ``commit``);
        RefusedByPolicy for a device node where the group does not allow devices."""
        parent, name = self.split(real)
        if rec.kind in (Kind.CHR, Kind.BLK) and not self.policy(real).allow_devices:
            raise RefusedByPolicy(f"{real}: a device node, and its group does not 'allow devices'; not created")
        dfd = self.open_dir(parent, create=True)
        tmp = temp_name()
        try:
            if rec.kind is Kind.SYMLINK:
                os.symlink(rec.target or "", tmp, dir_fd=dfd)
            elif rec.kind is Kind.FIFO:
                os.mkfifo(tmp, 0o600, dir_fd=dfd)
            else:
                dev_type = stat.S_IFCHR if rec.kind is Kind.CHR else stat.S_IFBLK
                os.mknod(tmp, 0o600 | dev_type, rec.rdev, dir_fd=dfd)
            self._set_entry(dfd, tmp, real, rec, mode=True)
        except (OSError, ApplyError) as e:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            if isinstance(e, ApplyError):
                raise
            raise ApplyError(f"{real}: cannot create: {e.strerror}") from None
        return Staged(real, dfd, tmp, name, rec, expect)

    def delete(self, real: str, expect: Record | None) -> None:
        """Remove what ``expect`` describes; a directory only when it is empty."""
        parent, name = self.split(real)
        try:
            pfd = self.open_dir(parent, create=False)
        except ApplyError:
            return  # the parent is gone already
        if not disk_matches(real, expect):
            raise ApplyError(f"{real}: changed locally since it was last scanned; not deleted")
        if expect is None or expect.deleted:
            return
        try:
            if expect.kind is Kind.DIR:
                os.rmdir(name, dir_fd=pfd)
                old = self._fds.pop(real, None)
                if old is not None:
                    os.close(old)
            else:
                self._unlink(pfd, name, real, expect)
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno in (errno.ENOTEMPTY, errno.EEXIST):
                raise DirectoryNotEmpty(f"{real}: directory still holds unknown content; kept") from None
            raise ApplyError(f"{real}: cannot delete: {e.strerror}") from None

    def set_metadata(self, real: str, rec: Record) -> None:
        """Owner, mode and mtime of what is already at ``real`` (identical content, newer metadata)."""
        parent, name = self.split(real)
        pfd = self.open_dir(parent, create=False)
        try:
            self._set_entry(pfd, name, real, rec, mode="mod" not in self.ignore)
        except OSError as e:
            raise ApplyError(f"{real}: cannot set metadata: {e.strerror}") from None
