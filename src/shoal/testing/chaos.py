"""Fault campaigns against live clusters: a random workload on every node while daemons are SIGKILLed
and restarted (crash campaign) or links are cut and healed (partition campaign), a sampler that looks
at the managed trees throughout, and the checks at the end. Used by bench/chaos.py (the full campaigns)
and by the test suite (short ones).

The workload. Each node runs a writer thread with a directory of its own, ``n-<node>/``, where only it
creates, overwrites, renames and deletes files (sizes from empty to a few MiB, so transfers are in flight
when a fault hits); it keeps a model of what that directory must end up holding. All writers also
overwrite a few shared files, ``shared/s<k>``, so concurrent edits meet (the group runs ``auto younger``:
the loser is kept). Every write goes to a ``.swp`` name (excluded) and is renamed into place, so a
partial file at a managed path can only come from shoal. Every version written is put in a ledger
*before* it becomes visible, with the contents the writer saw at that path just before (its base).

The checks.
- Throughout (the sampler): every regular file at a managed path holds a version some writer wrote;
  anything else is a torn or foreign file.
- At the end, faults healed: the trees converge, byte for byte and in metadata; each node's own
  directory holds exactly the writer's model, on every node (no lost write, no resurrected delete);
  every version written to a shared file is the final one, or was seen by a later write (overwritten
  knowingly), or is kept in a conflict store.
"""

from __future__ import annotations

import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import blake3

from shoal.fs.apply import AT_FDCWD, RENAME_EXCHANGE, renameat2
from shoal.fs.keep import STORE_DIR
from shoal.testing.cluster import Cluster
from shoal.testing.netns import NetnsCluster

SHARED = 6  #: shared files every writer overwrites


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _replace_seeing(tmp: Path, path: Path) -> str | None:
    """Rename ``tmp`` over ``path`` and return the digest of what it replaced (None: nothing). One
    atomic exchange (renameat2), so a version a daemon put at ``path`` a moment before cannot slip by
    unseen, as it could between reading ``path`` and renaming: a user's blind overwrite, not a loss."""
    try:
        renameat2(AT_FDCWD, str(tmp), str(path), RENAME_EXCHANGE)
    except FileNotFoundError:
        os.replace(tmp, path)  # nothing there yet
        return None
    old = _read_digest(tmp)  # now under the excluded temp name
    tmp.unlink()
    return old


def _read_digest(path: Path) -> str | None:
    try:
        return _digest(path.read_bytes())
    except OSError:
        return None


@dataclass
class Ledger:
    """Every version any writer made visible, and what each shared write overwrote."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    digests: set[str] = field(default_factory=lambda: {_digest(b"")})
    #: rel -> [(digest, node, when written: time.time(), shoal's content hash (BLAKE3) in hex, for the logs)]
    shared: dict[str, list[tuple[str, str, float, str]]] = field(default_factory=dict)
    seen_as_base: set[str] = field(default_factory=set)
    writes: int = 0
    unseen: int = 0  #: shared writes whose rename replaced a version other than the one read before

    def add(self, digest: str) -> None:
        with self.lock:
            self.digests.add(digest)
            self.writes += 1


class Writer(threading.Thread):
    """One node's workload (see the module docstring)."""

    def __init__(self, cluster: Cluster, node: str, seed: int, ledger: Ledger, stop: threading.Event) -> None:
        super().__init__(name=f"writer-{node}", daemon=True)
        self.c, self.node, self.rng, self.ledger, self.stop = cluster, node, random.Random(seed), ledger, stop
        self.root = cluster.nodes[node].data
        self.own = f"n-{node}"
        self.model: dict[str, str] = {}  # rel path in own dir -> digest
        self.error: BaseException | None = None
        self.counter = 0

    def _size(self) -> int:
        x = self.rng.random()
        if x < 0.6:
            return self.rng.randrange(0, 4096)
        if x < 0.95:
            return self.rng.randrange(4096, 256 << 10)
        return self.rng.randrange(1 << 20, 4 << 20)

    def _put(self, rel: str, data: bytes) -> None:
        """Write ``data`` at ``rel`` through a .swp name and a rename."""
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{self.counter}.swp")
        self.counter += 1
        tmp.write_bytes(data)
        self.ledger.add(_digest(data))
        os.replace(tmp, path)

    def step(self) -> None:
        rng = self.rng
        op = rng.random()
        own = sorted(self.model)
        if op < 0.15:  # a shared file: note what it held, then overwrite it
            rel = f"shared/s{rng.randrange(SHARED)}"
            path = self.root / rel
            data = f"{self.node} {time.time_ns()} ".encode() + rng.randbytes(rng.randrange(0, 2048))
            before = _read_digest(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.{self.counter}.swp")
            self.counter += 1
            tmp.write_bytes(data)
            digest = _digest(data)
            self.ledger.add(digest)
            replaced = _replace_seeing(tmp, path)  # exactly what the rename replaced (the daemon may
            with self.ledger.lock:  # have put a peer's version there just before)
                entry = (digest, self.node, time.time(), blake3.blake3(data).hexdigest())
                self.ledger.shared.setdefault(rel, []).append(entry)
                self.ledger.seen_as_base.update(d for d in (before, replaced) if d is not None)
                self.ledger.unseen += replaced != before
        elif op < 0.55 or len(own) < 5:  # a new file
            rel = f"{self.own}/d{rng.randrange(4)}/f{self.counter}"
            data = rng.randbytes(self._size())
            self._put(rel, data)
            self.model[rel] = _digest(data)
        elif op < 0.8:  # overwrite one of ours
            rel = rng.choice(own)
            data = rng.randbytes(self._size())
            self._put(rel, data)
            self.model[rel] = _digest(data)
        elif op < 0.9:  # rename one of ours
            rel = rng.choice(own)
            new = f"{self.own}/d{rng.randrange(4)}/r{self.counter}"
            self.counter += 1
            (self.root / new).parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.root / rel, self.root / new)
            self.model[new] = self.model.pop(rel)
        else:  # delete one of ours
            rel = rng.choice(own)
            os.unlink(self.root / rel)
            del self.model[rel]

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                self.step()
                time.sleep(self.rng.expovariate(1 / 0.02))  # about 50 operations a second
        except BaseException as e:  # reported by the campaign
            self.error = e


class Sampler(threading.Thread):
    """Walks every node's tree over and over: a file at a managed path must hold a written version."""

    def __init__(self, cluster: Cluster, ledger: Ledger, stop: threading.Event) -> None:
        super().__init__(name="sampler", daemon=True)
        self.c, self.ledger, self.stop = cluster, ledger, stop
        self.samples = 0  #: files looked at
        self.sweeps = 0
        self.torn: list[str] = []

    def run(self) -> None:
        while not self.stop.is_set():
            for name, node in self.c.nodes.items():
                for dirpath, _, files in os.walk(node.data):
                    for f in files:
                        if f.startswith(".shoal-tmp.") or f.endswith(".swp"):
                            continue
                        full = Path(dirpath, f)
                        digest = _read_digest(full)
                        self.samples += 1
                        if digest is not None and digest not in self.ledger.digests:
                            with self.ledger.lock:  # it may have been added just now
                                known = digest in self.ledger.digests
                            if not known and _read_digest(full) == digest:
                                self.torn.append(f"{name}:{full.relative_to(node.data)}")
            self.sweeps += 1


@dataclass
class Report:
    campaign: str
    faults: int = 0  #: kills or cuts made
    mid_transfer: int = 0  #: faults that hit while a temp file was being written somewhere
    writes: int = 0
    samples: int = 0
    sweeps: int = 0
    torn: list[str] = field(default_factory=list)  #: files seen at a managed path holding no written version
    converged_s: float | None = None  #: from the last heal to identical trees (None: never)
    own_mismatches: list[str] = field(default_factory=list)  #: a writer's model not met on some node
    shared_versions: int = 0
    lost: list[str] = field(default_factory=list)  #: shared versions neither final, overwritten knowingly, nor kept
    kept: int = 0  #: versions found in conflict stores
    unseen: int = 0  #: shared writes that replaced a version their writer had not read (see Ledger)
    leftover_temps: int = 0  #: shoal temp files left at the end (a later scan removes them once old)
    writer_errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    notes_counts: dict[str, int] = field(default_factory=dict)  #: faults by kind
    live_drift: list[str] = field(default_factory=list)  #: differences live mode left, settled by a full verify

    @property
    def failures(self) -> int:
        return (
            len(self.torn)
            + len(self.own_mismatches)
            + len(self.lost)
            + len(self.writer_errors)
            + (self.converged_s is None)
        )


def _kept_digests(c: Cluster) -> set[str]:
    out: set[str] = set()
    for node in c.nodes.values():
        for dirpath, _, files in os.walk(node.state / STORE_DIR):
            for f in files:
                d = _read_digest(Path(dirpath, f))
                if d is not None:
                    out.add(d)
    return out


def _content(c: Cluster, name: str) -> dict[str, tuple[object, ...]]:
    return {k: v for k, v in c.tree(name).items() if not k.endswith(".swp")}


def wait_converged(c: Cluster, timeout_s: float) -> float | None:
    """Seconds until every node's tree is the same (content and metadata), or None at the timeout."""
    t0 = time.monotonic()
    names = list(c.nodes)
    while time.monotonic() - t0 < timeout_s:
        try:
            trees = [_content(c, n) for n in names]
        except OSError:  # a file went away mid-walk: not settled yet
            trees = []
        if trees and all(t == trees[0] for t in trees[1:]):
            return time.monotonic() - t0
        time.sleep(0.5)
    return None


def _differences(c: Cluster, attempts: int = 20) -> list[str]:
    """What differs between the trees now (the daemons may still be applying: a file that goes away
    mid-walk means walking again)."""
    for _ in range(attempts - 1):
        try:
            return _differences_once(c)
        except OSError:
            time.sleep(0.5)
    return _differences_once(c)


def _differences_once(c: Cluster) -> list[str]:
    names = list(c.nodes)
    first = _content(c, names[0])
    out = []
    for n in names[1:]:
        other = _content(c, n)
        for k in sorted(set(first) | set(other)):
            if first.get(k) != other.get(k):
                out.append(f"{names[0]} vs {n}: {k}: {first.get(k)} / {other.get(k)}")
    return out


def _temps_somewhere(c: Cluster) -> bool:
    return any(c.temp_files(n) for n in c.nodes)


def run_campaign(
    c: Cluster,
    fault: Callable[[random.Random, Report], None],
    heal: Callable[[], None],
    *,
    campaign: str,
    rounds: int,
    seed: int,
    settle_s: float = 60.0,
    progress: Callable[[str], None] = lambda _: None,
) -> Report:
    """Start every daemon live, run the workload, call ``fault`` ``rounds`` times, heal, check."""
    report = Report(campaign)
    ledger = Ledger()
    stop = threading.Event()
    for n in c.nodes:
        c.start(n, watch=True)
    writers = [Writer(c, n, seed * 100 + i, ledger, stop) for i, n in enumerate(c.nodes)]
    sampler = Sampler(c, ledger, stop)
    rng = random.Random(seed)
    for t in (*writers, sampler):
        t.start()
    try:
        for i in range(rounds):
            time.sleep(rng.uniform(0.05, 0.6))
            if _temps_somewhere(c):
                report.mid_transfer += 1
            fault(rng, report)
            report.faults += 1
            if (i + 1) % 10 == 0:
                progress(f"{campaign}: {i + 1}/{rounds} faults, {ledger.writes} writes")
    finally:
        stop.set()
        for t in (*writers, sampler):
            t.join(30)
        heal()
    for n in c.nodes:
        c.start(n, watch=True)
    report.converged_s = wait_converged(c, settle_s)
    if report.converged_s is None:
        # What the live daemons left different; then the full verify each node runs on its 'interval'
        # (here at once, as 'shoal sync') must settle it.
        report.live_drift = _differences(c)
        for _ in range(2):  # a verify can itself be the change the next one has to carry
            for n in c.nodes:
                c.sync(n, "--full")
            report.converged_s = wait_converged(c, settle_s / 2)
            if report.converged_s is not None:
                break
        if report.converged_s is None:
            report.notes.extend(_differences(c)[:20])
    report.writes, report.unseen = ledger.writes, ledger.unseen
    report.samples, report.sweeps, report.torn = sampler.samples, sampler.sweeps, sampler.torn
    report.writer_errors = [f"{w.node}: {w.error!r}" for w in writers if w.error is not None]
    for w in writers:
        for name in c.nodes:
            root = c.nodes[name].data / w.own
            actual = {
                str(p.relative_to(c.nodes[name].data)): _read_digest(p)
                for p in root.rglob("*")
                if p.is_file() and not p.name.endswith(".swp") and not p.name.startswith(".shoal-tmp.")
            }
            for rel in sorted(set(actual) | set(w.model)):
                if actual.get(rel) != w.model.get(rel):
                    report.own_mismatches.append(f"{name}:{rel}: has {actual.get(rel)}, written {w.model.get(rel)}")
    kept = _kept_digests(c)
    report.kept = len(kept)
    first = next(iter(c.nodes))
    for rel, versions in ledger.shared.items():
        final = _read_digest(c.nodes[first].data / rel)
        for digest, node, when, content_hash in versions:
            report.shared_versions += 1
            if digest != final and digest not in ledger.seen_as_base and digest not in kept:
                at = time.strftime("%H:%M:%S", time.localtime(when)) + f".{int(when * 1000) % 1000:03d}"
                report.lost.append(
                    f"{rel}: {node}'s version {digest[:12]} (hash {content_hash[:12]} in logs), written at {at}"
                )
    report.leftover_temps = sum(len(c.temp_files(n)) for n in c.nodes)
    return report


def crash_fault(c: Cluster) -> Callable[[random.Random, Report], None]:
    """SIGKILL one daemon (half the time one that is writing a temp file: a receiver mid-transfer),
    restart it after up to half a second."""

    def fault(rng: random.Random, report: Report) -> None:
        busy = [n for n in c.nodes if c.temp_files(n)]
        name = rng.choice(busy) if busy and rng.random() < 0.5 else rng.choice(list(c.nodes))
        c.kill(name)
        time.sleep(rng.uniform(0, 0.5))
        c.start(name, watch=True)

    return fault


PARTITIONS = ("one pair", "one node isolated", "three-way split")


def partition_fault(c: NetnsCluster, kinds: tuple[str, ...] | None = None) -> Callable[[random.Random, Report], None]:
    """Cut links for 0.3 to 3 s while the workload goes on, then heal: one pair (40%), one node from
    both others (30%), or a three-way split where nobody reaches anybody (30%); with ``kinds``, those
    in turn instead."""
    names = list(c.nodes)
    turn = iter(range(1 << 30))

    def fault(rng: random.Random, report: Report) -> None:
        if kinds:
            kind = kinds[next(turn) % len(kinds)]
        else:
            x = rng.random()
            kind = PARTITIONS[0] if x < 0.4 else PARTITIONS[1] if x < 0.7 else PARTITIONS[2]
        if kind == PARTITIONS[0]:
            c.cut_pair(*rng.sample(names, 2))
        elif kind == PARTITIONS[1]:
            c.cut(rng.choice(names))
        else:
            for i, a in enumerate(names):
                for b in names[i + 1 :]:
                    c.cut_pair(a, b)
        report.notes_counts[kind] = report.notes_counts.get(kind, 0) + 1
        time.sleep(rng.uniform(0.3, 3.0))
        c.heal_all()

    return fault


def format_report(r: Report) -> str:
    rows = [
        ("faults", f"{r.faults}" + "".join(f", {k}: {v}" for k, v in sorted(r.notes_counts.items()))),
        ("  of them while a transfer was in flight", r.mid_transfer),
        ("writes by the workload", r.writes),
        ("files sampled at managed paths", f"{r.samples} in {r.sweeps} sweeps"),
        ("torn or unknown files seen", len(r.torn)),
        ("converged after the last heal", "never" if r.converged_s is None else f"{r.converged_s:.1f} s"),
        ("  entries live mode left different (a full verify settled them)", len(r.live_drift)),
        ("own-directory mismatches", len(r.own_mismatches)),
        ("shared versions written", r.shared_versions),
        ("  lost (not final, not overwritten knowingly, not kept)", len(r.lost)),
        ("  kept in conflict stores", r.kept),
        ("  overwritten by a writer that had read an older one", r.unseen),
        ("temp files left (removed by a later scan)", r.leftover_temps),
        ("writer errors", len(r.writer_errors)),
        ("FAILURES", r.failures),
    ]
    width = max(len(k) for k, _ in rows)
    out = [f"{r.campaign}"] + [f"  {k:<{width}}  {v}" for k, v in rows]
    for what in (r.torn, r.own_mismatches, r.lost, r.writer_errors, r.live_drift, r.notes):
        out += [f"    {x}" for x in what[:20]]
    return "\n".join(out)
