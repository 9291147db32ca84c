"""engine/resolution: an admin's choice turned into state (database only, no peers)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from shoal.engine.resolution import ResolveError, keep_peer
from shoal.engine.wire import record_bytes, record_from_bytes
from shoal.model.records import Kind, Record
from shoal.state.db import StateDB

THEIRS = Record("%d%/f", Kind.FILE, 3, 0o644, hash=b"t" * 32, vector=(("b", 7),))


def test_the_stored_conflict_keeps_the_peers_sequence_number() -> None:
    assert record_from_bytes(record_bytes(THEIRS, 120)) == replace(THEIRS, seq=120)


def test_keep_peer_rereads_from_just_before_the_peers_version(tmp_path: Path) -> None:
    with StateDB.open(str(tmp_path / "state.db")) as db:
        db.set_watermarks("b", 4, 500)
        db.record_conflict("%d%/f", "b", record_bytes(THEIRS, 120), 1)
        keep_peer(db, "%d%/f", "b")
        assert db.watermarks("b") == (4, 119)
        assert db.conflicts_on(["%d%/f"])["%d%/f"]["b"][1] == "remote"
        with pytest.raises(ResolveError, match="no open conflict with c on %d%/f"):
            keep_peer(db, "%d%/f", "c")
