"""csync2's per-(file, peer) state, presented from and written to shoal's records and watermarks.

Owns: the dirty view (``-M``), ``-I`` (record without marking dirty), ``-m`` (mark dirty), forcing
(``-f``, ``-F``), ``-TI`` marking, and ``-R``. Must not: talk to peers (main.py fetches what a peer holds
and passes it in).

- A path is dirty for a peer when our record of it is a version made here (not one taken unchanged
  from some peer) with a sequence number above the peer's acknowledged watermark, in a group we share
  with the peer; or when the peer refused that version as a conflict (table ``unsettled``) and we
  still hold it.
- Forcing makes a new version of ours whose vector includes every version we know of the path (ours,
  open conflicts here, and what each peer holds): every peer takes it as a fast-forward, keeping its
  own copy as a backup.
"""

from __future__ import annotations

import time
from dataclasses import replace

from shoal.config.resolve import NodeConfig
from shoal.engine.pending import peer_matchers, unacked
from shoal.engine.wire import record_from_bytes
from shoal.model.paths import PathMap, is_within
from shoal.model.records import Record, Vector, bump, merge
from shoal.state.db import StateDB


def _now_s() -> int:
    return time.time_ns() // 1_000_000_000


def under(path: str, recursive: bool, candidate: str) -> bool:
    return candidate == path or (recursive and is_within(candidate, path))


def forced_paths(db: StateDB) -> list[tuple[str, bool]]:
    return db.marks("forced")


def is_forced(forced: list[tuple[str, bool]], path: str) -> bool:
    return any(under(f, rec, path) for f, rec in forced)


def dirty_rows(db: StateDB, cfg: NodeConfig, peers: list[str] | None = None) -> list[tuple[bool, str, str]]:
    """``(forced, peer, logical path)`` for every path some peer still needs from us."""
    pmap = PathMap(dict(cfg.prefixes))
    forced = forced_paths(db)
    rows: set[tuple[str, str]] = set()
    for peer, matcher in peer_matchers(cfg).items():
        if peers is None or peer in peers:
            rows.update((peer, rec.path) for rec in unacked(db, pmap, peer, matcher) if rec.origin is None)
    for path, peer in db.unsettled():
        if peers is None or peer in peers:
            rows.add((peer, path))
    return [(is_forced(forced, path), peer, path) for peer, path in rows]


def acknowledge_new(db: StateDB, cfg: NodeConfig, before_seq: int) -> int:
    """``-I``: what a check recorded after ``before_seq`` is not dirty for any peer (the nodes are known
    to hold the same already). Peers with older dirty rows keep all of them. Returns how many peers."""
    last = db.last_seq()
    done = 0
    for peer in cfg.peers():
        acked, received = db.watermarks(peer)
        if acked >= before_seq and last > acked:
            db.set_watermarks(peer, last, received)
            done += 1
    return done


def records_under(db: StateDB, targets: list[tuple[str, bool]]) -> list[Record]:
    """Our records at the given logical paths (and below them, for recursive ones), tombstones too."""
    exact = [p for p, rec in targets if not rec]
    found = dict(db.get_records(exact))
    trees = [p for p, rec in targets if rec]
    if trees:
        for rec in db.all_records():
            if any(under(t, True, rec.path) for t in trees):
                found[rec.path] = rec
    return sorted(found.values(), key=lambda r: r.path)


def new_versions(db: StateDB, cfg: NodeConfig, records: list[Record], include: dict[str, list[Vector]]) -> int:
    """Store each record as a new version of ours whose vector also includes the vectors in
    ``include[path]`` and those of open conflicts here; those conflicts are settled. Returns the count."""
    if not records:
        return 0
    paths = [r.path for r in records]
    open_ = db.conflicts_on(paths)
    now = _now_s()
    out = []
    for rec in records:
        vector = rec.vector
        for other in include.get(rec.path, []):
            vector = merge(vector, other)
        for raw, _ in open_.get(rec.path, {}).values():
            vector = merge(vector, record_from_bytes(raw).vector)
        out.append(replace(rec, vector=bump(vector, cfg.node, now), origin=None))
    db.apply_scan(out)
    db.clear_conflicts([(p, peer) for p in paths for peer in open_.get(p, {})])
    return len(out)


def tombstones(db: StateDB, cfg: NodeConfig, theirs: list[Record]) -> int:
    """``-TIX``: a deletion of ours for each path only a peer holds, newer than the peer's version."""
    now = _now_s()
    ours = db.get_records([r.path for r in theirs])
    out = []
    for rec in theirs:
        vector = merge(rec.vector, ours[rec.path].vector) if rec.path in ours else rec.vector
        out.append(Record(rec.path, rec.kind, deleted=True, vector=bump(vector, cfg.node, now)))
    if out:
        db.apply_scan(out)
    return len(out)


def unmanaged(db: StateDB, cfg: NodeConfig) -> list[str]:
    """``-R``: records of paths no group of this node manages any more."""
    pmap = PathMap(dict(cfg.prefixes))
    matcher = cfg.matcher()
    out = []
    for rec in db.all_records():
        real = pmap.to_real_safe(rec.path)
        if real is None or not matcher.is_managed(real):
            out.append(rec.path)
    return out
