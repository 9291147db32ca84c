"""Settling conflicts: which open conflicts a stored version settles, an admin's ``shoal resolve PATH
--keep local|NODE``, and what ``shoal conflicts`` shows.

Owns: turning the admin's choice into state the next exchanges act on. Must not: talk to peers (the
command runs a sync afterwards, which carries the decision).

- ``--keep local``: our version becomes a new version of ours whose vector includes every conflicting
  version: every other node takes it as a plain fast-forward (keeping its own copy, since it holds the
  conflict open too), wherever it comes from.
- ``--keep NODE``: the conflict row with NODE is marked, and our received-watermark for NODE is moved
  back to just before its conflicting version, so the next exchange with NODE offers it again; the
  exchange then takes it (keeping ours) and stores it as a new version of ours, which wins everywhere.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

from shoal.config.resolve import NodeConfig
from shoal.engine.wire import record_from_bytes
from shoal.errors import ShoalError
from shoal.model.records import Order, Record, Vector, bump, compare, merge
from shoal.state.db import KeptVersion, StateDB


class ResolveError(ShoalError):
    pass


def keep_local(db: StateDB, cfg: NodeConfig, path: str) -> list[str]:
    """Settle every open conflict on ``path`` for our version; returns the peers involved."""
    rows = db.conflicts_on([path]).get(path)
    if not rows:
        raise ResolveError(f"no open conflict on {path}")
    local = db.get_records([path]).get(path)
    if local is None:
        raise ResolveError(f"{path}: this node has no record of it")
    vector = local.vector
    for raw, _ in rows.values():
        vector = merge(vector, record_from_bytes(raw).vector)
    settled = replace(local, vector=bump(vector, cfg.node, time.time_ns() // 1_000_000_000), origin=None)
    db.apply_scan([settled])
    db.clear_conflicts([(path, peer) for peer in rows])
    return sorted(rows)


def keep_peer(db: StateDB, path: str, peer: str) -> None:
    """Settle the conflict on ``path`` for ``peer``'s version at the next exchange with it."""
    rows = db.conflicts_on([path]).get(path, {})
    if peer not in rows:
        others = ", ".join(sorted(rows)) or "none"
        raise ResolveError(f"no open conflict with {peer} on {path} (open conflicts there are with: {others})")
    theirs = record_from_bytes(rows[peer][0])
    db.set_conflict_keep(path, peer)
    acked, received = db.watermarks(peer)
    db.set_watermarks(peer, acked, min(received, max(theirs.seq - 1, 0)))


@dataclass
class OpenConflictView:
    path: str
    peer: str
    detected_ns: int
    theirs: str  #: a short description of the peer's version
    keep: str | None


@dataclass
class ConflictsView:
    node: str
    open: list[OpenConflictView]
    kept: list[KeptVersion]

    def to_json(self) -> dict[str, object]:
        out = asdict(self)
        for k in out["kept"]:
            k["hash"] = k["hash"].hex() if k["hash"] else None
        return out


def describe(rec: Record) -> str:
    if rec.deleted:
        return "deleted"
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rec.mtime_ns / 1e9))
    return f"{rec.kind.name.lower()}, {rec.size_bytes} bytes, modified {when}"


def conflicts_view(db: StateDB, cfg: NodeConfig) -> ConflictsView:
    rows = db.conflicts()
    keeps = db.conflicts_on({path for path, *_ in rows})
    opened = [
        OpenConflictView(path, peer, when, describe(record_from_bytes(raw)), keeps[path][peer][1])
        for path, peer, raw, when in rows
    ]
    return ConflictsView(cfg.node, opened, db.kept_versions())


def settled_conflicts(
    settle: list[tuple[str, Vector]], open_: dict[str, dict[str, tuple[bytes, str | None]]], peer: str
) -> list[tuple[str, str]]:
    """The open conflicts a decision settled: the one with this peer when ours was kept (empty vector),
    and every one whose conflicting version the newly stored vector includes."""
    out: list[tuple[str, str]] = []
    for path, vector in settle:
        for other, (raw, _keep) in open_.get(path, {}).items():
            if not vector:
                if other == peer:
                    out.append((path, other))
                continue
            theirs = record_from_bytes(raw).vector
            if compare(vector, theirs) in (Order.AFTER, Order.EQUAL):
                out.append((path, other))
    return out
