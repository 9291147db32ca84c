"""Owner, mode and mtime as fs/apply.py sets them: never through a symlink swapped in by a local user, and
setuid/setgid bits and device nodes only where the group allows them."""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shoal.fs.apply import ApplyError, RefusedByPolicy, Tree
from shoal.model.records import Kind, Record

pytestmark = pytest.mark.timeout(30)


class Allowed:
    def __init__(self, setuid: bool = False, devices: bool = False) -> None:
        self.allow_setuid = setuid
        self.allow_devices = devices


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    """A file outside the managed tree that a hostile local user would like root to chmod."""
    f = tmp_path / "outside"
    f.write_text("secret")
    os.chmod(f, 0o600)
    return f


@pytest.fixture
def root(tmp_path: Path) -> Path:
    r = tmp_path / "tree"
    r.mkdir()
    return r


def _swap_after(
    monkeypatch: pytest.MonkeyPatch,
    fn: str,
    wanted: Callable[[Any], bool],
    path_of: Callable[[Any], Path],
    target: Path,
) -> list[Path]:
    """Make ``os.<fn>`` replace the entry it was called on by a symlink to ``target`` right after it
    returns, the first time it is called on an entry ``wanted`` picks: the race a local user who can
    write the directory wins with luck (or inotify)."""
    real = getattr(os, fn)
    swapped: list[Path] = []

    def racing(*args: Any, **kwargs: Any) -> Any:
        out = real(*args, **kwargs)
        if not swapped and wanted(args[0]):
            entry = path_of(args[0])
            tmp = entry.with_name(".evil")
            os.symlink(target, tmp)
            os.rename(tmp, entry)
            swapped.append(entry)
        return out

    monkeypatch.setattr(os, fn, racing)
    return swapped


def _names(n: str) -> Callable[[Any], bool]:
    return lambda arg: arg == n


@pytest.mark.parametrize("first_call", ["open", "chown"])
def test_set_metadata_never_chmods_through_a_swapped_symlink(
    monkeypatch: pytest.MonkeyPatch, root: Path, outside: Path, first_call: str
) -> None:
    """Whatever call looks the entry up first (os.open of it as O_PATH now, os.chown by name before), a
    symlink put in its place right after must not carry the chmod, chown or utime to what it points at."""
    f = root / "f"
    f.write_text("x")
    os.chmod(f, 0o644)
    before = os.stat(outside)
    rec = Record("%d%/f", Kind.FILE, size_bytes=1, mode=0o777, uid=1234, gid=2345, mtime_ns=10**18)
    with Tree([str(root)]) as tree:
        tree.open_dir(str(root), create=False)
        _swap_after(monkeypatch, first_call, _names("f"), lambda _: f, outside)
        with contextlib.suppress(ApplyError):  # refusing is fine too; following is not
            tree.set_metadata(str(f), rec)
        monkeypatch.undo()
    after = os.stat(outside)
    assert (stat.S_IMODE(after.st_mode), after.st_uid, after.st_gid, after.st_mtime_ns) == (
        0o600,
        before.st_uid,
        before.st_gid,
        before.st_mtime_ns,
    )


def _tmp_entry(dfd_path: Path) -> Callable[[Any], Path]:
    return lambda name: dfd_path / name


@pytest.mark.parametrize("kind", [Kind.FIFO, Kind.CHR], ids=["fifo", "chr"])
@pytest.mark.parametrize("first_call", ["mkfifo", "mknod", "chown"])
def test_make_special_never_chmods_through_a_swapped_symlink(
    monkeypatch: pytest.MonkeyPatch, root: Path, outside: Path, kind: Kind, first_call: str
) -> None:
    """The temp name of a new fifo or device node sits in a directory a local user may write: swapped
    for a symlink once made, it must not pass on the chmod."""
    if (kind is Kind.FIFO) != (first_call == "mkfifo") and first_call != "chown":
        pytest.skip("that call does not make this kind")
    rec = Record("%d%/n", kind, mode=0o666, rdev=os.makedev(1, 3) if kind is Kind.CHR else 0, mtime_ns=10**18)
    with Tree([str(root)], policy=lambda _: Allowed(devices=True)) as tree:
        _swap_after(monkeypatch, first_call, lambda n: str(n).startswith(".shoal-tmp."), _tmp_entry(root), outside)
        with contextlib.suppress(ApplyError):
            tree.commit([tree.make_special(str(root / "n"), rec, None)])
        monkeypatch.undo()
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o600
    assert os.stat(outside).st_mtime_ns != 10**18


def test_set_metadata_on_a_symlink_changes_the_link_not_its_target(root: Path, outside: Path) -> None:
    link = root / "l"
    os.symlink(outside, link)
    rec = Record("%d%/l", Kind.SYMLINK, target=str(outside), uid=1234, gid=2345, mtime_ns=10**18)
    with Tree([str(root)]) as tree:
        tree.set_metadata(str(link), rec)
    st = os.lstat(link)
    assert (st.st_uid, st.st_gid, st.st_mtime_ns) == (1234, 2345, 10**18)
    assert os.stat(outside).st_uid == 0 and stat.S_IMODE(os.stat(outside).st_mode) == 0o600


def test_set_metadata_refuses_an_entry_of_another_kind(root: Path, outside: Path) -> None:
    """The record says file; a symlink is there (put there before we looked): nothing is changed."""
    os.symlink(outside, root / "f")
    rec = Record("%d%/f", Kind.FILE, mode=0o777, mtime_ns=10**18)
    with Tree([str(root)]) as tree, pytest.raises(ApplyError, match="symlink"):
        tree.set_metadata(str(root / "f"), rec)
    assert stat.S_IMODE(os.stat(outside).st_mode) == 0o600


# -- setuid, setgid and device nodes ------------------------------------------------------------------


@pytest.mark.parametrize(("allowed", "want"), [(False, 0o1755), (True, 0o7755)])
def test_setuid_and_setgid_are_applied_only_where_allowed(root: Path, allowed: bool, want: int) -> None:
    """Of a received file's mode the setuid and setgid bits go unless the group allows them; the
    sticky bit stays."""
    import blake3

    from shoal.fs.apply import FileWriter

    data = b"#!/bin/sh\n"
    rec = Record("%d%/s", Kind.FILE, size_bytes=len(data), mode=0o7755, hash=blake3.blake3(data).digest())
    d = Record("%d%/d", Kind.DIR, mode=0o2775)
    with Tree([str(root)], policy=lambda _: Allowed(setuid=allowed)) as tree:
        w = FileWriter(tree, str(root / "s"), rec, None)
        w.write(data)
        tree.commit([w.finish()])
        tree.make_dir(str(root / "d"), d, None)
    assert stat.S_IMODE(os.lstat(root / "s").st_mode) == want
    assert stat.S_IMODE(os.lstat(root / "d").st_mode) == (0o2775 if allowed else 0o775)
    (root / "t").write_text("x")
    with Tree([str(root)], policy=lambda _: Allowed(setuid=allowed)) as tree:
        tree.set_metadata(str(root / "t"), Record("%d%/t", Kind.FILE, mode=0o6711))
    assert stat.S_IMODE(os.lstat(root / "t").st_mode) == (0o6711 if allowed else 0o711)


def test_device_nodes_are_refused_unless_allowed(root: Path) -> None:
    rec = Record("%d%/null", Kind.CHR, mode=0o666, rdev=os.makedev(1, 3))
    with Tree([str(root)]) as tree, pytest.raises(RefusedByPolicy, match="allow devices"):
        tree.make_special(str(root / "null"), rec, None)
    assert sorted(os.listdir(root)) == []
    with Tree([str(root)], policy=lambda _: Allowed(devices=True)) as tree:
        tree.commit([tree.make_special(str(root / "null"), rec, None)])
    st = os.lstat(root / "null")
    assert stat.S_ISCHR(st.st_mode) and st.st_rdev == os.makedev(1, 3) and stat.S_IMODE(st.st_mode) == 0o666


def test_a_fifo_is_no_device(root: Path) -> None:
    rec = Record("%d%/p", Kind.FIFO, mode=0o4640)
    with Tree([str(root)]) as tree:
        tree.commit([tree.make_special(str(root / "p"), rec, None)])
    st = os.lstat(root / "p")
    assert stat.S_ISFIFO(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o640
