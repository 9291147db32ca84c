"""Keeping old versions: csync2-style backup generations, and the conflict store.

Owns: copying a file or symlink that is about to be replaced or deleted to where the admin can get it
back. Must not: decide when that is needed (model/reconcile.py and the engine do).

- ``backup_generations``: the group's ``backup-directory`` mirrors the real path below it
  (``/var/backups/x`` + ``/srv/www/a.html``); before a new copy is written, older ones rotate
  ``f`` -> ``f.1`` -> ... -> ``f.(N-1)`` and the oldest falls off, as csync2 does.
- ``store``: without a backup directory, the conflict store in the state dir keeps each lost version in
  a directory of its own, ``<state>/conflict-store/<UTC time>-<random>/<name>``.

Copies are written to a temp name, fsynced and renamed, so a crash never leaves half a backup under the
real name. The source is opened without following a symlink in its last component.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
import time

STORE_DIR = "conflict-store"


class KeepError(Exception):
    pass


def _copy_fd(fd_in: int, fd_out: int) -> None:
    try:
        while os.copy_file_range(fd_in, fd_out, 1 << 30):
            pass
    except OSError as e:  # an older kernel or a filesystem that cannot: plain reads and writes
        if e.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise
        os.lseek(fd_in, 0, os.SEEK_SET)
        os.ftruncate(fd_out, 0)
        os.lseek(fd_out, 0, os.SEEK_SET)
        while chunk := os.read(fd_in, 1 << 20):
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd_out, view) :]


def _copy_into(src: str, dest: str) -> None:
    """Copy the file or symlink at ``src`` to ``dest`` (atomically), with mode and mtime."""
    st = os.lstat(src)
    parent = os.path.dirname(dest)
    os.makedirs(parent, mode=0o700, exist_ok=True)
    tmp = os.path.join(parent, f".shoal-tmp.{secrets.token_hex(6)}")
    try:
        if stat.S_ISLNK(st.st_mode):
            os.symlink(os.readlink(src), tmp)
        else:
            fd_in = os.open(src, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            try:
                fd_out = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
                try:
                    _copy_fd(fd_in, fd_out)
                    os.fchmod(fd_out, stat.S_IMODE(st.st_mode))
                    os.utime(fd_out, ns=(st.st_atime_ns, st.st_mtime_ns))
                    os.fsync(fd_out)
                finally:
                    os.close(fd_out)
            finally:
                os.close(fd_in)
        os.rename(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def backup_generations(real: str, directory: str, generations: int) -> str:
    """Copy ``real`` to ``directory`` + ``real`` after rotating the older copies; returns the copy's path."""
    dest = os.path.join(directory, real.lstrip("/"))
    try:
        for i in range(generations - 1, 0, -1):
            older = dest if i == 1 else f"{dest}.{i - 1}"
            with contextlib.suppress(FileNotFoundError):
                os.rename(older, f"{dest}.{i}")
        _copy_into(real, dest)
    except OSError as e:
        raise KeepError(f"{real}: cannot back up to {directory}: {e.strerror}") from None
    return dest


def store(real: str, state_dir: str, now_ns: int | None = None) -> str:
    """Copy ``real`` into the conflict store; returns the copy's path."""
    when = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime((now_ns or time.time_ns()) / 1e9))
    dest = os.path.join(state_dir, STORE_DIR, f"{when}-{secrets.token_hex(4)}", os.path.basename(real))
    try:
        _copy_into(real, dest)
    except OSError as e:
        raise KeepError(f"{real}: cannot keep a copy in the conflict store: {e.strerror}") from None
    return dest
