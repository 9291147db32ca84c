"""The two-process walk finds exactly what the one-process walk finds, and survives its helper dying."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, NodeConfig, resolve
from shoal.fs import walk
from shoal.fs.scan import RECENT_NS, Scanner
from shoal.state.db import StateDB


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


def cfg_for(root: Path) -> NodeConfig:
    return resolve(parse_text(f"group g {{ host n1; key k; include {root}; exclude *.tmp; }}"), "n1", probe)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    for d in range(6):
        for sub in range(3):
            p = root / f"d{d}" / f"s{sub}"
            p.mkdir(parents=True)
            for f in range(5):
                (p / f"f{f}.txt").write_text(f"{d}/{sub}/{f}")
            (p / "x.tmp").write_text("excluded")
    return root


@pytest.fixture
def forks(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    monkeypatch.setattr(walk, "PARALLEL_MIN_RECORDS", 1)
    calls: list[int] = []
    real_fork = walk._Child.fork.__func__  # type: ignore[attr-defined]

    def counting_fork(cls, walker, stack, index):  # type: ignore[no-untyped-def]
        calls.append(len(stack))
        return real_fork(cls, walker, stack, index)

    monkeypatch.setattr(walk._Child, "fork", classmethod(counting_fork))
    yield calls


def later() -> int:
    import time

    return time.time_ns() + 10 * RECENT_NS


def test_split_walk_detects_changes_in_both_shares(tree: Path, tmp_path: Path, forks: list[int]) -> None:
    cfg = cfg_for(tree)
    with StateDB.open(str(tmp_path / "s.db")) as db:
        first = Scanner(db, cfg, clock_ns=later).scan()
        assert forks == []  # empty index: nothing to gain from forking
        assert first.new == 1 + 6 + 18 + 90
        noop = Scanner(db, cfg, clock_ns=later).scan()
        assert forks == [3]  # six top-level directories, half to the helper
        assert (noop.recorded, noop.unchanged) == (0, 115)
        for d in range(6):  # change something in every top-level directory
            (tree / f"d{d}" / "s0" / "f0.txt").write_text("changed!")
            (tree / f"d{d}" / "s1" / "f1.txt").unlink()
        res = Scanner(db, cfg, clock_ns=later).scan()
        assert (res.changed, res.deleted, res.metadata) == (6, 6, 6)  # + the mtime of each s1 directory
        live = {r.path for r in db.all_records(include_deleted=False)}
        assert len(live) == 115 - 6
        assert len(forks) == 2


def test_split_walk_equals_single_walk(tree: Path, tmp_path: Path, forks: list[int]) -> None:
    cfg = cfg_for(tree)
    with StateDB.open(str(tmp_path / "a.db")) as a:
        Scanner(a, cfg, clock_ns=later).scan()
        (tree / "d3" / "s2" / "new.txt").write_text("new")
        os.chmod(tree / "d4", 0o700)
        Scanner(a, cfg, clock_ns=later).scan()
        split = sorted((r.path, r.seq > 115) for r in a.all_records())
    assert forks == [3]
    with StateDB.open(str(tmp_path / "b.db")) as b:
        Scanner(b, cfg, clock_ns=later).scan()
        single = sorted((r.path, False) for r in b.all_records())
    assert [p for p, _ in split] == [p for p, _ in single]
    assert [p for p, changed in split if changed] == [f"{tree}/d3/s2", f"{tree}/d3/s2/new.txt", f"{tree}/d4"]


def test_helper_failure_falls_back_to_one_process(
    tree: Path, tmp_path: Path, forks: list[int], monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = cfg_for(tree)
    parent = os.getpid()
    real_walk = walk.Walker.walk

    def dying_walk(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        if os.getpid() != parent:
            raise RuntimeError("helper dies")
        return real_walk(self, *args, **kwargs)

    with StateDB.open(str(tmp_path / "s.db")) as db:
        Scanner(db, cfg, clock_ns=later).scan()
        (tree / "d0" / "s0" / "f0.txt").write_text("changed in any share")
        (tree / "d1" / "s0" / "f0.txt").write_text("changed in any share")
        monkeypatch.setattr(walk.Walker, "walk", dying_walk)
        res = Scanner(db, cfg, clock_ns=later).scan()
    assert forks == [3]
    assert (res.changed, res.deleted, res.unchanged) == (2, 0, 113)


def test_no_fork_while_other_threads_run(tree: Path, tmp_path: Path, forks: list[int]) -> None:
    cfg = cfg_for(tree)
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        with StateDB.open(str(tmp_path / "s.db")) as db:
            Scanner(db, cfg, clock_ns=later).scan()
            res = Scanner(db, cfg, clock_ns=later).scan()
    finally:
        stop.set()
        other.join()
    assert forks == [] and res.unchanged == 115


@pytest.fixture
def helper(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[walk.WalkHelper, list[int]]]:
    """A walk helper process, and the sizes of the shares handed to it."""
    h = walk.WalkHelper()
    handed: list[int] = []
    real_hand = walk.WalkHelper.hand

    def counting_hand(self, walker, stack, index):  # type: ignore[no-untyped-def]
        handed.append(len(stack))
        return real_hand(self, walker, stack, index)

    monkeypatch.setattr(walk.WalkHelper, "hand", counting_hand)
    yield h, handed
    h.close()


@pytest.fixture
def busy() -> Iterator[None]:
    """Another thread runs meanwhile (as in the daemon): forking is off."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    yield
    stop.set()
    other.join()


def test_while_other_threads_run_the_helper_process_walks_half(
    tree: Path, tmp_path: Path, forks: list[int], helper: tuple[walk.WalkHelper, list[int]], busy: None
) -> None:
    h, handed = helper
    cfg = cfg_for(tree)
    with StateDB.open(str(tmp_path / "s.db")) as db:
        Scanner(db, cfg, clock_ns=later, walk_helper=h).scan()
        assert handed == []  # empty index: nothing to gain
        for d in range(6):  # something in every top-level directory, so in both shares
            (tree / f"d{d}" / "s0" / "f0.txt").write_text("changed!")
            (tree / f"d{d}" / "s1" / "f1.txt").unlink()
        res = Scanner(db, cfg, clock_ns=later, walk_helper=h).scan()
        assert forks == [] and handed == [3]
        assert (res.changed, res.deleted, res.metadata, res.unchanged) == (6, 6, 6, 115 - 18)
        assert h._proc is not None
        first = h._proc.pid
        assert first != os.getpid() and h._proc.poll() is None  # a process of its own, kept for next time
        h._proc.kill()  # it dies between walks: the next walk starts another
        h._proc.wait()
        res = Scanner(db, cfg, clock_ns=later, walk_helper=h).scan()
        assert handed == [3, 3] and (res.recorded, res.unchanged) == (0, 109)
        assert h._proc is not None and h._proc.pid != first
    h.close()
    assert h._proc is None


def test_a_helper_process_that_fails_leaves_its_share_to_this_one(
    tree: Path, tmp_path: Path, forks: list[int], busy: None, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = cfg_for(tree)
    quitter = walk.WalkHelper([sys.executable, "-c", "import sys; sys.stdin.buffer.read(8)"])  # reads, leaves
    try:
        with StateDB.open(str(tmp_path / "s.db")) as db:
            Scanner(db, cfg, clock_ns=later).scan()
            (tree / "d0" / "s0" / "f0.txt").write_text("changed in any share")
            (tree / "d1" / "s0" / "f0.txt").write_text("changed in any share")
            res = Scanner(db, cfg, clock_ns=later, walk_helper=quitter).scan()
    finally:
        quitter.close()
    assert (res.changed, res.deleted, res.unchanged) == (2, 0, 113)
    assert "walk helper process failed" in caplog.text or "cannot hand a share" in caplog.text
