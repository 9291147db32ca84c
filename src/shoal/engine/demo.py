"""``shoal demo``: a 3-node cluster on loopback in a temporary directory, syncing for real.

Owns: building a throw-away cluster (config, group key, node identities, data directories, two daemons
as separate processes on 127.0.0.1) from the embedded defaults, showing files travel with measured
latencies and a concurrent edit being caught, then stopping everything and removing the directory.
Live watching (changes travel without ``sync``) joins the demo with the live-mode issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

from shoal.config.describe import describe_group
from shoal.engine.replica import Replica
from shoal.engine.sync import sync_once
from shoal.fs.config_source import load_node_config
from shoal.fs.keyfile import write_key_file
from shoal.net.identity import create_identity, format_fingerprint
from shoal.state.db import ensure_state_dir

NODES = ("alpha", "beta", "gamma")

CONFIG_TEMPLATE = """\
# A three-node shoal cluster on one machine: each node has its own port, state directory and (through
# the 'data' prefix) its own copy of the synchronized tree.
group demo {{
    host alpha@127.0.0.1:{port_alpha} beta@127.0.0.1:{port_beta} gamma@127.0.0.1:{port_gamma};
    key demo.key;
    include %data%;
    exclude *.swp *~ %data%/cache;
    delay 50ms;
}}
prefix data {{
    on alpha: {root}/alpha/data;
    on beta:  {root}/beta/data;
    on gamma: {root}/gamma/data;
}}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_listening(port: int, proc: subprocess.Popen[bytes], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"a demo daemon exited early with status {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.05)
    raise RuntimeError("a demo daemon did not start listening in time")


def _live_writes(src: str, dst: str, count: int, timeout_s: float = 5.0) -> list[float]:
    """Write ``count`` small files in ``src`` one after another; the time each took to show up in ``dst``."""
    out = []
    os.makedirs(os.path.join(src, "live"), exist_ok=True)
    for i in range(count):
        body = f"live write {i}\n"
        with open(os.path.join(src, "live", f"w{i:02d}.txt"), "w", encoding="utf-8") as f:
            f.write(body)
        t0 = time.perf_counter()
        target = os.path.join(dst, "live", f"w{i:02d}.txt")
        while not _holds(target, body):
            if time.perf_counter() - t0 > timeout_s:
                return []
            time.sleep(0.002)
        out.append(time.perf_counter() - t0)
        time.sleep(0.03)
    return out


def _shoal(cfg_path: str, root: str, node: str, *args: str) -> list[str]:
    """The command line of ``shoal`` acting as ``node`` of the demo cluster."""
    return [
        sys.executable,
        "-m",
        "shoal",
        "-c",
        cfg_path,
        "-N",
        node,
        "--state-dir",
        os.path.join(root, node, "state"),
        *args,
    ]


def _holds(path: str, text: str) -> bool:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read() == text
    except OSError:
        return False


def run_demo(say: Callable[[str], None], keep: bool = False) -> int:
    # The demo narrates the conflict itself; the engine's warning about it would only repeat it.
    logging.getLogger("shoal").setLevel(logging.ERROR)
    root = tempfile.mkdtemp(prefix="shoal-demo-")
    daemons: list[subprocess.Popen[bytes]] = []
    try:
        ports = {n: _free_port() for n in NODES}
        cfg_path = os.path.join(root, "shoal.cfg")
        with open(cfg_path, "w", encoding="utf-8") as f:
            f.write(CONFIG_TEMPLATE.format(root=root, **{f"port_{n}": p for n, p in ports.items()}))
        write_key_file(os.path.join(root, "demo.key"))
        say(f"cluster laid out in {root}")
        for node in NODES:
            state = os.path.join(root, node, "state")
            ensure_state_dir(state)
            os.makedirs(os.path.join(root, node, "data"))
            ident = create_identity(state, node)
            say(f"  {node:<6} 127.0.0.1:{ports[node]:<5}  fingerprint {format_fingerprint(ident.fingerprint)[:23]}...")
        cfg = load_node_config(cfg_path, "alpha")
        say("")
        for line in describe_group(cfg, cfg.groups[0]):
            say("  " + line)

        for node in ("beta", "gamma"):
            log = open(os.path.join(root, f"{node}.log"), "wb")  # noqa: SIM115 (closed with the process)
            proc = subprocess.Popen(
                _shoal(cfg_path, root, node, "daemon"),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
            log.close()
            daemons.append(proc)
            _wait_listening(ports[node], proc)
        say("")
        say("beta and gamma run 'shoal daemon': separate processes, TLS 1.3, mutual key proofs, watching their trees")

        data = {n: os.path.join(root, n, "data") for n in NODES}
        os.makedirs(os.path.join(data["alpha"], "site", "css"))
        os.makedirs(os.path.join(data["alpha"], "cache"))
        files = {
            "site/index.html": "<h1>hello from alpha</h1>\n",
            "site/css/main.css": "h1 { color: teal }\n",
            "site/index.html.swp": "editor junk\n",
            "cache/tmp.bin": "not synchronized\n",
        }
        for rel, text in files.items():
            with open(os.path.join(data["alpha"], rel), "w", encoding="utf-8") as f:
                f.write(text)
        os.symlink("index.html", os.path.join(data["alpha"], "site", "home.html"))
        say("alpha wrote site/index.html, site/css/main.css, a symlink, an editor swap file and cache/tmp.bin")

        async def alpha_sync() -> tuple[float, object]:
            replica = await Replica.open(cfg, os.path.join(root, "alpha", "state"))
            try:
                t0 = time.perf_counter()
                report = await sync_once(replica)
                return time.perf_counter() - t0, report
            finally:
                await replica.close()

        failures: list[str] = []
        took, _ = asyncio.run(alpha_sync())
        say(f"'shoal sync' on alpha took {took * 1000:.0f} ms:")
        for node in ("beta", "gamma"):
            for rel in ("site/index.html", "site/css/main.css", "site/home.html"):
                here = os.path.join(data[node], rel)
                ok = os.path.islink(here) if rel.endswith("home.html") else _holds(here, files[rel])
                say(f"  {node:<6} {rel:<20} {'ok' if ok else 'MISSING'}")
                if not ok:
                    failures.append(f"{rel} did not arrive on {node}")
            leaked = [p for p in ("site/index.html.swp", "cache") if os.path.lexists(os.path.join(data[node], p))]
            say(f"  {node:<6} *.swp and cache/ {'stayed on alpha (excluded)' if not leaked else 'LEAKED'}")
            failures += [f"excluded {p} reached {node}" for p in leaked]

        # Live: beta's daemon watches its tree; a file written there appears on gamma with no command at all.
        say("")
        latencies = _live_writes(data["beta"], data["gamma"], 20)
        if latencies:
            ms = sorted(x * 1000 for x in latencies)
            say(
                f"live: 20 files written on beta appeared on gamma by themselves: "
                f"median {ms[len(ms) // 2]:.0f} ms, slowest {ms[-1]:.0f} ms (write -> visible with its content)"
            )
        else:
            failures.append("live writes on beta did not reach gamma")
            say("live: writes on beta did NOT reach gamma")

        # A concurrent edit: alpha and beta change the same file before they talk again.
        for node, text in (("alpha", "<h1>alpha's edit</h1>\n"), ("beta", "<h1>beta's edit</h1>\n")):
            with open(os.path.join(data[node], "site", "index.html"), "w", encoding="utf-8") as f:
                f.write(text)
        subprocess.run(
            _shoal(cfg_path, root, "beta", "check"),
            capture_output=True,
            check=True,
        )
        _, report = asyncio.run(alpha_sync())
        conflicts = sorted({p for s in report.sessions for p in (*s.conflicts, *s.peer_conflicts)})  # type: ignore[attr-defined]
        say("")
        say(f"alpha and beta both edited site/index.html: conflict detected on {', '.join(conflicts) or 'nothing'}")
        if conflicts != ["%data%/site/index.html"]:
            failures.append(f"expected one conflict on %data%/site/index.html, saw {conflicts}")
        for node in ("alpha", "beta"):
            with open(os.path.join(data[node], "site", "index.html"), encoding="utf-8") as f:
                say(f"  {node:<6} keeps {f.read().strip()}")
        say("  (the group's policy is 'auto none': both versions stay until an admin decides)")
        index_alpha = os.path.join(data["alpha"], "site", "index.html")
        t0 = time.perf_counter()
        resolved = subprocess.run(
            _shoal(cfg_path, root, "alpha", "resolve", index_alpha, "--keep", "local"),
            capture_output=True,
            text=True,
            check=False,
        )
        took_ms = (time.perf_counter() - t0) * 1000
        say(f"alpha's admin ran 'shoal resolve {index_alpha} --keep local' ({took_ms:.0f} ms, a new process):")
        if resolved.returncode != 0:
            failures.append(f"resolve failed: {resolved.stdout}{resolved.stderr}")
        for node in NODES:
            ok = _holds(os.path.join(data[node], "site", "index.html"), "<h1>alpha's edit</h1>\n")
            say(f"  {node:<6} {'holds alpha' + chr(39) + 's edit' if ok else 'DIFFERS'}")
            if not ok:
                failures.append(f"{node} did not take the resolution")
        kept = subprocess.run(
            _shoal(cfg_path, root, "beta", "conflicts"), capture_output=True, text=True, check=False
        ).stdout
        copy = next((line.split("copy: ", 1)[1] for line in kept.splitlines() if "copy: " in line), None)
        say(f"  beta's own edit is kept at {copy}" if copy else "  beta's own edit: NOT KEPT")
        if copy is None or not _holds(copy, "<h1>beta's edit</h1>\n"):
            failures.append("beta's losing version was not kept")
        say("")
        say("stopping the daemons and removing the cluster")
        for failure in failures:
            say(f"DEMO FAILED: {failure}")
        return 1 if failures else 0
    finally:
        for proc in daemons:
            proc.send_signal(signal.SIGTERM)
        for proc in daemons:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if keep:
            say(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
