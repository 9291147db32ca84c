"""The state database: migrations, refusing newer schemas, batch verbs, read-only access."""

from __future__ import annotations

import os
import sqlite3
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from shoal.errors import StateError
from shoal.model.records import Kind, Record
from shoal.state.db import StateDB, latest_schema_version


def rec(path: str, **kw: object) -> Record:
    base: dict[str, object] = {
        "kind": Kind.FILE,
        "size_bytes": 3,
        "mode": 0o644,
        "mtime_ns": 1,
        "hash": b"h" * 32,
        "vector": (("n1", 5),),
    }
    base.update(kw)
    return Record(path=path, **base)  # type: ignore[arg-type]


def test_fresh_database_is_wal_strict_and_private(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    with StateDB.open(path):
        pass
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == latest_schema_version()
        with pytest.raises(sqlite3.IntegrityError):  # STRICT: a text size is refused
            conn.execute(
                "INSERT INTO records VALUES (x'00', 0, 'big', 0, 0, 0, NULL, NULL, 0, NULL, NULL, 0, "
                "x'90', NULL, 0, 1, 0, 0, 0, 1, NULL)"
            )
    finally:
        conn.close()


def test_newer_schema_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = str(tmp_path / "state.db")
    with StateDB.open(path):
        pass
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    before = Path(path).read_bytes()
    with pytest.raises(StateError, match="schema version 999, newer than this shoal understands"):
        StateDB.open(path)
    with pytest.raises(StateError, match="newer"):
        StateDB.open(path, readonly=True)
    assert Path(path).read_bytes() == before


def test_garbage_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StateError, match="unusable"):
        StateDB.open(str(path))


def test_apply_scan_assigns_sequences_and_round_trips(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        weird = "/srv/ünï \udcff\n name"
        r1 = rec("/srv/a", vector=(("n1", 5), ("n2", 7)), user="root", group="wheel", base=b"b" * 32)
        r2 = rec(weird, kind=Kind.SYMLINK, hash=None, target="../t\udcfe", size_bytes=0)
        assert db.apply_scan([r1, r2]) == 2
        got = db.get_records(["/srv/a", weird, "/missing"])
        assert got["/srv/a"] == replace(r1, seq=1)
        assert got["/srv/a"].vector == (("n1", 5), ("n2", 7))
        assert (got["/srv/a"].user, got["/srv/a"].group, got["/srv/a"].base) == ("root", "wheel", b"b" * 32)
        assert got[weird].target == "../t\udcfe" and got[weird].kind is Kind.SYMLINK
        assert "/missing" not in got
        assert [r.seq for r in db.records_since(0)] == [1, 2]
        db.apply_scan([rec("/srv/a", size_bytes=9)])
        assert [(r.path, r.seq) for r in db.records_since(1)] == [(weird, 2), ("/srv/a", 3)]
        assert db.last_seq() == 3


def test_refresh_does_not_take_a_sequence_and_forget_drops(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        db.apply_scan([rec("/a"), rec("/b")])
        db.apply_scan([], refreshes=[rec("/a", ctime_ns=77, inode=5, recheck=True)], forget=["/b"])
        assert db.last_seq() == 2
        (a,) = db.all_records()
        assert (a.ctime_ns, a.inode, a.recheck, a.seq) == (77, 5, True, 1)
        assert db.scan_index() == {b"/a": 0}  # recheck: the signature says "read again"


def test_counts_and_tombstones(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        db.apply_scan([rec("/a"), rec("/b", deleted=True, hash=None)])
        assert db.count_records() == (1, 1)
        assert [r.path for r in db.all_records(include_deleted=False)] == ["/a"]


def test_readonly_reader_sees_writes_and_cannot_write(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with StateDB.open(path) as writer, StateDB.open(path, readonly=True) as reader:
        writer.apply_scan([rec("/a")])
        assert [r.path for r in reader.all_records()] == ["/a"]
        with pytest.raises(StateError, match="read-only"):
            reader.apply_scan([rec("/b")])
    with pytest.raises(StateError, match="run 'shoal check' first"):
        StateDB.open(str(tmp_path / "none.db"), readonly=True)


def test_watermarks(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        assert db.watermarks("b") == (0, 0)
        db.set_watermarks("b", 10, 4)
        db.set_watermarks("b", 12, 4)
        assert db.watermarks("b") == (12, 4)


def test_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        db.apply_scan([rec("/a")])
        bad = rec("/b", vector=(("new-node", 1),), kind=99)  # an invalid kind makes the batch fail
        with pytest.raises((StateError, ValueError, sqlite3.Error)):
            db.apply_scan([rec("/c", vector=(("other", 2),)), bad])
        assert [r.path for r in db.all_records()] == ["/a"]
        assert db.last_seq() == 1
        db.apply_scan([rec("/d", vector=(("third", 3),))])  # node-id cache was rebuilt
        assert db.get_records(["/d"])["/d"].vector == (("third", 3),)
        # The same vector as in the failed batch: its encoding then named an id now given to "third".
        db.apply_scan([rec("/e", vector=(("other", 2),))])
        assert db.get_records(["/e"])["/e"].vector == (("other", 2),)


def test_every_field_round_trips(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "s.db")) as db:
        full = Record(
            path="/srv/dev",
            kind=Kind.CHR,
            size_bytes=11,
            mode=0o640,
            uid=12,
            gid=13,
            user="u",
            group="g",
            mtime_ns=14,
            hash=b"h" * 32,
            target="/t",
            rdev=15,
            vector=(("a", 16), ("b", 17)),
            base=b"b" * 32,
            deleted=True,
            ctime_ns=18,
            inode=19,
            recheck=True,
            origin="db-id-20",
        )
        db.apply_scan([full])
        assert db.get_records(["/srv/dev"])["/srv/dev"] == replace(full, seq=1)
        db.journal_put([full], 21)
        assert db.journal_get(["/srv/dev"])["/srv/dev"] == full


def test_seq_seen_follows_reads_and_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    with StateDB.open(path) as db, StateDB.open(path) as other:
        assert db.seq_seen == 0
        db.apply_scan([rec("/a"), rec("/b")])
        assert db.seq_seen == 2
        other.apply_scan([rec("/c")])
        assert db.seq_seen == 2  # another connection's write shows at the next read
        assert db.last_seq() == 3 and db.seq_seen == 3


def test_scan_index_under_takes_a_subtree_and_nothing_beside_it(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "state.db")) as db:
        paths = ["%d%", "%d%/a", "%d%/a/x", "%d%/a/y/z", "%d%/ab", "%d%/a-b", "%d%/b", "%e%/a", "/abs/a"]
        db.apply_scan([rec(p) for p in paths])
        got = {k.decode() for k in db.scan_index_under(["%d%/a"])}
        assert got == {"%d%/a", "%d%/a/x", "%d%/a/y/z"}
        assert {k.decode() for k in db.scan_index_under(["%d%/"])} == {p for p in paths if p.startswith("%d%")}
        assert {k.decode() for k in db.scan_index_under(["/abs", "%e%/a"])} == {"/abs/a", "%e%/a"}
        assert db.scan_index_under(["%d%/nothing"]) == {}


def test_names_another_connection_added_are_seen_not_inserted_twice(tmp_path: Path) -> None:
    # Regression: a daemon's long-open connection cached the node names; a one-shot command beside it
    # added a peer, and the daemon's next write for that peer failed on the UNIQUE name.
    path = str(tmp_path / "state.db")
    with StateDB.open(path) as daemon, StateDB.open(path) as oneshot:
        assert daemon.watermarks("peer") == (0, 0)
        oneshot.set_watermarks("peer", 7, 3)
        assert daemon.watermarks("peer") == (7, 3)
        daemon.set_pin("peer", "ab" * 32, 1)
        assert oneshot.pin("peer") == "ab" * 32


def _fresh_index(path: str) -> dict[bytes, int]:
    with StateDB.open(path, readonly=True) as other:
        return other.scan_index()


def test_the_kept_scan_index_follows_every_write_here_and_there(tmp_path: Path) -> None:
    """The scan index a connection keeps must always equal the table: after its own changes, refreshes
    and forgets, after another connection's commits, after a failed write, and whatever its caller
    does with the copy it got."""
    path = str(tmp_path / "state.db")
    with StateDB.open(path) as db, StateDB.open(path) as other:
        db.apply_scan([rec("/a"), rec("/b"), rec("/c", recheck=True)])
        first = db.scan_index()
        assert first == _fresh_index(path) and len(first) == 3
        first.clear()  # the caller's copy: the next scan still gets everything
        assert db.scan_index() == _fresh_index(path)
        db.apply_scan(
            [rec("/a", size_bytes=9), rec("/d")],
            refreshes=[rec("/b", inode=77), rec("/never-recorded", inode=1)],
            forget=["/c"],
        )
        assert db.scan_index() == _fresh_index(path)
        assert b"/never-recorded" not in db.scan_index()
        other.apply_scan([rec("/b", mtime_ns=5), rec("/e")], forget=["/d"])  # another connection
        assert db.scan_index() == _fresh_index(path)
        with pytest.raises(sqlite3.IntegrityError):  # refused by the table: nothing changes
            db.apply_scan([rec("/a", size_bytes=1234), rec("/bad", kind=9)])
        assert db.scan_index() == _fresh_index(path)
        assert db.scan_index()[b"/a"] == rec("/a", size_bytes=9).signature()
