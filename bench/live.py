#!/usr/bin/env python3
"""Live-mode latency and throughput (issue 5); prints a table.

    .venv/bin/python bench/live.py [--dir /dev/shm] [--writes 200] [--burst 2000] [--no-lsyncd]

L1  a 100-byte write on node A, visible with the right content on B and C; 200 writes 50 ms apart,
    TLS on, default settings. Reported: p50 / p99 / max of the time from the writer's close() to the
    moment the bench sees the final name appear (inotify IN_MOVED_TO / IN_CLOSE_WRITE on the target
    directory) holding the new content, on both peers.       target: p50 <= 50 ms, p99 <= 250 ms
    Reference line: lsyncd (Debian package) with -rsync and -delay 0 to a local directory, same writes.
L2  a burst of 2,000 files on A: from the last write to the last file visible on B and C.
                                                              target: <= 1 s
Also: the daemon's RSS and CPU time (from /proc) after the runs.
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

from inotify_simple import INotify, flags

from shoal.testing.cluster import Cluster


class Seen:
    """Watches a directory and reports when ``name`` holds ``content``."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.ino = INotify()
        self.ino.add_watch(directory, flags.MOVED_TO | flags.CLOSE_WRITE | flags.CREATE)

    def wait(self, name: str, content: bytes, timeout_s: float = 10.0) -> float:
        deadline = time.perf_counter() + timeout_s
        path = self.dir / name
        while True:
            try:
                if path.read_bytes() == content:
                    return time.perf_counter()
            except OSError:
                pass
            left = deadline - time.perf_counter()
            if left <= 0:
                raise TimeoutError(f"{path} never held the expected content")
            self.ino.read(timeout=int(min(left, 0.05) * 1000))

    def close(self) -> None:
        self.ino.close()


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


def l1(writer_dir: Path, targets: list[Path], writes: int, gap_s: float = 0.05) -> list[float]:
    """Per write: the time until every target holds it."""
    seen = [Seen(t) for t in targets]
    lat = []
    try:
        for i in range(writes):
            content = f"write {i:06d} ".ljust(100, "x").encode()
            name = f"l1-{i:04d}.txt"  # a new file each time (rsync would skip a same-size same-second rewrite)
            with open(writer_dir / name, "wb") as f:
                f.write(content)
            t0 = time.perf_counter()
            lat.append(max(s.wait(name, content) for s in seen) - t0)
            time.sleep(gap_s)
    finally:
        for s in seen:
            s.close()
    return lat


def l2(writer_dir: Path, targets: list[Path], count: int) -> float:
    (writer_dir / "burst").mkdir()
    for i in range(count):
        (writer_dir / "burst" / f"b{i:05d}").write_bytes(b"%d\n" % i)
    t0 = time.perf_counter()
    last = f"b{count - 1:05d}"
    deadline = t0 + 60
    for t in targets:
        while True:
            d = t / "burst"
            if d.is_dir() and (d / last).exists() and len(os.listdir(d)) >= count:
                break
            if time.perf_counter() > deadline:
                raise TimeoutError("burst did not arrive")
            time.sleep(0.005)
    return time.perf_counter() - t0


def proc_stats(pid: int) -> tuple[float, float]:
    """(RSS MiB, CPU seconds) of a process."""
    with open(f"/proc/{pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS:")) / 1024
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return rss, (int(fields[11]) + int(fields[12])) / ticks


def lsyncd_binary() -> str | None:
    found = shutil.which("lsyncd")
    if found or os.geteuid() != 0:
        return found
    subprocess.run(["apt-get", "update", "-qq"], check=False, capture_output=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "lsyncd", "rsync"],
        check=False,
        capture_output=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("lsyncd")


def lsyncd_l1(base: Path, writes: int) -> list[float] | None:
    exe = lsyncd_binary()
    if exe is None:
        return None
    src, dst = base / "lsyncd-src", base / "lsyncd-dst"
    src.mkdir()
    dst.mkdir()
    proc = subprocess.Popen(
        [exe, "-nodaemon", "-delay", "0", "-rsync", str(src), str(dst)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(1.5)  # its start-up sync
        return l1(src, [dst], writes)
    finally:
        proc.terminate()
        proc.wait(10)


def big_tree(base: Path, files: int, dirs: int, events: int) -> dict[str, float]:
    """One live daemon over ``files`` files in ``dirs`` directories (its peers are down, so this is the
    cost of watching and scanning alone): RSS once everything is watched, then CPU per 1,000 events."""
    import json

    with Cluster(base / "big") as c:
        a = c.nodes["alpha"].data
        for d in range(dirs):
            (a / f"d{d:05d}").mkdir()
        for i in range(files):
            (a / f"d{i % dirs:05d}" / f"f{i}").write_bytes(b"x" * 64)
        t0 = time.perf_counter()
        c.start("alpha", watch=True, wait_s=120)
        node = c.nodes["alpha"]
        assert node.proc is not None

        def status() -> dict[str, object]:
            return json.loads(c.run("alpha", "status", "--json").stdout)["daemon"] or {}  # type: ignore[no-any-return]

        while not (status().get("full_scans") and int(status().get("watches", 0)) > dirs):  # type: ignore[call-overload]
            time.sleep(0.5)
        ready_s = time.perf_counter() - t0
        rss, cpu0 = proc_stats(node.proc.pid)
        ev0 = int(status()["events"])  # type: ignore[call-overload]
        for i in range(events):
            (a / f"d{i % dirs:05d}" / f"new{i}").write_bytes(b"y" * 64)
        while int(status()["events"]) - ev0 < events or int(status()["queue"]):  # type: ignore[call-overload]
            time.sleep(0.2)
        time.sleep(1.0)
        _, cpu1 = proc_stats(node.proc.pid)
        seen = int(status()["events"]) - ev0  # type: ignore[call-overload]
        return {"ready_s": ready_s, "rss": rss, "cpu_per_1000": (cpu1 - cpu0) / seen * 1000, "events": seen}


def row(name: str, lat: list[float], target: str) -> str:
    ms = [x * 1000 for x in lat]
    return f"| {name} | {pct(ms, 50):.1f} | {pct(ms, 99):.1f} | {max(ms):.1f} | {statistics.mean(ms):.1f} | {target} |"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=None, help="where the trees live (default: a temp dir)")
    ap.add_argument("--writes", type=int, default=200)
    ap.add_argument("--burst", type=int, default=2000)
    ap.add_argument("--no-lsyncd", action="store_true")
    ap.add_argument("--tree", type=int, default=100_000, help="files for the RSS figure (0: skip)")
    args = ap.parse_args()
    base = Path(tempfile.mkdtemp(prefix="shoal-live-", dir=args.dir))
    try:
        with Cluster(base / "c") as c:
            for n in c.nodes:
                c.start(n, watch=True)
            time.sleep(1.0)  # start-up catch-up cycles
            a = c.nodes["alpha"].data
            targets = [c.nodes["beta"].data, c.nodes["gamma"].data]
            lat = l1(a, targets, args.writes)
            burst = l2(a, targets, args.burst)
            stats = {n: proc_stats(c.nodes[n].proc.pid) for n in c.nodes if c.nodes[n].proc is not None}
        ref = None if args.no_lsyncd else lsyncd_l1(base, args.writes)
        print(f"\n{args.writes} writes of 100 bytes, 50 ms apart; 3 live daemons on 127.0.0.1, TLS; trees in {base}\n")
        print("| L1: write on A -> visible on B and C | p50 ms | p99 ms | max ms | mean ms | target |")
        print("|---|---|---|---|---|---|")
        print(row("shoal (both peers)", lat, "p50 <= 50, p99 <= 250"))
        slow = [(i, round(x * 1000)) for i, x in enumerate(lat) if x > 0.25]
        print(f"writes over 250 ms (index, ms): {slow}")
        if ref is not None:
            print(row("lsyncd -rsync -delay 0 (local dir, one target)", ref, "reference"))
        else:
            print("| lsyncd | not installed | | | | reference |")
        print(f"\nL2: burst of {args.burst} files on A -> last visible on B and C: {burst:.3f} s (target <= 1 s)")
        for n, (rss, cpu) in stats.items():
            print(f"daemon {n}: RSS {rss:.0f} MiB, CPU {cpu:.2f} s over the run")
        if args.tree:
            big = big_tree(base, args.tree, args.tree // 10, 2000)
            print(
                f"\n{args.tree} files in {args.tree // 10} directories, one live daemon: watching and the start-up "
                f"scan done in {big['ready_s']:.1f} s; RSS {big['rss']:.0f} MiB; "
                f"{big['cpu_per_1000']:.2f} CPU s per 1,000 events ({big['events']:.0f} events: 2,000 new files)"
            )
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
