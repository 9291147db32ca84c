"""reconcile(local, remote): the decision table of issue 3 (the full policy table comes with conflicts)."""

from __future__ import annotations

import pytest

from shoal.model.reconcile import Action, merged_vector, reconcile
from shoal.model.records import Kind, Record

H1, H2, H3 = b"1" * 32, b"2" * 32, b"3" * 32


def rec(
    vector: dict[str, int],
    *,
    h: bytes | None = H1,
    deleted: bool = False,
    base: bytes | None = None,
    kind: Kind = Kind.FILE,
    mtime: int = 10,
    mode: int = 0o644,
) -> Record:
    return Record(
        "%d%/f",
        kind,
        1,
        mode=mode,
        mtime_ns=mtime,
        hash=None if deleted else h,
        deleted=deleted,
        base=base,
        vector=tuple(sorted(vector.items())),
    )


CASES = [
    ("new path", None, rec({"b": 1}), Action.APPLY),
    ("deletion of a path we never had", None, rec({"b": 2}, deleted=True), Action.MERGE),
    ("equal vectors", rec({"a": 1}), rec({"a": 1}), Action.IGNORE),
    ("peer behind", rec({"a": 2}), rec({"a": 1}), Action.IGNORE),
    ("peer newer", rec({"a": 1}), rec({"a": 1, "b": 1}, h=H2), Action.APPLY),
    ("peer newer deletion", rec({"a": 1}), rec({"a": 1, "b": 1}, deleted=True), Action.APPLY),
    ("peer newer type change", rec({"a": 1}), rec({"a": 1, "b": 1}, kind=Kind.DIR, h=None), Action.APPLY),
    ("concurrent identical", rec({"a": 2}), rec({"a": 1, "b": 1}), Action.MERGE),
    ("concurrent both deleted", rec({"a": 2}, deleted=True), rec({"b": 1}, deleted=True), Action.MERGE),
    ("concurrent, peer built on ours", rec({"a": 2}, h=H1), rec({"b": 1}, h=H2, base=H1), Action.APPLY),
    ("concurrent, ours built on peer's", rec({"a": 2}, h=H1, base=H2), rec({"b": 1}, h=H2), Action.IGNORE),
    ("concurrent different content", rec({"a": 2}, h=H1), rec({"b": 1}, h=H2), Action.CONFLICT),
    ("concurrent modify vs delete", rec({"a": 2}, h=H1), rec({"b": 1}, deleted=True, base=H3), Action.CONFLICT),
    ("concurrent delete vs modify", rec({"a": 2}, deleted=True, base=H1), rec({"b": 1}, h=H2), Action.CONFLICT),
    ("concurrent file vs dir", rec({"a": 2}), rec({"b": 1}, kind=Kind.DIR, h=None), Action.CONFLICT),
]


@pytest.mark.parametrize(("name", "local", "remote", "action"), CASES, ids=[c[0] for c in CASES])
def test_decision(name: str, local: Record | None, remote: Record, action: Action) -> None:
    assert reconcile(local, remote).action is action


def test_identical_concurrent_versions_agree_on_metadata_from_both_sides() -> None:
    a = rec({"a": 2}, mtime=20, mode=0o600)
    b = rec({"b": 1}, mtime=10, mode=0o644)
    # a's metadata is the greater: the node holding b takes it, the node holding a keeps its own
    assert reconcile(b, a).take_metadata is True
    assert reconcile(a, b).take_metadata is False


def test_one_vector_with_two_metadata_settles_on_the_greater() -> None:
    """Found by the crash campaign: two nodes merged the same concurrent directory versions, each kept
    its own mtime, and reached one vector with two mtimes; equal vectors were ignored, so it never
    converged."""
    mine = rec({"a": 2, "b": 1}, kind=Kind.DIR, h=None, mtime=20)
    theirs = rec({"a": 2, "b": 1}, kind=Kind.DIR, h=None, mtime=30)
    taken = reconcile(mine, theirs)
    assert taken.action is Action.MERGE and taken.take_metadata is True
    assert reconcile(theirs, mine).action is Action.IGNORE


def test_merged_vector_dominates_both() -> None:
    assert merged_vector(rec({"a": 2, "b": 1}), rec({"b": 3})) == (("a", 2), ("b", 3))
    assert merged_vector(None, rec({"b": 3})) == (("b", 3),)
