"""The scanner and stripped setuid/setgid bits: a received version the apply journalled, renamed into
place without those bits (its group does not ``allow setuid``) and never recorded because the daemon
died, is the peer's version, not a local change that would travel back and strip them at the origin."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from shoal.fs.scan import Scanner
from shoal.state.db import StateDB
from tests.unit.test_scan import _journalled, db, node_cfg, tree

__all__ = ["db", "tree"]  # fixtures


@pytest.mark.parametrize(("extra", "adopted"), [("", True), ("allow setuid;", False)])
def test_a_journalled_version_stripped_of_setuid_is_the_peers(
    tree: Path, db: StateDB, extra: str, adopted: bool
) -> None:
    cfg = node_cfg(tree, extra)
    Scanner(db, cfg).scan()
    (tree / "su").write_text("#!/bin/sh\n")
    os.chmod(tree / "su", 0o755)  # what the apply left: the peer's 0o4755 without setuid
    peer_vector = (("n2", 7),)
    db.journal_put([replace(_journalled(tree, "su", peer_vector), mode=0o4755)], 1)
    Scanner(db, cfg).scan(paths=[str(tree)])
    rec = {r.path: r for r in db.all_records()}["%data%/su"]
    if adopted:
        assert rec.vector == peer_vector and rec.origin == "peer-db-1" and rec.mode == 0o755
    else:  # where setuid is allowed the apply keeps it: a file without it was changed here
        assert any(node == "n1" for node, _ in rec.vector)
