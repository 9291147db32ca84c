"""What each peer still needs: our records above its acknowledged watermark, in the groups it shares."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def pending_view(db: StateDB, cfg: NodeConfig) -> PendingView:
    pmap = PathMap(dict(cfg.prefixes))
    peers: dict[str, list[str]] = {}
    for peer in sorted(cfg.peers()):
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
            if len(page) < 10_000:
                break
            since = page[-1].seq
        peers[peer] = paths
    conflicts = [OpenConflict(path, peer, when) for path, peer, _, when in db.conflicts()]
    return PendingView(cfg.node, peers, conflicts)
