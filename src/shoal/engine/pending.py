"""What each peer still needs: our records above its acknowledged watermark, in the groups it shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from shoal.config.resolve import NodeConfig
from shoal.model.paths import PathMap
from shoal.model.patterns import Matcher
from shoal.state.db import StateDB


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


def pending_view(db: StateDB, cfg: NodeConfig) -> PendingView:
    pmap = PathMap(dict(cfg.prefixes))
    peers: dict[str, list[str]] = {}
    oldest_s: dict[str, int | None] = {}
    for peer in sorted(cfg.peers()):
        oldest: int | None = None
        matcher = Matcher([(g.name, g.rules) for g in cfg.groups if any(p.name == peer for p in g.peers)])
        since, _ = db.watermarks(peer)
        peer_db = db.get_meta(f"peer_db_id:{peer}")  # versions taken from the peer: it has them already
        paths = []
        while True:
            page = db.records_since(since, 10_000)
            for rec in page:
                real = pmap.to_real_safe(rec.path)
                if (peer_db is None or rec.origin != peer_db) and real is not None and matcher.is_managed(real):
                    paths.append(rec.path)
                    made = max((c for _, c in rec.vector), default=None)
                    if made is not None and (oldest is None or made < oldest):
                        oldest = made
            if len(page) < 10_000:
                break
            since = page[-1].seq
        peers[peer] = paths
        oldest_s[peer] = oldest
    conflicts = [OpenConflict(path, peer, when) for path, peer, _, when in db.conflicts()]
    return PendingView(cfg.node, peers, conflicts, oldest_s)
