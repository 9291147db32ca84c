"""Reconcile and resolve: what to do with a record a peer sent, given ours. Pure functions, table-tested.

Theory of operation (design.md section 2, steps 3 and 4).

Reconcile orders the two records by their version vectors:
- the peer's is older: ignore it (the peer is behind and will take ours);
- the peer's is newer: fast-forward (fetch its content and apply it, after re-checking that the disk
  still holds what our record says); if only metadata differs, just take the metadata;
- concurrent (or equal vectors with different payloads, which a session-bound ``first`` decision made
  in two places can produce), same payload: no conflict; merge the vectors, and both sides take the
  same metadata (the greater of the two by a fixed order), so they converge;
- concurrent, but the peer's version was made on top of our content (its base is our hash):
  fast-forward; ours made on top of theirs: ignore (the peer will take ours);
- concurrent otherwise: a conflict, settled by resolve.

Resolve applies the group's ``auto`` policy to a conflict. Both ends of a session must reach the same
verdict from the same two records, so every policy is a function of the pair (and, for ``first``, of
which node started the session, which both ends know). Ties fall through to a fixed total order on
the records themselves. The winner is stored with the merged vector on both sides, so the pair
converges in that one session. The loser's side keeps its old content as a backup (``backup``).

- ``none``: nothing changes; the conflict stays open until ``shoal resolve``.
- ``first``: the node that started the session wins (csync2: whoever runs the update first).
- ``younger``/``older``: greater/smaller mtime; ``bigger``/``smaller``: greater/smaller size; under
  these four a deletion always loses to a live version (a deleted file has no age or size).
- ``left``/``right``: the version carrying a change by the host listed first/last in the group. The
  nodes a version carries changes from are those whose vector entry exceeds the other version's.
- An admin's ``resolve --keep`` for the path overrides the policy (``force``).

Slave hosts (``(host)`` in the config) are receive-only: a master never takes a slave's record, and a
slave with local changes adopts the master's version (keeping its own as a backup) unless that master
is behind the master versions the slave already holds.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal

from shoal.model.records import Order, Record, Vector, compare, merge

Policy = Literal["none", "first", "younger", "older", "bigger", "smaller", "left", "right"]
Side = Literal["local", "remote"]


class Action(enum.Enum):
    IGNORE = "ignore"
    APPLY = "apply"  #: make the disk and our record match the peer's record
    MERGE = "merge"  #: keep our payload; store ``vector`` (and the peer's metadata if ``take_metadata``)
    CONFLICT = "conflict"  #: an open conflict: nothing changes


@dataclass(frozen=True, slots=True)
class Context:
    """What resolve needs to know besides the two records."""

    me: str = "a"
    peer: str = "b"
    policy: Policy = "none"
    hosts: tuple[str, ...] = ()  #: the group's hosts in config order (``left``/``right``)
    slaves: frozenset[str] = field(default_factory=frozenset)
    me_started: bool = False  #: this node started the session (``first``)
    force: Side | None = None  #: an admin's decision for this path (``shoal resolve --keep``)
    open_conflict: bool = False  #: we hold an open conflict on this path


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    take_metadata: bool = False
    backup: bool = False  #: our current version is being replaced by a decision: keep a copy first
    vector: Vector | None = None  #: the vector to store; None = the merge of both
    conflict: bool = False  #: the two versions were concurrent edits (resolved or not)
    winner: Side | None = None
    bump: bool = False  #: store the result as a new version of ours (an admin's decision must win everywhere)


def _metadata_key(r: Record) -> tuple[int, int, int, int, str, str]:
    return (r.mtime_ns, r.mode, r.uid, r.gid, r.user, r.group)


def _total_key(r: Record) -> tuple[object, ...]:
    """A fixed total order on two different concurrent records, the same on every node."""
    return (
        not r.deleted,
        int(r.kind),
        r.size_bytes,
        r.mtime_ns,
        r.hash or b"",
        r.target or "",
        r.rdev,
        _metadata_key(r),
        r.vector,
    )


def _without(v: Vector, node: str) -> Vector:
    return tuple(e for e in v if e[0] != node)


def _own_changes(local: Record, remote: Record, node: str) -> bool:
    """Our record holds a change by ``node`` that the peer's does not."""
    return dict(local.vector).get(node, 0) > dict(remote.vector).get(node, 0)


def reconcile(local: Record | None, remote: Record, ctx: Context | None = None) -> Decision:
    """The full decision for one incoming record: ordering, then the policy for conflicts."""
    ctx = ctx or Context()
    if ctx.peer in ctx.slaves and ctx.me not in ctx.slaves:
        return Decision(Action.IGNORE, "the peer is a slave: its changes are never taken")
    if local is None:
        if remote.deleted:
            return Decision(Action.MERGE, "deletion of a path we never had: keep the tombstone")
        return Decision(Action.APPLY, "new path")
    if ctx.me in ctx.slaves and _own_changes(local, remote, ctx.me):
        return _slave_adopts(local, remote, ctx)
    order = compare(remote.vector, local.vector)
    same = remote.same_content(local)
    if order is Order.EQUAL and same and not remote.deleted and _metadata_key(remote) > _metadata_key(local):
        # Two merges of the same concurrent versions, made on different nodes, can reach one vector with
        # different metadata (each kept its own); the same rule as for a merge settles it everywhere.
        return Decision(Action.MERGE, "the same version, with the greater metadata", take_metadata=True)
    if order is Order.BEFORE or (order is Order.EQUAL and same):
        return Decision(Action.IGNORE, "we are up to date" if order is Order.EQUAL else "the peer is behind")
    if order is Order.AFTER:
        if same:
            return Decision(
                Action.MERGE,
                "the peer's version is newer, with the same content",
                take_metadata=not remote.deleted and not remote.same_metadata(local),
            )
        if ctx.open_conflict:
            return Decision(Action.APPLY, "a newer version settles our open conflict", backup=True)
        return Decision(Action.APPLY, "the peer's version is newer")
    if same:
        take = not remote.deleted and _metadata_key(remote) > _metadata_key(local)
        return Decision(Action.MERGE, "concurrent but identical", take_metadata=take)
    if order is Order.CONCURRENT:
        if remote.base is not None and not local.deleted and remote.base == local.hash:
            return Decision(Action.APPLY, "the peer's version was made on top of ours")
        if local.base is not None and not remote.deleted and local.base == remote.hash:
            return Decision(Action.IGNORE, "our version was made on top of the peer's")
    return resolve(local, remote, ctx)


def _slave_adopts(local: Record, remote: Record, ctx: Context) -> Decision:
    """A slave with changes of its own meets a master's version."""
    if compare(remote.vector, _without(local.vector, ctx.me)) is Order.BEFORE:
        return Decision(Action.IGNORE, "this master is behind the master versions we hold")
    if remote.same_content(local):
        return Decision(
            Action.MERGE,
            "slave: same content as the master's",
            take_metadata=not remote.deleted and not remote.same_metadata(local),
            vector=remote.vector,
        )
    return Decision(
        Action.APPLY,
        "slave: a local change is replaced by the master's version",
        backup=True,
        vector=remote.vector,
        conflict=True,
        winner="remote",
    )


def resolve(local: Record, remote: Record, ctx: Context) -> Decision:
    """A conflict: two concurrent versions with different payloads."""
    if ctx.me in ctx.slaves and ctx.peer not in ctx.slaves:
        return _verdict("remote", "a slave never wins against a master")
    if ctx.force is not None:
        d = _verdict(ctx.force, "resolved by the admin")
        return Decision(d.action, d.reason, backup=d.backup, conflict=True, winner=d.winner, bump=True)
    policy = ctx.policy
    if policy == "none":
        return Decision(Action.CONFLICT, "both sides changed it", conflict=True)
    if policy == "first":
        return _verdict("local" if ctx.me_started else "remote", "auto first: the node that started the sync wins")
    if policy in ("younger", "older", "bigger", "smaller"):
        if local.deleted != remote.deleted:
            return _verdict("remote" if local.deleted else "local", f"auto {policy}: a deletion loses")
        lv, rv = (r.mtime_ns if policy in ("younger", "older") else r.size_bytes for r in (local, remote))
        if lv != rv:
            local_wins = lv > rv if policy in ("younger", "bigger") else lv < rv
            return _verdict("local" if local_wins else "remote", f"auto {policy}")
        return _tie(local, remote, f"auto {policy}, equal")
    # left / right
    rank = {h: i for i, h in enumerate(ctx.hosts)}
    lv_, rv_ = dict(local.vector), dict(remote.vector)
    by_local = [n for n, c in lv_.items() if c > rv_.get(n, 0)]
    by_remote = [n for n, c in rv_.items() if c > lv_.get(n, 0)]

    def score(node: str) -> tuple[int, str]:  # higher is better; hosts not in the list come last
        r = rank.get(node)
        if policy == "left":
            return (-(len(rank) if r is None else r), node)
        return (-1 if r is None else r, node)

    if not by_local or not by_remote:
        return _tie(local, remote, f"auto {policy}, no host order")
    bl, br = max(map(score, by_local)), max(map(score, by_remote))
    local_wins = bl > br
    return _verdict("local" if local_wins else "remote", f"auto {policy}: host order")


def _tie(local: Record, remote: Record, why: str) -> Decision:
    return _verdict("local" if _total_key(local) > _total_key(remote) else "remote", f"{why}: fixed tie-break")


def _verdict(winner: Side, why: str) -> Decision:
    if winner == "local":
        # Our vector stays as it is: the peer's version is not merged in until the node holding it has
        # kept a copy (it takes ours and merges there), so the losing content cannot vanish unnoticed.
        return Decision(Action.IGNORE, f"{why}: ours is kept", conflict=True, winner="local")
    return Decision(Action.APPLY, f"{why}: the peer's is taken", backup=True, conflict=True, winner="remote")


def merged_vector(local: Record | None, remote: Record) -> Vector:
    return remote.vector if local is None else merge(local.vector, remote.vector)


def stored_vector(decision: Decision, local: Record | None, remote: Record) -> Vector:
    return decision.vector if decision.vector is not None else merged_vector(local, remote)
