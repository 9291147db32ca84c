#!/usr/bin/env python3
"""shoal against csync2 on the same workloads, on this machine, in one run (issue 3); prints a table.

    .venv/bin/python bench/vs_csync2.py [--wan-files 2000] [--skip-wan] [--only W1,W2,...]

W1      2,000 x 1 KiB files in 20 directories pushed from one node to two peers
        (csync2 -x with -ii daemons and nossl; shoal sync with TLS)            target: shoal >= 10x faster
W1-WAN  the same through a proxy adding 10 ms each way                          target: >= 100x faster
W2      no-op sync over 20,000 files                                            target: no slower
W3      100 of 20,000 files modified (median of 3, other files each time)       target: >= 3x faster
W4      64 MiB file, 1 MiB rewritten mid-file (median of 3; bytes at a proxy)    target: >= 4x faster, <= 2 MiB

Debian's csync2 is installed with apt-get when missing (root only). Every workload starts from fresh
trees and databases; csync2 runs as in ../shared/csync2-compat.md section 6 (loopback addresses as host
names, one -D directory, CSYNC2_SYSTEM_DIR).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from delay_proxy import DelayProxy, Route

from shoal.testing.cluster import Cluster, free_port

IPS = ("127.2.1.1", "127.2.1.2", "127.2.1.3")
PROXY_IPS = ("127.3.1.1", "127.3.1.2", "127.3.1.3")
CSYNC2_PORT = 30865


def csync2_binary() -> str:
    found = shutil.which("csync2") or ("/usr/sbin/csync2" if os.path.exists("/usr/sbin/csync2") else None)
    if found:
        return found
    if os.geteuid() != 0:
        sys.exit("csync2 is not installed (apt-get install csync2)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "csync2"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return shutil.which("csync2") or "/usr/sbin/csync2"


def make_files(root: Path, count: int, dirs: int = 20, size: int = 1024) -> list[Path]:
    out = []
    for i in range(count):
        d = root / f"d{i % dirs:02d}"
        d.mkdir(parents=True, exist_ok=True)
        p = d / f"f{i:05d}.dat"
        p.write_bytes(os.urandom(size))
        out.append(p)
    return out


def timed(fn) -> float:  # type: ignore[no-untyped-def]
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


class Csync2Env:
    def __init__(self, base: Path, binary: str, via_proxy: bool = False) -> None:
        self.base, self.bin = base, binary
        self.etc, self.db = base / "etc", base / "db"
        self.trees = [base / f"n{i + 1}" for i in range(3)]
        for p in (self.etc, self.db, *self.trees):
            p.mkdir(parents=True)
        subprocess.run([binary, "-k", str(self.etc / "k.key")], check=True, capture_output=True)
        hosts = IPS[0] + " " + " ".join(f"{ip}@{PROXY_IPS[i + 1]}" if via_proxy else ip for i, ip in enumerate(IPS[1:]))
        prefix = " ".join(f"on {ip}: {t};" for ip, t in zip(IPS, self.trees, strict=True))
        (self.etc / "csync2.cfg").write_text(
            f"nossl * *;\ngroup g {{ host {hosts}; key {self.etc / 'k.key'}; include %root%; }}\n"
            f"prefix root {{ {prefix} }}\n"
        )
        self.env = {**os.environ, "CSYNC2_SYSTEM_DIR": str(self.etc)}
        self.daemons = [
            subprocess.Popen(
                [binary, "-N", ip, "-D", str(self.db), "-ii"],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for ip in IPS[1:]
        ]
        time.sleep(0.5)

    def push(self) -> None:
        r = subprocess.run(
            [self.bin, "-N", IPS[0], "-D", str(self.db), "-x"], env=self.env, capture_output=True, text=True
        )
        if r.returncode != 0:
            raise RuntimeError(f"csync2 -x failed: {r.stderr[-2000:]}")

    def close(self) -> None:
        for d in self.daemons:
            d.terminate()
            d.wait(10)


class ShoalEnv:
    def __init__(self, base: Path, proxied: dict[str, int] | None = None, daemon: bool = False) -> None:
        self.cluster = Cluster(base, names=("alpha", "beta", "gamma"))
        self.trees = [self.cluster.nodes[n].data for n in ("alpha", "beta", "gamma")]
        self.config = self.cluster.config
        if proxied:  # alpha reaches beta and gamma through the proxy
            text = self.config.read_text()
            for name, port in proxied.items():
                node = self.cluster.nodes[name]
                text = text.replace(f"{name}@127.0.0.1:{node.port}", f"{name}@127.0.0.1:{port}")
            self.config = base / "alpha-via-proxy.cfg"
            self.config.write_text(text)
        for n in ("beta", "gamma"):
            self.cluster.start(n)
        self.daemon = daemon
        if daemon:  # alpha runs its daemon too; `shoal sync` hands the work to it
            self.cluster.start("alpha", config=self.config)

    def push(self) -> None:
        mode = [] if self.daemon else ["--standalone"]
        r = self.cluster.run("alpha", "sync", *mode, config=self.config, timeout=600)
        if r.returncode != 0:
            raise RuntimeError(f"shoal sync failed: {r.stdout[-2000:]} {r.stderr[-2000:]}")

    def close(self) -> None:
        self.cluster.close()


def check_same(trees: list[Path]) -> None:
    """Every tree holds the same files with the same contents (W3 and W4 change files in place, at the
    same size: comparing sizes would not see a change that was never sent)."""

    def snap(t: Path) -> set[tuple[str, str]]:
        return {
            (str(p.relative_to(t)), hashlib.blake2b(p.read_bytes(), digest_size=16).hexdigest())
            for p in t.rglob("*")
            if p.is_file()
        }

    first = snap(trees[0])
    for t in trees[1:]:
        if snap(t) != first:
            raise RuntimeError(f"{t} did not converge")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--wan-files", type=int, default=2000, help="files for W1-WAN (csync2 takes ~0.3 s each)")
    ap.add_argument("--skip-wan", action="store_true")
    ap.add_argument("--only", default="W1,W1-WAN,W2,W3,W4")
    ap.add_argument("--dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    only = set(args.only.split(","))
    binary = csync2_binary()
    # Measure an installed tool: compile shoal's modules once, as pip does for a regular install (this
    # environment sets PYTHONDONTWRITEBYTECODE, which would make every run compile them again).
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", str(Path(__file__).resolve().parents[1] / "src")], check=True
    )
    version = (
        subprocess.run(["dpkg-query", "-W", "-f", "${Version}", "csync2"], capture_output=True, text=True).stdout
        or "unknown version"
    )
    work = Path(tempfile.mkdtemp(prefix="shoal-vs-csync2-", dir=args.dir))
    rows: list[tuple[str, str, str, str, str, str, str]] = []

    def both(
        name: str,
        setup,
        run,
        target: str,
        *,
        via_proxy: bool = False,
        delay_s: float = 0.0,  # type: ignore[no-untyped-def]
        repeat: int = 1,
        unit: str = "s",
    ) -> None:
        results = {}
        for tool in ("csync2", "shoal", "shoal-daemon"):
            base = work / (re.sub(r"[^A-Za-z0-9-]", "_", name) + f"-{tool}")
            proxy = None
            if via_proxy and tool == "csync2":
                proxy = DelayProxy(
                    [Route((PROXY_IPS[i], CSYNC2_PORT), (IPS[i], CSYNC2_PORT), IPS[0]) for i in (1, 2)], delay_s
                )
                proxy.start()
            env: Csync2Env | ShoalEnv
            if tool == "csync2":
                env = Csync2Env(base, binary, via_proxy)
            else:
                ports = {n: free_port() for n in ("beta", "gamma")} if via_proxy else None
                env = ShoalEnv(base, ports, daemon=tool == "shoal-daemon")
                if ports:
                    proxy = DelayProxy(
                        [Route(("127.0.0.1", ports[n]), ("127.0.0.1", env.cluster.nodes[n].port)) for n in ports],
                        delay_s,
                    )
                    proxy.start()
            try:
                setup(env)
                if proxy is not None:
                    proxy.bytes_up = proxy.bytes_down = 0
                times = [timed(lambda env=env: run(env)) for _ in range(repeat)]
                check_same(env.trees)
                wire = (proxy.bytes_up + proxy.bytes_down) // repeat if proxy else None  # per run
                results[tool] = (statistics.median(times), wire)
            finally:
                env.close()
                if proxy is not None:
                    proxy.stop()
                shutil.rmtree(base, ignore_errors=True)  # the next tool starts on an empty /dev/shm too
            print(f"  {name} {tool}: {results[tool][0]:.3f} s", file=sys.stderr)
        c, s, d = (results[t][0] for t in ("csync2", "shoal", "shoal-daemon"))
        rows.append((name, f"{c:.3f} s", f"{s:.3f} s", f"{c / s:.1f}x", f"{d:.3f} s", f"{c / d:.1f}x", target))
        if results["shoal"][1] is not None:
            cb, sb, db = (results[t][1] or 0 for t in ("csync2", "shoal", "shoal-daemon"))
            mib = 2**20
            rows.append(
                (
                    f"{name} wire bytes",
                    f"{cb / mib:.2f} MiB",
                    f"{sb / mib:.2f} MiB",
                    f"{cb / sb:.1f}x",
                    f"{db / mib:.2f} MiB",
                    f"{cb / db:.1f}x",
                    "<= 2 MiB per peer" if name == "W4" else "",
                )
            )

    def push(env) -> None:  # type: ignore[no-untyped-def]
        env.push()

    try:
        if "W1" in only:
            both("W1", lambda env: make_files(env.trees[0], 2000), push, ">= 10x")
        if "W1-WAN" in only and not args.skip_wan:
            n = args.wan_files
            both(
                "W1-WAN" if n == 2000 else f"W1-WAN ({n} files)",
                lambda env: make_files(env.trees[0], n),
                push,
                ">= 100x",
                via_proxy=True,
                delay_s=0.010,
            )
        state: dict[str, list[Path]] = {}

        def big_setup(env) -> None:  # type: ignore[no-untyped-def]
            state["files"] = make_files(env.trees[0], 20_000, dirs=100)
            env.push()
            env.push()  # steady state: the second run settles what the first one started

        if "W2" in only:
            both("W2", big_setup, push, "no slower", repeat=5)
        if "W3" in only:
            runs = iter(range(3))

            def modify(env) -> None:  # type: ignore[no-untyped-def]
                k = next(runs, 0)  # another 100 files each run
                for p in state["files"][k::200][:100]:
                    p.write_bytes(os.urandom(1024))
                env.push()

            def w3_setup(env) -> None:  # type: ignore[no-untyped-def]
                nonlocal runs
                runs = iter(range(3))
                big_setup(env)

            both("W3", w3_setup, modify, ">= 3x", repeat=3)
        if "W4" in only:

            def w4_setup(env) -> None:  # type: ignore[no-untyped-def]
                (env.trees[0] / "big.img").write_bytes(os.urandom(64 << 20))
                env.push()
                env.push()

            def w4_run(env) -> None:  # type: ignore[no-untyped-def]
                with open(env.trees[0] / "big.img", "r+b") as f:
                    f.seek(32 << 20)
                    f.write(os.urandom(1 << 20))
                env.push()

            # Each run rewrites the same MiB with new bytes; the median of three, for every tool.
            both("W4", w4_setup, w4_run, ">= 4x", via_proxy=True, delay_s=0.0, repeat=3)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nshoal vs csync2 {version} in {args.dir}, {os.cpu_count()} cores; csync2 nossl, shoal TLS 1.3\n")
    print("one-shot: `shoal sync --standalone` does all the work in its own process")
    print("daemon:   `shoal sync` hands the work to the node's running daemon over its control socket\n")
    print(f"{'workload':<26} {'csync2':>11} {'one-shot':>11} {'ratio':>7} {'daemon':>11} {'ratio':>7}  target")
    print("-" * 96)
    for r in rows:
        print(f"{r[0]:<26} {r[1]:>11} {r[2]:>11} {r[3]:>7} {r[4]:>11} {r[5]:>7}  {r[6]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
