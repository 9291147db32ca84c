#!/usr/bin/env python3
"""Config figures (issue 2): parsing and resolving a generated 200-group config; median of runs.

    .venv/bin/python bench/config.py [--groups 200] [--runs 20]

C1  parse (tokenize + parse into the model), target < 50 ms for 200 groups
C2  parse + resolve for one node (membership, prefixes, peers; key files probed in memory)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, resolve


def generate(groups: int) -> str:
    out = ["nossl *-sync *-sync;", "ignore uid;", "prefix data { on node[0-3]: /srv/data; on *: /data; }"]
    for i in range(groups):
        out.append(f"""group g{i} {{
    host node{i % 7} node{(i + 1) % 7}@10.0.{i % 250}.1:30866 (node{(i + 2) % 7});
    key /etc/shoal/g{i}.key;
    include /srv/g{i} %data%/g{i};
    exclude *.swp *~ .* /srv/g{i}/cache /srv/g{i}/*/tmp;
    auto younger;
    backup-directory /var/backups/shoal; backup-generations 3;
    action {{ pattern /srv/g{i}/conf/*.conf; exec "systemctl reload app{i}" "logger %%";
              logfile "/var/log/g{i}.log"; do-local; }}
    interval 10m; delay 200ms; only-from 10.0.0.0/8;
}}""")
    return "\n".join(out) + "\n"


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--groups", type=int, default=200)
    ap.add_argument("--runs", type=int, default=20)
    args = ap.parse_args()
    text = generate(args.groups)
    parse_ms, resolve_ms = [], []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        cfg = parse_text(text, "generated.cfg")
        t1 = time.perf_counter()
        node = resolve(cfg, "node1", probe)
        t2 = time.perf_counter()
        parse_ms.append((t1 - t0) * 1000)
        resolve_ms.append((t2 - t0) * 1000)
    assert len(cfg.groups) == args.groups and node.groups
    print(
        f"\nshoal config, {args.groups} groups, {len(text.splitlines())} lines, {len(text) / 1024:.0f} KiB, "
        f"median of {args.runs}\n"
    )
    print(f"{'figure':<36} {'median':>10} {'best':>10}  target")
    print("-" * 70)
    print(f"{'C1 parse':<36} {statistics.median(parse_ms):>7.1f} ms {min(parse_ms):>7.1f} ms  < 50 ms")
    print(f"{'C2 parse + resolve (node1)':<36} {statistics.median(resolve_ms):>7.1f} ms {min(resolve_ms):>7.1f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
