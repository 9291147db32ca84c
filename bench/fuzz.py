"""Run the fuzzers with a count and seed of your choosing and print a table.

    .venv/bin/python bench/fuzz.py                      # the full counts (1M / 1M / 1M / 100k / 200k)
    .venv/bin/python bench/fuzz.py --scale 0.1 --seed 7 # a tenth of them, another seed

Exit 1 when any input raised something other than the allowed error types (each is printed with its
index, enough to replay it with the same seed).
"""

from __future__ import annotations

import argparse
import sys
import time

from shoal.testing.fuzz import FUZZERS

FULL = {"frames": 1_000_000, "sessions": 1_000_000, "paths": 1_000_000, "config": 100_000, "serving": 200_000}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--scale", type=float, default=1.0)
    ap.add_argument("targets", nargs="*", help=f"some of {', '.join(sorted(FULL))} (default: all)")
    a = ap.parse_args()
    a.targets = a.targets or sorted(FULL)
    if unknown := set(a.targets) - set(FULL):
        ap.error(f"unknown target(s): {', '.join(sorted(unknown))}")
    print(f"{'target':<26} {'inputs':>10} {'accepted':>10} {'refused':>10} {'failed':>7} {'seconds':>8}")
    bad = 0
    for name in a.targets:
        n = max(1, int(FULL[name] * a.scale))
        t0 = time.perf_counter()
        r = FUZZERS[name](n, a.seed)
        dt = time.perf_counter() - t0
        print(f"{r.target:<26} {r.inputs:>10,} {r.accepted:>10,} {r.refused:>10,} {r.failed:>7,} {dt:>8.1f}")
        for f in r.failures:
            print(f"    #{f.index}: {f.error}\n      {f.data!r:.300}")
        bad += r.failed
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
