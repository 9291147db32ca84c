"""What each peer still needs: our records above its acknowledged watermark, in the groups it shares."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field

from shoal.config.resolve import NodeConfig
from shoal.model.paths import PathMap
from shoal.model.patterns import Matcher
from shoal.model.records import Record
from shoal.state.db import StateDB

PAGE = 10_000


@dataclass(frozen=True)
class OpenConflict:
    path: str
    peer: str
    detected_ns: int


@dataclass(frozen=True)
class PendingView:
    node: str
    peers: dict[str, list[str]]
    conflicts: list[OpenConflict]
    #: per peer: when the oldest change it lacks was made (unix seconds), None when it lacks nothing.
    #: A version vector's newest entry is the wall-clock second of the change that made it.
    oldest_s: dict[str, int | None] = field(default_factory=dict)

    def lag_seconds(self, peer: str, now_s: float) -> float:
        oldest = self.oldest_s.get(peer)
        return 0.0 if oldest is None else max(0.0, now_s - oldest)

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def peer_matchers(cfg: NodeConfig) -> dict[str, Matcher]:
    """Per peer: the matcher of the groups this node shares with it."""
    return {
        peer: Matcher([(g.name, g.rules) for g in cfg.groups if any(p.name == peer for p in g.peers)])
        for peer in sorted(cfg.peers())
    }


def unacked(db: StateDB, pmap: PathMap, peer: str, matcher: Matcher) -> Iterator[Record]:
    """Our records above ``peer``'s acknowledged watermark, in the groups we share, oldest change first."""
    since, _ = db.watermarks(peer)
    while True:
        page = db.records_since(since, PAGE)
        for rec in page:
            real = pmap.to_real_safe(rec.path)
            if real is not None and matcher.is_managed(real):
                yield rec
        if len(page) < PAGE:
            return
        since = page[-1].seq


def pending_view(db: StateDB, cfg: NodeConfig) -> PendingView:
    pmap = PathMap(dict(cfg.prefixes))
    peers: dict[str, list[str]] = {}
    oldest_s: dict[str, int | None] = {}
    for peer, matcher in peer_matchers(cfg).items():
        oldest: int | None = None
        peer_db = db.get_meta(f"peer_db_id:{peer}")  # versions taken from the peer: it has them already
        paths = []
        for rec in unacked(db, pmap, peer, matcher):
            if peer_db is None or rec.origin != peer_db:
                paths.append(rec.path)
                made = max((c for _, c in rec.vector), default=None)
                if made is not None and (oldest is None or made < oldest):
                    oldest = made
        peers[peer] = paths
        oldest_s[peer] = oldest
    conflicts = [OpenConflict(path, peer, when) for path, peer, _, when in db.conflicts()]
    return PendingView(cfg.node, peers, conflicts, oldest_s)
