#!/usr/bin/env python3
"""Scanner figures (issue 2), printed as a table; medians of several runs.

    .venv/bin/python bench/scan.py [--files 100000] [--dirs 100] [--runs 5] [--dir /tmp]

S1  no-op scan of N unchanged files, against `find ROOT -printf '%s %T@ %m %U %G\\n'` (target: <= 2x)
S2  first scan of N x 1 KiB files, hashing included: files per second
S3  database bytes per file at N files (target: <= 300)

The scan is timed in-process (Scanner.scan) and as the real `shoal check` command (interpreter start-up
included). The page cache is warm for every tool alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, resolve
from shoal.fs.keyfile import write_key_file
from shoal.fs.scan import RECENT_NS, Scanner
from shoal.state.db import StateDB


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


def make_tree(root: Path, files: int, dirs: int) -> None:
    payload = os.urandom(1024)
    per_dir = files // dirs
    for d in range(dirs):
        sub = root / f"d{d:04d}"
        sub.mkdir(parents=True)
        for f in range(per_dir):
            with open(sub / f"f{f:06d}.dat", "wb") as fh:
                fh.write(payload[: 1000 + (f % 24)] + f.to_bytes(4, "little"))


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--files", type=int, default=100_000)
    ap.add_argument("--dirs", type=int, default=100)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--dir", default=tempfile.gettempdir(), help="where to build the tree")
    args = ap.parse_args()

    # Measure an installed tool: compile shoal's modules once, as pip does for a regular install (this
    # environment sets PYTHONDONTWRITEBYTECODE, which would make every CLI run compile them again).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "src")], check=True
    )
    work = Path(tempfile.mkdtemp(prefix="shoal-bench-scan-", dir=args.dir))
    try:
        root = work / "data"
        print(f"building {args.files} files in {args.dirs} directories under {root} ...", file=sys.stderr)
        make_tree(root, args.files, args.dirs)
        key = work / "g.key"
        write_key_file(str(key))
        cfg_text = f"group g {{ host n1 n2; key {key}; include {root}; exclude *.swp; }}\n"
        (work / "shoal.cfg").write_text(cfg_text)
        cfg = resolve(parse_text(cfg_text, str(work / "shoal.cfg")), "n1", probe)
        later = time.time_ns() + 10 * RECENT_NS  # as if the files were written a while ago

        first: list[float] = []
        for i in range(args.runs):
            db_path = work / f"first{i}.db"
            with StateDB.open(str(db_path)) as db:
                first.append(timed(lambda db=db: Scanner(db, cfg, clock_ns=lambda: later).scan()))
            if i:
                for suffix in ("", "-wal", "-shm"):
                    Path(str(db_path) + suffix).unlink(missing_ok=True)

        db_path = work / "first0.db"
        with StateDB.open(str(db_path)) as db:
            live, _ = db.count_records()
            noop = [timed(lambda db=db: Scanner(db, cfg, clock_ns=lambda: later).scan()) for _ in range(args.runs)]
            res = Scanner(db, cfg, clock_ns=lambda: later).scan()
            assert res.recorded == 0 and res.hashed_files == 0, "no-op scan recorded changes"
            db.checkpoint()
        db_bytes = sum(os.path.getsize(str(db_path) + s) for s in ("", "-wal") if os.path.exists(str(db_path) + s))

        find = [
            timed(
                lambda: subprocess.run(
                    ["find", str(root), "-printf", "%s %T@ %m %U %G\n"], stdout=subprocess.DEVNULL, check=True
                )
            )
            for _ in range(args.runs)
        ]
        state = work / "cli-state"
        shutil.copytree(
            work, state, ignore=lambda d, names: [n for n in names if n != "first0.db"] if d == str(work) else names
        )
        env = {**os.environ, "SHOAL_STATE_DIR": str(state)}
        (state / "state.db").unlink(missing_ok=True)
        os.rename(state / "first0.db", state / "state.db")
        shoal = Path(sys.executable).parent / "shoal"
        cmd = [str(shoal), "-c", str(work / "shoal.cfg"), "-N", "n1", "check"]
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)  # clears recheck marks, warms up
        cli = [
            timed(lambda: subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)) for _ in range(args.runs)
        ]

        m_first, m_noop, m_find, m_cli = (statistics.median(x) for x in (first, noop, find, cli))
        n = args.files
        rows = [
            ("S1 no-op scan, in-process", f"{m_noop:.3f} s", f"{m_noop / m_find:.2f}x find", "<= 2x find"),
            ("S1 no-op `shoal check` (CLI)", f"{m_cli:.3f} s", f"{m_cli / m_find:.2f}x find", ""),
            ("   find -printf (reference)", f"{m_find:.3f} s", "1.00x", ""),
            ("S2 first scan, hashing included", f"{m_first:.3f} s", f"{n / m_first:,.0f} files/s", ""),
            ("S3 database size", f"{db_bytes / 1e6:.1f} MB", f"{db_bytes / live:.0f} B/file", "<= 300 B/file"),
        ]
        print(
            f"\nshoal scanner, {n:,} files x ~1 KiB in {args.dirs} dirs, median of {args.runs} "
            f"({os.cpu_count()} cores, Python {sys.version.split()[0]})\n"
        )
        print(f"{'figure':<34} {'time/size':>12} {'rate/ratio':>18}  {'target':<14}")
        print("-" * 82)
        for name, a, b, target in rows:
            print(f"{name:<34} {a:>12} {b:>18}  {target:<14}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
