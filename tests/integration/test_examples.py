"""The shipped example configs parse, and check cleanly once their key files exist."""

from __future__ import annotations

from pathlib import Path

from shoal.config.resolve import KeyFacts, resolve
from shoal.fs.config_source import load_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


def test_cluster_example() -> None:
    cfg = load_config(str(EXAMPLES / "cluster.cfg"))
    view = resolve(cfg, "web2", probe)
    (g,) = view.groups
    assert [p.name for p in g.peers] == ["web1", "backup1"] and g.peers[1].slave
    assert g.roots == ("/etc/nginx/sites-available", "/srv/www")
    assert (g.interval_ms, g.delay_ms, g.only_from) == (600_000, 200, ("10.0.0.0/24",))


def test_csync2_example() -> None:
    cfg = load_config(str(EXAMPLES / "csync2.cfg"))
    assert resolve(cfg, "a", probe).groups[0].roots == ("/export/home/bob", "/srv/www")
    assert resolve(cfg, "c", probe).groups[0].slave
