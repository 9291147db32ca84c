"""The scanner on real trees in a temporary directory, with a real state database."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import blake3
import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, NodeConfig, resolve
from shoal.fs.hashing import Hashed, hash_file
from shoal.fs.scan import RECENT_FINE_NS, RECENT_NS, Scanner
from shoal.fs.walk import WalkTally
from shoal.model.records import Kind, Order, Record, compare
from shoal.state.db import StateDB
from shoal.transfer import delta


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


def node_cfg(root: Path, extra: str = "") -> NodeConfig:
    text = f"""group g {{ host n1 n2; key k; include %data%; exclude *.swp %data%/cache; {extra} }}
               prefix data {{ on n1: {root}; }}"""
    return resolve(parse_text(text, "/etc/shoal.cfg"), "n1", probe)


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "data"
    (root / "sub" / "deep").mkdir(parents=True)
    (root / "cache").mkdir()
    (root / "a.txt").write_text("alpha")
    (root / "sub" / "b.txt").write_text("bravo")
    (root / "sub" / "deep" / "c.bin").write_bytes(os.urandom(3000))
    (root / "x.swp").write_text("junk")
    (root / "cache" / "tmp").write_text("junk")
    os.symlink("a.txt", root / "link")
    os.mkfifo(root / "pipe")
    return root


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB.open(str(tmp_path / "state.db")) as d:
        yield d


def paths(db: StateDB, deleted: bool = False) -> set[str]:
    return {r.path for r in db.all_records() if r.deleted == deleted}


def test_first_scan_records_every_managed_kind(tree: Path, db: StateDB) -> None:
    res = Scanner(db, node_cfg(tree)).scan()
    assert paths(db) == {
        "%data%",
        "%data%/a.txt",
        "%data%/sub",
        "%data%/sub/b.txt",
        "%data%/sub/deep",
        "%data%/sub/deep/c.bin",
        "%data%/link",
        "%data%/pipe",
    }
    assert (res.new, res.hashed_files, res.problems) == (8, 3, [])
    recs = {r.path: r for r in db.all_records()}
    assert recs["%data%/link"].kind is Kind.SYMLINK and recs["%data%/link"].target == "a.txt"
    assert recs["%data%/pipe"].kind is Kind.FIFO
    assert recs["%data%/a.txt"].hash == hash_file(str(tree / "a.txt")).digest
    assert recs["%data%/a.txt"].mtime_ns == os.lstat(tree / "a.txt").st_mtime_ns
    assert all(r.vector and r.vector[0][0] == "n1" for r in recs.values())


def test_noop_scan_reads_nothing_and_takes_no_sequence(tree: Path, db: StateDB) -> None:
    later = time.time_ns() + 10 * RECENT_NS  # files are old by then: no recheck marks
    Scanner(db, node_cfg(tree), clock_ns=lambda: later).scan()
    seq = db.last_seq()
    res = Scanner(db, node_cfg(tree), clock_ns=lambda: later).scan()
    assert (res.recorded, res.hashed_files, res.unchanged) == (0, 0, 8)
    assert db.last_seq() == seq


def test_modify_chmod_delete_recreate(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    old = db.get_records(["%data%/a.txt"])["%data%/a.txt"]
    (tree / "a.txt").write_text("ALPHA!")
    os.chmod(tree / "sub" / "b.txt", 0o600)
    (tree / "sub" / "deep" / "c.bin").unlink()
    res = Scanner(db, cfg).scan()
    # metadata: the chmod of b.txt, and the mtime of deep/ (an entry was removed from it)
    assert (res.changed, res.metadata, res.deleted) == (1, 2, 1)
    new = db.get_records(["%data%/a.txt"])["%data%/a.txt"]
    assert compare(new.vector, old.vector) is Order.AFTER
    assert new.base == old.hash and new.hash != old.hash
    assert db.get_records(["%data%/sub/b.txt"])["%data%/sub/b.txt"].mode == 0o600
    tomb = db.get_records(["%data%/sub/deep/c.bin"])["%data%/sub/deep/c.bin"]
    assert tomb.deleted and tomb.hash is None
    (tree / "sub" / "deep" / "c.bin").write_text("back")
    res = Scanner(db, cfg).scan()
    again = db.get_records(["%data%/sub/deep/c.bin"])["%data%/sub/deep/c.bin"]
    assert res.new == 1 and not again.deleted
    assert compare(again.vector, tomb.vector) is Order.AFTER


def test_type_change_file_to_dir(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    (tree / "a.txt").unlink()
    (tree / "a.txt").mkdir()
    (tree / "a.txt" / "inner").write_text("i")
    res = Scanner(db, cfg).scan()
    assert res.type_changed == 1 and res.new == 1
    assert db.get_records(["%data%/a.txt"])["%data%/a.txt"].kind is Kind.DIR


def test_same_size_rewrite_in_the_same_tick_is_caught(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    now = os.stat(tree / "a.txt").st_mtime_ns + 1_000_000  # the scan starts 1 ms after the write
    Scanner(db, cfg, clock_ns=lambda: now).scan()
    rec = db.get_records(["%data%/a.txt"])["%data%/a.txt"]
    assert rec.recheck  # written just now: the next scan must read it even if stat looks the same
    st = os.stat(tree / "a.txt")
    (tree / "a.txt").write_text("ALPHA")  # same size
    os.utime(tree / "a.txt", ns=(st.st_atime_ns, st.st_mtime_ns))  # same mtime
    res = Scanner(db, cfg, clock_ns=lambda: now).scan()
    assert res.changed == 1
    assert db.get_records(["%data%/a.txt"])["%data%/a.txt"].hash == hash_file(str(tree / "a.txt")).digest


def test_recheck_mark_forces_a_read_until_the_file_is_old(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    now = os.stat(tree / "a.txt").st_mtime_ns + 1_000_000
    Scanner(db, cfg, clock_ns=lambda: now).scan()
    res = Scanner(db, cfg, clock_ns=lambda: now + 10 * RECENT_NS).scan()
    assert res.hashed_files == 3 and res.recorded == 0  # re-read, found equal, mark cleared
    assert not any(r.recheck for r in db.all_records())
    res = Scanner(db, cfg, clock_ns=lambda: now + 10 * RECENT_NS).scan()
    assert res.hashed_files == 0


def test_how_recent_a_write_needs_a_second_read_depends_on_the_timestamp_grain(tree: Path, db: StateDB) -> None:
    """Fine timestamps (digits below 10 ms) come from a tick of at most 10 ms: a file written 0.5 s before
    the scan needs no second read (a burst of writes would otherwise be read again at every scan cycle).
    Whole-second timestamps may come from a file system that keeps only seconds: 2 s."""
    cfg = node_cfg(tree)
    base = (time.time_ns() // 1_000_000_000) * 1_000_000_000
    os.utime(tree / "a.txt", ns=(base, base + 123_456_789))  # fine
    os.utime(tree / "sub" / "b.txt", ns=(base, base))  # whole seconds
    os.utime(tree / "sub" / "deep" / "c.bin", ns=(base, base + 450_000_000 + 123))  # fine, and recent
    start = base + 500_000_000
    Scanner(db, cfg, clock_ns=lambda: start).scan()
    marked = {r.path for r in db.all_records() if r.recheck and r.kind is Kind.FILE}
    assert marked == {"%data%/sub/b.txt", "%data%/sub/deep/c.bin"}
    assert start - (base + 123_456_789) > RECENT_FINE_NS and start - base < RECENT_NS


def test_unreadable_file_is_reported_and_kept(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    before = db.get_records(["%data%/a.txt"])["%data%/a.txt"]
    (tree / "a.txt").write_text("changed but unreadable")

    def denied(path: str, previous: object = None) -> Hashed:
        if path.endswith("a.txt"):
            raise PermissionError(13, "Permission denied", path)
        return hash_file(path)

    res = Scanner(db, cfg, hasher=denied).scan()
    assert [(p.path, p.message) for p in res.problems] == [(str(tree / "a.txt"), "cannot read: Permission denied")]
    assert db.get_records(["%data%/a.txt"])["%data%/a.txt"] == before  # neither changed nor deleted
    res = Scanner(db, cfg).scan()
    assert res.changed == 1


def test_file_that_keeps_changing_is_marked_for_recheck(tree: Path, db: StateDB) -> None:
    def restless(path: str, previous: object = None) -> Hashed:
        h = hash_file(path)
        return Hashed(h.digest, h.st, stable=False)

    res = Scanner(db, node_cfg(tree), hasher=restless, clock_ns=lambda: time.time_ns() + 10 * RECENT_NS).scan()
    assert len(res.problems) == 3 and "kept changing" in res.problems[0].message
    assert all(r.recheck for r in db.all_records() if r.kind is Kind.FILE)


def test_missing_root_is_not_a_mass_deletion(tree: Path, db: StateDB, tmp_path: Path) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    tree.rename(tmp_path / "elsewhere")
    res = Scanner(db, cfg).scan()
    assert res.deleted == 0 and "managed root is missing" in res.problems[0].message
    assert paths(db, deleted=True) == set()


def test_symlinked_directories_are_not_followed(tree: Path, db: StateDB, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    os.symlink(outside, tree / "sub" / "jump")
    Scanner(db, node_cfg(tree)).scan()
    assert "%data%/sub/jump" in paths(db)
    assert not any("secret" in p for p in paths(db))
    # a root reached through a symlinked directory is not managed
    os.symlink(tree, tmp_path / "alias")
    db2 = StateDB.open(str(tmp_path / "second.db"))
    try:
        res = Scanner(db2, node_cfg(tmp_path / "alias" / "sub")).scan()
        assert "reached through symlinked directory" in res.problems[0].message
        assert paths(db2) == set()
    finally:
        db2.close()


def test_a_directory_swapped_for_a_symlink_after_it_was_listed_is_not_followed(
    tree: Path, db: StateDB, tmp_path: Path
) -> None:
    """The walk opens each directory it goes into without following a symlink: one replaced by a link
    between its parent's listing and its own (here: put on the stack as a directory, then swapped) is an
    incomplete directory, and nothing behind the link is looked at."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("s")
    scanner = Scanner(db, node_cfg(tree))
    swapped = tree / "sub"
    shutil.rmtree(swapped)
    os.symlink(outside, swapped)
    tally = WalkTally()
    found = [c for batch in scanner.walker.walk([str(swapped)], tally, {}) for c in batch]
    assert found == []
    assert tally.incomplete == [str(swapped)]
    assert "cannot list directory" in tally.problems[0].message


def test_scan_of_given_paths_only(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    (tree / "a.txt").write_text("changed outside the scanned path")
    (tree / "sub" / "b.txt").unlink()
    res = Scanner(db, cfg).scan([str(tree / "sub")])
    assert res.deleted == 1 and res.changed == 0
    res = Scanner(db, cfg).scan([str(tree / "cache"), "/etc/passwd", "rel/ative"])
    assert [p.message for p in res.problems] == ["not managed by any group of this node"] * 2 + [
        "path is not absolute: 'rel/ative'"
    ]


def test_no_longer_managed_is_forgotten_not_deleted(tree: Path, db: StateDB) -> None:
    Scanner(db, node_cfg(tree)).scan()
    res = Scanner(db, node_cfg(tree, "exclude %data%/sub;")).scan()
    assert res.deleted == 0 and res.forgotten == 4
    assert not any(p.startswith("%data%/sub") for p in paths(db)) and paths(db, deleted=True) == set()


def test_long_and_non_utf8_names(tree: Path, db: StateDB) -> None:
    long_name = "é" * 127  # 254 bytes
    (tree / long_name).write_text("long")
    raw = os.fsencode(str(tree)) + b"/bad-\xff-name"
    with open(raw, "wb") as f:
        f.write(b"bytes")
    Scanner(db, node_cfg(tree)).scan()
    assert f"%data%/{long_name}" in paths(db)
    assert "%data%/bad-\udcff-name" in paths(db)


def test_large_files_get_a_chunk_map_that_is_pruned_with_them(tree: Path, db: StateDB) -> None:

    big = tree / "big.bin"
    big.write_bytes(os.urandom(3 << 20))
    Scanner(db, node_cfg(tree)).scan()
    h = db.get_records(["%data%/big.bin"])["%data%/big.bin"].hash
    assert h is not None
    stored = db.chunk_map(h)
    with open(big, "rb") as f:
        assert stored == [(c.digest, c.offset, c.length) for c in delta.chunks_of(f.fileno())]
    assert db.chunk_map(hash_file(str(tree / "a.txt")).digest) is None  # small files need none
    big.unlink()
    Scanner(db, node_cfg(tree)).scan()
    assert db.chunk_map(h) is None


def test_a_changed_large_file_is_chunked_guided_by_its_previous_map(tree: Path, db: StateDB) -> None:
    big = tree / "big.bin"
    data = bytearray(os.urandom(3 << 20))
    big.write_bytes(data)
    given: list[object] = []

    def watching(path: str, previous: list[delta.Chunk] | None = None) -> Hashed:
        if path.endswith("big.bin"):
            given.append(previous)
        return hash_file(path, previous)

    Scanner(db, node_cfg(tree), hasher=watching).scan()
    first = db.get_records(["%data%/big.bin"])["%data%/big.bin"].hash
    assert first is not None and given == [None]  # nothing recorded before
    previous = [delta.Chunk(d, o, n) for d, o, n in db.chunk_map(first) or []]
    data[1 << 20 : (1 << 20) + 5000] = os.urandom(5000)
    big.write_bytes(data)
    Scanner(db, node_cfg(tree), hasher=watching).scan()
    assert given[1] == previous and previous
    now = db.get_records(["%data%/big.bin"])["%data%/big.bin"].hash
    assert now == blake3.blake3(bytes(data)).digest()
    with open(big, "rb") as f:
        assert db.chunk_map(now) == [(c.digest, c.offset, c.length) for c in delta.chunks_of(f.fileno())]


def test_paths_being_applied_are_left_alone_and_reported(tree: Path, db: StateDB) -> None:
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    f = tree / "sub" / "b.txt"
    f.write_text("changed while a peer's version of it was being applied")
    busy = {str(f)}
    res = Scanner(db, cfg, busy=busy.__contains__).scan()
    assert res.busy == [str(f)] and res.recorded == 0
    f.unlink()  # a deletion of a busy path is not recorded either
    res = Scanner(db, cfg, busy=busy.__contains__).scan([str(f.parent)])
    assert res.busy == [str(f)] and res.deleted == 0
    busy.clear()
    res = Scanner(db, cfg, busy=busy.__contains__).scan()
    assert res.deleted == 1 and res.busy == []


def test_a_scan_from_above_a_prefixed_root_names_the_root_by_its_prefix(tmp_path: Path, db: StateDB) -> None:
    # Regression: walking down from '/' (csync2 -cr /) stored the prefix's own directory under its real
    # name, which no peer could map, while its children got '%root%/...'.
    root = tmp_path / "data"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "f").write_text("x")
    text = f"group g {{ host n1 n2; key k; include %root%; }}\nprefix root {{ on n1: {root}; }}\n"
    cfg = resolve(parse_text(text, "/etc/shoal.cfg"), "n1", probe)
    Scanner(db, cfg).scan(["/"])
    assert paths(db) == {"%root%", "%root%/sub", "%root%/sub/f"}


def test_temp_files_of_dead_writers_are_removed_at_once(tmp_path: Path) -> None:
    import subprocess

    from shoal.fs.apply import TMP_PREFIX, temp_name
    from shoal.fs.scan import _remove_stale

    dead = subprocess.Popen(["true"])
    dead.wait()  # its pid names no running process now
    mine = tmp_path / temp_name()
    gone = tmp_path / f"{TMP_PREFIX}{dead.pid}.abcdef"
    legacy = tmp_path / f"{TMP_PREFIX}0123456789ab"  # no pid: only its age counts
    old_legacy = tmp_path / f"{TMP_PREFIX}ba9876543210"
    for p in (mine, gone, legacy, old_legacy):
        p.write_bytes(b"partial")
    os.utime(old_legacy, (1, 1))
    os.utime(tmp_path, ns=(1, 123_456_789))
    _remove_stale([str(p) for p in (mine, gone, legacy, old_legacy)])
    assert os.lstat(tmp_path).st_mtime_ns == 123_456_789  # the directory's recorded mtime does not move
    assert mine.exists() and legacy.exists()
    assert not gone.exists() and not old_legacy.exists()


def _journalled(tree: Path, rel: str, vector: tuple[tuple[str, int], ...]) -> Record:
    """The record an exchange journals for ``rel`` just before renaming it into place."""
    st = os.lstat(tree / rel)
    return Record(
        f"%data%/{rel}", Kind.FILE, st.st_size, st.st_mode & 0o7777, st.st_uid, st.st_gid, "", "", st.st_mtime_ns,
        hash_file(str(tree / rel)).digest, vector=vector, origin="peer-db-1",
    )  # fmt: skip


def test_a_received_file_whose_record_was_never_stored_is_the_peers_version(tree: Path, db: StateDB) -> None:
    """Found by the crash campaign: a receiver killed between renaming a received file into place and
    storing its record took the file for a local edit at restart (a version of its own, concurrent
    with the sender's later changes), and under 'auto younger' a deletion made on the sender then lost
    to it: deleted files came back. The apply journal lets the scan recognise the peer's version."""
    Scanner(db, node_cfg(tree)).scan()
    (tree / "a.txt").write_text("from n2")  # renamed into place by the exchange, then the daemon died
    (tree / "new.txt").write_text("also from n2")
    peer_vector = (("n2", 7),)
    db.journal_put([_journalled(tree, "a.txt", peer_vector), _journalled(tree, "new.txt", peer_vector)], 1)
    (tree / "sub" / "b.txt").write_text("a real local edit")
    db.journal_put([replace(_journalled(tree, "sub/b.txt", peer_vector), hash=b"\0" * 32)], 1)  # content differs
    Scanner(db, node_cfg(tree)).scan(paths=[str(tree)])
    recs = {r.path: r for r in db.all_records()}
    assert recs["%data%/a.txt"].vector == peer_vector and recs["%data%/a.txt"].origin == "peer-db-1"
    assert recs["%data%/new.txt"].vector == peer_vector
    assert any(node == "n1" for node, _ in recs["%data%/sub/b.txt"].vector)  # a local edit stays one
    assert set(db.journal_get(["%data%/a.txt", "%data%/new.txt"])) == set()  # adopted entries are dropped
    assert set(db.journal_get(["%data%/sub/b.txt"])) == {"%data%/sub/b.txt"}
    # the same for a received deletion: the file went, the daemon died before storing the tombstone
    (tree / "new.txt").unlink()
    gone = replace(recs["%data%/new.txt"], deleted=True, hash=None, vector=(("n2", 9),), origin="peer-db-1")
    db.journal_put([gone], 1)
    Scanner(db, node_cfg(tree)).scan(paths=[str(tree)])
    tomb = {r.path: r for r in db.all_records()}["%data%/new.txt"]
    assert tomb.deleted and tomb.vector == (("n2", 9),) and tomb.origin == "peer-db-1"
    (tree / "a.txt").unlink()  # a local deletion is still one
    Scanner(db, node_cfg(tree)).scan(paths=[str(tree)])
    assert any(node == "n1" for node, _ in {r.path: r for r in db.all_records()}["%data%/a.txt"].vector)
    Scanner(db, node_cfg(tree)).scan()  # a full scan drops what it did not adopt
    assert not db.journal_any()


def test_a_targeted_scan_also_records_the_parent_directorys_new_mtime(tree: Path, db: StateDB) -> None:
    """Live mode scans only the paths inotify named; a new file changes its directory's mtime too,
    which must travel (the crash campaign saw directory mtimes left behind until a full scan)."""
    later = time.time_ns() + 10 * RECENT_NS
    Scanner(db, node_cfg(tree), clock_ns=lambda: later).scan()
    (tree / "sub" / "new.txt").write_text("new")
    os.utime(tree / "sub", ns=(later, later - 5))
    Scanner(db, node_cfg(tree), clock_ns=lambda: later).scan(paths=[str(tree / "sub" / "new.txt")])
    recs = {r.path: r for r in db.all_records()}
    assert recs["%data%/sub"].mtime_ns == later - 5
    assert "%data%/sub/new.txt" in recs
    assert recs["%data%/sub/deep"].mtime_ns != later - 5  # the parent alone, not its other children


def test_a_listing_that_fails_midway_leaves_that_directory_incomplete(
    tree: Path, db: StateDB, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading a directory can fail after it opened (seen in the partition campaign: ENOTDIR while a
    peer's batch worked in it). That directory is incomplete: a problem, no deletions below it, and the
    scan goes on (it used to raise, which ended live mode in the daemon for good)."""
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    (tree / "a.txt").write_text("changed meanwhile")
    real_scandir = os.scandir
    target = (tree / "sub").stat().st_ino

    class Failing:
        def __init__(self, it: Iterator[os.DirEntry[str]]) -> None:
            self.it = it

        def __enter__(self) -> Failing:
            return self

        def __exit__(self, *exc: object) -> None:
            self.it.close()  # type: ignore[attr-defined]

        def __iter__(self) -> Iterator[os.DirEntry[str]]:
            yield next(iter(self.it))
            raise NotADirectoryError(20, "Not a directory")

    def scandir(fd: int) -> object:  # the walk lists a directory by descriptor
        it = real_scandir(fd)
        return Failing(it) if os.fstat(fd).st_ino == target else it

    monkeypatch.setattr(os, "scandir", scandir)
    res = Scanner(db, cfg).scan()
    unread = (str(tree / "sub"), "cannot list directory: Not a directory")
    assert [(p.path, p.message) for p in res.problems] == [unread]
    assert res.incomplete == [str(tree / "sub")]
    assert res.changed == 1 and "%data%/a.txt" in res.changed_paths  # the rest of the tree was scanned
    assert paths(db, deleted=True) == set()  # nothing below the unread directory became a tombstone
    monkeypatch.setattr(os, "scandir", real_scandir)
    assert Scanner(db, cfg).scan().problems == []


def test_a_directory_alone_and_a_busy_directory(tree: Path, db: StateDB) -> None:
    """A directory a peer's batch holds (busy) is left for later as the directory alone; looking at a
    directory alone records its own change and nothing below it."""
    cfg = node_cfg(tree)
    Scanner(db, cfg).scan()
    sub = str(tree / "sub")
    os.chmod(sub, 0o700)
    (tree / "sub" / "b.txt").write_text("changed below")
    res = Scanner(db, cfg, busy=lambda p: p == sub).scan([sub])
    assert res.busy_dirs == [sub] and res.busy == []
    assert res.changed_paths == ["%data%/sub/b.txt"]  # the file below was not held back
    assert db.get_records(["%data%/sub"])["%data%/sub"].mode == 0o755
    (tree / "sub" / "deep" / "c.bin").write_bytes(b"also changed below")
    res = Scanner(db, cfg).scan([], alone=[sub])
    assert res.changed_paths == ["%data%/sub"] and res.metadata == 1
    assert db.get_records(["%data%/sub"])["%data%/sub"].mode == 0o700
    assert Scanner(db, cfg).scan().changed_paths == ["%data%/sub/deep/c.bin"]  # left to a scan of it
