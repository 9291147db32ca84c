"""shoal-csync2's state: where it lives, and csync2's per-(file, peer) view over shoal's records."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.compat import dirty
from shoal.compat.layout import LayoutError, layout
from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, NodeConfig, resolve
from shoal.engine.wire import record_bytes
from shoal.errors import StateError
from shoal.model.records import Kind, Order, Record, compare
from shoal.state.db import StateDB

ENV = {"CSYNC2_SYSTEM_DIR": "/cfg", "SHOAL_STATE_DIR": "/st"}


@pytest.mark.parametrize(
    ("name", "database", "cfg_db", "expect"),
    [
        (None, None, None, ("/cfg/csync2.cfg", "/st/state.db", "/st")),
        ("web", None, None, ("/cfg/csync2_web.cfg", "/st/n1_web.db3", "/st/n1_web.d")),
        (None, "/db", None, ("/cfg/csync2.cfg", "/db/n1.db3", "/db/n1.d")),
        ("web", "/db", None, ("/cfg/csync2_web.cfg", "/db/n1_web.db3", "/db/n1_web.d")),
        (None, "sqlite3:///db", None, ("/cfg/csync2.cfg", "/db/n1.db3", "/db/n1.d")),
        (None, "sqlite:///db/x.db3", None, ("/cfg/csync2.cfg", "/db/x.db3", "/db/x.d")),
        (None, None, "/var/db", ("/cfg/csync2.cfg", "/var/db/n1.db3", "/var/db/n1.d")),
        (None, "/db", "/var/db", ("/cfg/csync2.cfg", "/db/n1.db3", "/db/n1.d")),  # -D wins
    ],
)
def test_layout(name: str | None, database: str | None, cfg_db: str | None, expect: tuple[str, str, str]) -> None:
    lay = layout(ENV, "n1", name, database, cfg_db)
    assert (lay.config_file, lay.db_file, lay.state_dir) == expect
    assert lay.lock_file == "/cfg/csync2.lock"


def test_layout_refuses_database_servers() -> None:
    with pytest.raises(LayoutError, match="SQLite"):
        layout(ENV, "n1", None, "mysql://root@db/csync2", None)


def test_a_csync2_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "n1.db3"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE file (filename, checktxt)")
    conn.execute("CREATE TABLE dirty (filename, forced, myname, peername)")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match=r"not a shoal state database .*tables dirty, file"):
        StateDB.open(str(path))
    conn = sqlite3.connect(path)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    journal = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    assert tables == {"file", "dirty"} and journal == "delete"


def cfg_for(text: str, node: str = "n1") -> NodeConfig:
    return resolve(parse_text(text, "/etc/csync2.cfg"), node, lambda p: KeyFacts(p, None, 0o600, "A" * 64))


CFG = "group g { host n1 n2 n3; key k; include /srv; }\ngroup h { host n1 n3; key k; include /etc/app; }\n"


@pytest.fixture
def db(tmp_path: Path) -> Iterator[StateDB]:
    with StateDB.open(str(tmp_path / "state.db")) as d:
        yield d


def f(path: str, node: str = "n1", counter: int = 1, **kw: object) -> Record:
    return Record(path, Kind.FILE, 1, 0o644, hash=b"h" * 32, vector=((node, counter),), **kw)  # type: ignore[arg-type]


def test_dirty_rows_per_peer_only_for_shared_groups_and_local_versions(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    db.apply_scan([f("/srv/a"), f("/etc/app/x"), f("/srv/taken", "n2", origin="peerdb")])
    rows = sorted(dirty.dirty_rows(db, cfg))
    assert rows == [
        (False, "n2", "/srv/a"),
        (False, "n3", "/etc/app/x"),
        (False, "n3", "/srv/a"),
    ]
    db.set_watermarks("n3", db.last_seq(), 0)  # n3 acknowledged everything
    assert sorted(dirty.dirty_rows(db, cfg)) == [(False, "n2", "/srv/a")]
    assert dirty.dirty_rows(db, cfg, peers=["n3"]) == []


def test_forced_marks_show_and_cover_subtrees(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    db.apply_scan([f("/srv/a/b"), f("/srv/c")])
    db.add_marks("forced", [("/srv/a", True)])
    rows = {(p, path): forced for forced, p, path in dirty.dirty_rows(db, cfg)}
    assert rows[("n2", "/srv/a/b")] is True and rows[("n2", "/srv/c")] is False


def test_unsettled_row_keeps_a_path_dirty_until_the_record_changes(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    seq = db.apply_scan([f("/srv/a")])
    for peer in ("n2", "n3"):
        db.set_watermarks(peer, seq, 0)
    db.set_unsettled("n2", [("/srv/a", seq)])
    assert dirty.dirty_rows(db, cfg) == [(False, "n2", "/srv/a")]
    db.apply_scan([f("/srv/a", counter=2)])  # a newer version of ours retires the refusal
    assert db.unsettled() == []


def test_init_acknowledges_only_what_the_check_recorded(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    db.apply_scan([f("/srv/old")])
    db.set_watermarks("n3", db.last_seq(), 0)
    before = db.last_seq()
    db.apply_scan([f("/srv/new")])
    assert dirty.acknowledge_new(db, cfg, before) == 1  # n3 only: n2 still owes /srv/old
    assert sorted(dirty.dirty_rows(db, cfg)) == [(False, "n2", "/srv/new"), (False, "n2", "/srv/old")]


def test_new_versions_include_what_peers_and_conflicts_hold(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    db.apply_scan([f("/srv/a", "n1", 5)])
    theirs_conflict = f("/srv/a", "n3", 9)
    db.record_conflict("/srv/a", "n3", record_bytes(theirs_conflict, 4), 1)
    ours = db.get_records(["/srv/a"])["/srv/a"]
    assert dirty.new_versions(db, cfg, [ours], {"/srv/a": [(("n2", 7),)]}) == 1
    new = db.get_records(["/srv/a"])["/srv/a"]
    for other in (ours.vector, (("n2", 7),), theirs_conflict.vector):
        assert compare(new.vector, other) is Order.AFTER
    assert new.origin is None and new.seq > ours.seq
    assert db.conflicts() == []


def test_tombstones_outrank_the_peers_version(db: StateDB) -> None:
    cfg = cfg_for(CFG)
    theirs = f("/srv/only-there", "n2", 8)
    assert dirty.tombstones(db, cfg, [theirs]) == 1
    tomb = db.get_records(["/srv/only-there"])["/srv/only-there"]
    assert tomb.deleted and compare(tomb.vector, theirs.vector) is Order.AFTER


def test_unmanaged_lists_records_no_group_manages(db: StateDB) -> None:
    db.apply_scan([f("/srv/a"), f("/old/place/x")])
    assert dirty.unmanaged(db, cfg_for(CFG)) == ["/old/place/x"]


def test_hint_marks_stay_recursive_once_recursive(db: StateDB) -> None:
    db.add_marks("hints", [("/srv/a", True)])
    db.add_marks("hints", [("/srv/a", False), ("/srv/b", False)])
    assert db.marks("hints") == [("/srv/a", True), ("/srv/b", False)]
    db.drop_marks("hints", ["/srv/a"])
    assert db.marks("hints") == [("/srv/b", False)]


def test_pending_view_dates_the_oldest_change_a_peer_lacks(db: StateDB) -> None:
    from shoal.engine.pending import pending_view

    cfg = cfg_for(CFG)
    db.apply_scan([f("/srv/old", "n1", 1_000), f("/srv/new", "n1", 2_000)])
    db.set_watermarks("n3", db.last_seq(), 0)
    view = pending_view(db, cfg)
    assert view.oldest_s == {"n2": 1_000, "n3": None}
    assert view.lag_seconds("n2", 1_500) == 500 and view.lag_seconds("n3", 1_500) == 0
