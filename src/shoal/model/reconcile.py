"""Reconcile: what to do with a record a peer sent, given ours. A pure function with a table test.

Theory of operation (design.md section 2, step 3). Version vectors order the two records:
- the peer's is older or equal: ignore it (the peer is behind and will take ours);
- the peer's is newer: fast-forward (fetch its content and apply it, after re-checking that the disk
  still holds what our record says);
- concurrent, same payload: no conflict; merge the vectors, and both sides take the same metadata
  (the greater of the two by a fixed order), so they converge;
- concurrent, but the peer's version was made on top of our content (its base is our hash): fast-forward;
  ours made on top of theirs: ignore (the peer will take ours);
- concurrent otherwise: a conflict. Policies that settle conflicts come with the conflict issue; until
  then both versions stay where they are and the conflict is reported.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from shoal.model.records import Order, Record, compare, merge


class Action(enum.Enum):
    IGNORE = "ignore"
    APPLY = "apply"  #: make the disk and our record match the peer's record
    MERGE = "merge"  #: same payload: store the merged vector (and the peer's metadata if ``take_metadata``)
    CONFLICT = "conflict"


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    take_metadata: bool = False


def _metadata_key(r: Record) -> tuple[int, int, int, int, str, str]:
    return (r.mtime_ns, r.mode, r.uid, r.gid, r.user, r.group)


def reconcile(local: Record | None, remote: Record) -> Decision:
    if local is None:
        if remote.deleted:
            return Decision(Action.MERGE, "deletion of a path we never had: keep the tombstone")
        return Decision(Action.APPLY, "new path")
    order = compare(remote.vector, local.vector)
    if order in (Order.BEFORE, Order.EQUAL):
        return Decision(Action.IGNORE, "we are up to date" if order is Order.EQUAL else "the peer is behind")
    if order is Order.AFTER:
        return Decision(Action.APPLY, "the peer's version is newer")
    if remote.same_content(local):
        take = not remote.deleted and _metadata_key(remote) > _metadata_key(local)
        return Decision(Action.MERGE, "concurrent but identical", take_metadata=take)
    if remote.base is not None and not local.deleted and remote.base == local.hash:
        return Decision(Action.APPLY, "the peer's version was made on top of ours")
    if local.base is not None and not remote.deleted and local.base == remote.hash:
        return Decision(Action.IGNORE, "our version was made on top of the peer's")
    return Decision(Action.CONFLICT, "both sides changed it")


def merged_vector(local: Record | None, remote: Record) -> tuple[tuple[str, int], ...]:
    return remote.vector if local is None else merge(local.vector, remote.vector)
