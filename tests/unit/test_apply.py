"""Receiving files (fs/apply.py) on a real temporary tree: what a failure must leave alone."""

from __future__ import annotations

import asyncio
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

import blake3
import pytest

from shoal.engine.exchange import _whole
from shoal.fs import apply as apply_mod
from shoal.fs.apply import COPY_PIECE, TMP_PREFIX, ApplyError, FileWriter, Tree
from shoal.model.records import Kind, Record


def test_a_failed_finish_then_abort_closes_nothing_else(tmp_path: Path) -> None:
    """A transfer whose content did not match its hash was aborted twice: by ``finish`` and again by the
    session. The second close(2) hit whatever had been opened since under the same number (in the
    partition campaign: the scanner's directory listing, which then failed with ENOTDIR)."""
    rec = Record("%d%/f", Kind.FILE, size_bytes=5, mode=0o644, hash=blake3.blake3(b"right").digest())
    with Tree([str(tmp_path)]) as tree:
        w = FileWriter(tree, str(tmp_path / "f"), rec, None)
        w.write(b"wrong")
        with pytest.raises(ApplyError, match="does not match"):
            w.finish()
        sentinel = os.open(tmp_path / "sentinel", os.O_CREAT | os.O_RDWR, 0o600)  # the lowest free number
        try:
            w.abort()
            w.abort()
            os.fstat(sentinel)  # still ours
            assert os.write(sentinel, b"ok") == 2
        finally:
            os.close(sentinel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel"]
    assert not any(p.name.startswith(TMP_PREFIX) for p in tmp_path.iterdir())


def test_reused_chunks_are_copied_in_order_and_hashed(tmp_path: Path) -> None:
    """A delta interleaves literal pieces with ranges of our own older copy; the copy reads a MiB at a
    time and hashes on a helper thread, so order and hash must come out exactly as written."""
    old = os.urandom(3 * COPY_PIECE + 12345)
    (tmp_path / "old").write_bytes(old)
    ranges = [(COPY_PIECE - 7, COPY_PIECE + 100), (0, 10), (2 * COPY_PIECE, COPY_PIECE + 12345)]
    literal = os.urandom(4321)
    want = old[ranges[0][0] : sum(ranges[0])] + literal + b"".join(old[o : o + n] for o, n in ranges[1:])
    rec = Record("%d%/f", Kind.FILE, size_bytes=len(want), mode=0o644, hash=blake3.blake3(want).digest())
    with Tree([str(tmp_path)]) as tree, open(tmp_path / "old", "rb") as base:
        w = FileWriter(tree, str(tmp_path / "f"), rec, None)
        w.copy_from(base.fileno(), ranges[:1])
        w.write(literal)
        w.copy_from(base.fileno(), ranges[1:])
        tree.commit([w.finish()])
    assert (tmp_path / "f").read_bytes() == want

    short = [(len(old) - 10, 20)]  # our copy is shorter than the peer's chunk map says: it changed
    with Tree([str(tmp_path)]) as tree, open(tmp_path / "old", "rb") as base:
        w = FileWriter(tree, str(tmp_path / "g"), rec, None)
        with pytest.raises(OSError, match="changed while its chunks were reused"):
            w.copy_from(base.fileno(), short)
        w.abort()
    assert not (tmp_path / "g").exists() and not any(p.name.startswith(TMP_PREFIX) for p in tmp_path.iterdir())


def test_a_cancelled_batch_waits_for_its_thread() -> None:
    """A cancelled apply must not close its directory fds while its thread still renames through them."""
    finished = threading.Event()

    def work() -> int:
        time.sleep(0.3)
        finished.set()
        return 1

    async def scenario() -> None:
        task = asyncio.create_task(_whole(work))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()  # the cancellation surfaced only after the thread was done
        assert await _whole(lambda: 7) == 7

    asyncio.run(scenario())


def _recorded(path: Path) -> Record:
    """The record a scan would hold of the file at ``path``."""
    st = os.lstat(path)
    return Record(
        "%d%/" + path.name, Kind.FILE, size_bytes=st.st_size, mode=stat.S_IMODE(st.st_mode), uid=st.st_uid,
        gid=st.st_gid, mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, inode=st.st_ino,
        hash=blake3.blake3(path.read_bytes()).digest(),
    )  # fmt: skip


class RacingTree(Tree):
    """A Tree whose last look at a path before renaming into it is followed at once by ``local_write``:
    a seam that makes a race which otherwise needs luck (the crash campaign met it once in 2,571
    shared writes: a local version overwritten unseen, neither final nor kept)."""

    def __init__(self, root: Path, local_write: Callable[[Path], None]) -> None:
        super().__init__([str(root)])
        self.local_write = local_write

    def _replace(self, dfd: int, name: str, real: str, expect: Record | None) -> None:
        super()._replace(dfd, name, real, expect)
        self.local_write(Path(real))

    def _unlink(self, dfd: int, name: str, real: str, expect: Record) -> None:
        self.local_write(Path(real))
        super()._unlink(dfd, name, real, expect)


def _edit(path: Path) -> None:
    """A local write as editors make them: a new file renamed over the old."""
    tmp = path.with_name(".edit.swp")
    tmp.write_bytes(b"local edit")
    os.replace(tmp, path)


@pytest.mark.parametrize("existing", [True, False], ids=["over-a-file", "where-nothing-was"])
@pytest.mark.parametrize("race", [True, False], ids=["local-write-races", "no-race"])
def test_a_local_write_landing_as_a_version_is_renamed_in_is_not_lost(
    tmp_path: Path, existing: bool, race: bool
) -> None:
    f = tmp_path / "f"
    expect = None
    if existing:
        f.write_bytes(b"old")
        expect = _recorded(f)
    new = b"from the peer"
    rec = Record("%d%/f", Kind.FILE, size_bytes=len(new), mode=0o644, hash=blake3.blake3(new).digest())
    with RacingTree(tmp_path, _edit if race else lambda _: None) as tree:
        w = FileWriter(tree, str(f), rec, expect)
        w.write(new)
        done, problems = tree.commit([w.finish()])
    if race:
        assert done == [] and len(problems) == 1 and "locally" in problems[0], problems
        assert f.read_bytes() == b"local edit"
    else:
        assert len(done) == 1 and problems == []
        assert f.read_bytes() == new
    assert [p.name for p in tmp_path.iterdir()] == ["f"]  # no temp file left, nothing set aside


def test_a_second_local_write_between_the_two_exchanges_is_set_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A local write lands after the last look (RacingTree), so the received version goes in by an
    exchange and the local one comes out; a second local write lands over the received version before
    the exchange that puts the first one back. Neither local version may be dropped: the first goes
    back to the path, the second is kept beside it as NAME.shoal-kept-NS."""
    f = tmp_path / "f"
    f.write_bytes(b"old")
    expect = _recorded(f)
    looked = apply_mod._is_expected

    def second_write(st: os.stat_result, e: Record) -> bool:
        answer = looked(st, e)  # the first local write came out of the exchange: not the expected one
        tmp = f.with_name(".second.swp")
        tmp.write_bytes(b"second local edit")
        os.replace(tmp, f)  # lands over the received version, between the two exchanges
        return answer

    monkeypatch.setattr(apply_mod, "_is_expected", second_write)
    new = b"from the peer"
    rec = Record("%d%/f", Kind.FILE, size_bytes=len(new), mode=0o644, hash=blake3.blake3(new).digest())
    with RacingTree(tmp_path, _edit) as tree:
        w = FileWriter(tree, str(f), rec, expect)
        w.write(new)
        done, problems = tree.commit([w.finish()])
    assert done == [] and len(problems) == 1 and "changed locally twice" in problems[0], problems
    assert f.read_bytes() == b"local edit"
    kept = [p for p in tmp_path.iterdir() if p.name.startswith("f.shoal-kept-")]
    assert len(kept) == 1 and kept[0].read_bytes() == b"second local edit"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["f", kept[0].name])  # no temp file left


@pytest.mark.parametrize("race", [True, False], ids=["local-write-races", "no-race"])
def test_a_local_write_landing_as_a_deletion_is_applied_is_not_lost(tmp_path: Path, race: bool) -> None:
    f = tmp_path / "f"
    f.write_bytes(b"old")
    expect = _recorded(f)
    with RacingTree(tmp_path, _edit if race else lambda _: None) as tree:
        if race:
            with pytest.raises(ApplyError, match="changed locally as it was deleted"):
                tree.delete(str(f), expect)
        else:
            tree.delete(str(f), expect)
    assert [p.name for p in tmp_path.iterdir()] == (["f"] if race else [])
    if race:
        assert f.read_bytes() == b"local edit"
