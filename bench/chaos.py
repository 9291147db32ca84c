"""Fault campaigns (issue 7): one command each, a table of counts at the end; exit 1 on any failure.

    .venv/bin/python bench/chaos.py crash [--rounds 200] [--seed 1] [--dir /dev/shm]
    .venv/bin/python bench/chaos.py partition [--rounds 50] [--seed 1]      (root: network namespaces)

crash      three live daemons on 127.0.0.1 under a random workload (shoal.testing.chaos); at random
           moments one daemon is SIGKILLed (half the time one writing a temp file) and restarted.
partition  three live daemons, each in a network namespace of its own; at random moments links are cut
           (one pair, one node from both others, or a three-way split) and healed a little later.
Both sample the trees throughout and check convergence, every node's own writes and the shared
versions at the end (see the module docstring of shoal.testing.chaos).
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

from shoal.testing import chaos
from shoal.testing.cluster import Cluster


def crash(base: Path, rounds: int, seed: int) -> chaos.Report:
    with Cluster(base, group_extra="auto younger;") as c:
        return chaos.run_campaign(
            c, chaos.crash_fault(c), lambda: None, campaign="crash", rounds=rounds, seed=seed, progress=print
        )


def partition(base: Path, rounds: int, seed: int) -> chaos.Report:
    from shoal.testing.netns import NetnsCluster, available

    if (why := available()) is not None:
        sys.exit(f"partition campaign: {why}")
    c = NetnsCluster(base, group_extra="auto younger;")
    try:
        return chaos.run_campaign(
            c, chaos.partition_fault(c), c.heal_all, campaign="partition", rounds=rounds, seed=seed, progress=print
        )
    finally:
        c.close()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("campaign", choices=["crash", "partition"])
    ap.add_argument("--rounds", type=int, help="faults to make (default: 200 kills / 50 cuts)")
    ap.add_argument("--seed", type=int, default=random.randrange(1 << 30))
    ap.add_argument("--dir", default=None, help="where the node trees live (default: a temp dir)")
    ap.add_argument("--keep", metavar="DIR", help="run in DIR and leave the trees, states and logs there")
    a = ap.parse_args()
    rounds = a.rounds or (200 if a.campaign == "crash" else 50)
    print(f"{a.campaign} campaign, {rounds} faults, seed {a.seed}")
    t0 = time.monotonic()
    run = crash if a.campaign == "crash" else partition
    if a.keep:
        report = run(Path(a.keep), rounds, a.seed)
    else:
        with tempfile.TemporaryDirectory(dir=a.dir, prefix="shoal-chaos-") as tmp:
            report = run(Path(tmp) / "c", rounds, a.seed)
    print(chaos.format_report(report))
    print(f"  {'wall time':<20}  {time.monotonic() - t0:.0f} s")
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
