"""Live mode: daemons that watch (real inotify) and send changes with no 'shoal sync' at all."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from shoal.engine import daemon
from shoal.engine import replica as replica_mod
from shoal.engine.live import HOLD_MAX_S, Live
from shoal.engine.replica import Replica
from shoal.fs.config_source import load_node_config
from shoal.testing.cluster import Cluster
from shoal.testing.waiting import eventually

NAMES = ("alpha", "beta", "gamma")


def live(cluster: Cluster, *names: str) -> None:
    for n in names or NAMES:
        cluster.start(n, watch=True)


def same_trees(cluster: Cluster, names: tuple[str, ...] = NAMES) -> bool:
    first = {k: v[:3] for k, v in cluster.tree(names[0]).items() if k != "."}
    return all({k: v[:3] for k, v in cluster.tree(n).items() if k != "."} == first for n in names[1:])


def status(cluster: Cluster, name: str) -> dict[str, object]:
    return json.loads(cluster.run(name, "status", "--json").stdout)  # type: ignore[no-any-return]


def test_a_write_reaches_the_other_nodes_without_sync(cluster: Cluster) -> None:
    live(cluster)
    a = cluster.nodes["alpha"].data
    (a / "hello.txt").write_text("hello\n")
    for n in ("beta", "gamma"):
        target = cluster.nodes[n].data / "hello.txt"
        eventually(lambda t=target: t.read_text() == "hello\n", what=f"hello.txt on {n}")
    # and back: an edit on gamma reaches alpha and beta
    (cluster.nodes["gamma"].data / "hello.txt").write_text("edited on gamma\n")
    eventually(lambda: (a / "hello.txt").read_text() == "edited on gamma\n", what="gamma's edit on alpha")
    eventually(lambda: same_trees(cluster), what="equal trees")


def test_mkdir_p_and_fill_races_and_mass_renames(cluster: Cluster) -> None:
    live(cluster, "alpha", "beta")
    a = cluster.nodes["alpha"].data
    deep = a / "x" / "y" / "z"
    deep.mkdir(parents=True)  # files land in directories created moments before: nothing is missed
    for i in range(50):
        (deep / f"f{i}").write_text(str(i))
        (a / "x" / f"g{i}").write_text(str(i))
    eventually(lambda: same_trees(cluster, ("alpha", "beta")), what="the new tree on beta")
    os.rename(a / "x", a / "renamed")  # a whole tree moves
    for i in range(50):  # and files move between directories
        os.rename(a / "renamed" / "y" / "z" / f"f{i}", a / "renamed" / f"moved{i}")
    eventually(lambda: same_trees(cluster, ("alpha", "beta")), what="the renamed tree on beta")
    b = cluster.nodes["beta"].data
    assert not (b / "x").exists() and (b / "renamed" / "moved7").read_text() == "7"


@pytest.fixture
def small_inotify_queue() -> Iterator[None]:
    knob = Path("/proc/sys/fs/inotify/max_queued_events")
    if os.geteuid() != 0:
        pytest.skip("needs root to shrink fs.inotify.max_queued_events")
    old = knob.read_text()
    knob.write_text("32\n")
    try:
        yield
    finally:
        knob.write_text(old)


def test_queue_overflow_rescans_without_losing_anything(cluster: Cluster, small_inotify_queue: None) -> None:
    live(cluster, "alpha", "beta")  # alpha's inotify instance gets the 32-event queue
    a = cluster.nodes["alpha"].data
    for i in range(400):
        (a / f"burst{i}").write_text(f"{i}\n")
    eventually(lambda: same_trees(cluster, ("alpha", "beta")), what="all 400 files on beta")
    daemon = status(cluster, "alpha")["daemon"]
    assert isinstance(daemon, dict) and daemon["overflows"] >= 1


def test_applied_changes_do_not_bounce_back(cluster: Cluster) -> None:
    live(cluster, "alpha", "beta")
    a = cluster.nodes["alpha"].data
    for i in range(200):
        (a / f"f{i}").write_text(str(i))
    eventually(lambda: same_trees(cluster, ("alpha", "beta")), what="the burst on beta")
    time.sleep(0.5)  # let beta's watcher see its own writes
    beta = status(cluster, "beta")["daemon"]
    assert isinstance(beta, dict)
    assert beta["events"] > 0  # beta did see the files it wrote...
    assert beta["batches"].get("changes", 0) == 0  # type: ignore[attr-defined]  # ...but started no sync for them
    assert "changes: synced" not in cluster.log_text("beta")


def test_a_node_catches_up_after_restart_and_a_new_node_gets_everything(cluster: Cluster) -> None:
    live(cluster, "alpha", "beta")
    a = cluster.nodes["alpha"].data
    (a / "before").write_text("before\n")
    eventually(lambda: (cluster.nodes["beta"].data / "before").exists(), what="before on beta")
    cluster.stop("beta")
    (a / "while-down").write_text("while beta was down\n")
    time.sleep(0.3)
    cluster.start("beta", watch=True)
    eventually(lambda: (cluster.nodes["beta"].data / "while-down").exists(), what="catch-up on beta")
    cluster.start("gamma", watch=True)  # never synced before: an empty node
    eventually(lambda: same_trees(cluster), what="everything on the new node")


def test_status_json(cluster: Cluster) -> None:
    live(cluster, "alpha")
    s = status(cluster, "alpha")
    assert s["node"] == "alpha" and set(s["lag"]) == {"beta", "gamma"}  # type: ignore[arg-type]
    (cluster.nodes["alpha"].data / "unsent").write_text("beta and gamma are down\n")
    eventually(lambda: status(cluster, "alpha")["lag"]["beta"] >= 1, what="a change beta lacks")  # type: ignore[index]
    s = status(cluster, "alpha")
    assert 0 <= s["lag_seconds"]["beta"] < 60  # type: ignore[index]
    d = s["daemon"]
    assert isinstance(d, dict)
    for key in ("pid", "listening", "watching", "watches", "queue", "events", "overflows", "peers", "last_full_scan"):
        assert key in d, key
    assert d["watching"] is True and d["watches"] >= 1
    assert set(d["peers"]) == {"beta", "gamma"}  # type: ignore[arg-type]
    assert d["peers"]["beta"]["down"] is True  # type: ignore[index]  # beta runs no daemon
    r = cluster.run("beta", "status")
    assert r.returncode == 1 and "no daemon running" in r.stdout


def test_sync_through_a_watching_daemon_sends_what_was_just_written(cluster: Cluster) -> None:
    live(cluster, "alpha")
    cluster.start("beta")  # passive: only what alpha sends arrives
    time.sleep(0.3)
    a = cluster.nodes["alpha"].data
    for i in range(20):
        (a / f"w{i}").write_text(f"{i}\n")
        r = cluster.sync("alpha", "--peer", "beta")  # the daemon scans only what its watcher reported
        assert r.returncode == 0, r.stdout + r.stderr
        assert (cluster.nodes["beta"].data / f"w{i}").read_text() == f"{i}\n"


def test_sighup_reloads_the_config_and_a_broken_one_is_refused(cluster: Cluster) -> None:
    live(cluster, "alpha", "beta")
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    (a / "before.tmp").write_text("synced: *.tmp is not excluded yet\n")
    eventually(lambda: (b / "before.tmp").exists(), what="before.tmp on beta")
    cluster.write_config("exclude *.tmp;")
    proc = cluster.nodes["alpha"].proc
    assert proc is not None
    proc.send_signal(signal.SIGHUP)
    eventually(lambda: "SIGHUP: config reloaded" in cluster.log_text("alpha"), what="the reload")
    (a / "after.tmp").write_text("excluded now\n")
    (a / "after.txt").write_text("still synced\n")
    eventually(lambda: (b / "after.txt").exists(), what="after.txt on beta")
    time.sleep(0.3)
    assert not (b / "after.tmp").exists()
    # a config with an error: logged, the running one stays, the daemon keeps serving
    good = cluster.config.read_text()
    cluster.config.write_text(good.replace("key ", "kye "))
    proc.send_signal(signal.SIGHUP)
    eventually(lambda: "the new config has errors" in cluster.log_text("alpha"), what="the refusal")
    (a / "still.txt").write_text("the daemon still runs\n")
    eventually(lambda: (b / "still.txt").exists(), what="still.txt on beta")
    assert proc.poll() is None


def test_prometheus_metrics_and_json_logs(cluster: Cluster) -> None:
    from shoal.testing.cluster import free_port

    port = free_port()
    cluster.top_extra = f"metrics-listen 127.0.0.1:{port};"
    cluster.write_config()
    live(cluster, "beta")
    cluster.start("alpha", watch=True)
    (cluster.nodes["alpha"].data / "m.txt").write_text("m\n")
    eventually(lambda: (cluster.nodes["beta"].data / "m.txt").exists(), what="m.txt on beta")
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        text = resp.read().decode()
    # alpha and beta share the config: beta got the port first; alpha says why it has no metrics and runs on
    assert "cannot serve metrics on 127.0.0.1" in cluster.log_text("alpha")
    assert 'shoal_up{node="beta"} 1' in text and "# TYPE shoal_peer_up gauge" in text
    assert 'shoal_peer_files_sent_total{peer="' in text
    assert "shoal_watches " in text and "shoal_open_conflicts 0" in text


def test_daemon_logs_as_json_lines(cluster: Cluster, tmp_path: Path) -> None:
    import subprocess

    node = cluster.nodes["alpha"]
    log_path = tmp_path / "alpha.jsonl"
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            [
                str(Path(os.sys.executable).parent / "shoal"),
                "-c",
                str(cluster.config),
                "-N",
                "alpha",  # type: ignore[attr-defined]
                "--state-dir",
                str(node.state),
                "-v",
                "daemon",
                "--log-format",
                "json",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        eventually(lambda: "listening on" in log_path.read_text(), what="the start-up line")
    finally:
        proc.terminate()
        assert proc.wait(30) == 0
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.strip()]
    assert lines and all({"ts", "level", "logger", "msg"} <= set(rec) for rec in lines)
    assert not any("BEGIN" in rec["msg"] or "key" in rec["msg"].lower().split() for rec in lines)


def test_live_daemons_keep_one_session_open_and_reconnect(cluster: Cluster) -> None:
    live(cluster, "alpha", "beta")
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data

    def linked(node: str, peer: str) -> bool:
        d = status(cluster, node)["daemon"]
        return isinstance(d, dict) and bool(d["peers"][peer]["linked"])  # type: ignore[index]

    eventually(lambda: linked("alpha", "beta") and linked("beta", "alpha"), what="a lasting session")
    handshakes = cluster.log_text("beta").count("authenticated") + cluster.log_text("alpha").count("authenticated")
    for i in range(10):
        (a / f"p{i}").write_text(f"{i}\n")
        eventually(lambda i=i: (b / f"p{i}").read_text() == f"{i}\n", what=f"p{i}")
    again = cluster.log_text("beta").count("authenticated") + cluster.log_text("alpha").count("authenticated")
    assert again == handshakes  # ten changes, no new session
    # alpha stops cleanly (exit 0), beta notices; alpha comes back and beta's next change reaches it over
    # a new session
    assert cluster.stop("alpha") == 0
    cluster.start("alpha", watch=True)
    (b / "after-restart").write_text("back\n")
    eventually(lambda: (a / "after-restart").read_text() == "back\n", what="beta's change on the restarted alpha")


def test_live_mode_that_fails_is_logged_and_restarted(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """A daemon whose live mode failed used to go on serving with its watcher gone, silently: every
    later local change stayed unsent until the next full verify. The failure is logged, shown by
    status, and live mode restarts with a full scan (which finds what changed meanwhile)."""
    real_run = Live.run
    runs = 0

    async def fails_once(self: Live, stop: asyncio.Event) -> None:
        nonlocal runs
        runs += 1
        if runs == 1:
            await asyncio.sleep(0.3)
            raise NotADirectoryError(20, "Not a directory", "injected")
        await real_run(self, stop)

    monkeypatch.setattr(Live, "run", fails_once)
    node = cluster.nodes["alpha"]
    written = node.data / "written-while-live-mode-was-down"

    async def scenario() -> None:
        replica = await Replica.open(load_node_config(str(cluster.config), "alpha"), str(node.state))
        ready = asyncio.Event()
        server = asyncio.create_task(daemon.serve(replica, ready=ready))
        try:
            await asyncio.wait_for(ready.wait(), 15)
            written.write_text("made while the watcher was gone\n")
            async with asyncio.timeout(20):
                while not (await replica.db(lambda db: db.get_records(["%d%/" + written.name]))):
                    await asyncio.sleep(0.1)
            assert runs == 2
            st = await asyncio.to_thread(cluster.run, "alpha", "status", "--json")
            d = json.loads(st.stdout)["daemon"]
            assert d["live_failures"] == 1 and "NotADirectoryError" in d["live_last_error"], d
            assert d["watching"] is True
        finally:
            os.kill(os.getpid(), signal.SIGTERM)  # the daemon's own handler: a clean stop
            await asyncio.wait_for(server, 30)
            await replica.close()

    with caplog.at_level("ERROR", logger="shoal.engine.daemon"):
        asyncio.run(scenario())
    assert any("live mode failed; restarting it" in r.getMessage() for r in caplog.records)


def test_sync_full_scans_what_the_watcher_did_not_report(cluster: Cluster) -> None:
    """'shoal sync' handed to a watching daemon scans only what the watcher reported; '--full' scans
    every tree, so it finds what no event announced (here: a record lost behind the daemon's back)."""
    live(cluster, "alpha")
    a = cluster.nodes["alpha"].data
    (a / "f").write_text("on disk\n")

    def recorded() -> bool:
        return any(r["path"] == "%d%/f" for r in json.loads(cluster.run("alpha", "ls", "--json").stdout))

    eventually(recorded, what="f recorded by the live scan")
    with closing(sqlite3.connect(cluster.nodes["alpha"].state / "state.db")) as db, db:
        db.execute("DELETE FROM records WHERE path = CAST('%d%/f' AS BLOB)")
    assert not recorded()
    r = cluster.sync("alpha")  # beta and gamma are down: exit 1, but the scan is reported
    assert "local:" not in r.stdout and not recorded(), r.stdout
    r = cluster.sync("alpha", "--full")
    assert "local: 1 new" in r.stdout and recorded(), r.stdout + r.stderr


def test_changes_at_paths_being_applied_wait_for_the_batch(cluster: Cluster) -> None:
    """A peer's batch renames its files into place and the watcher reports each one: scanned meanwhile
    they would only be skipped, over and over. They are held until the batch is done (or HOLD_MAX_S),
    and the other changes of the same moment go on at once."""
    node = cluster.nodes["alpha"]

    async def scenario() -> None:
        replica = await Replica.open(load_node_config(str(cluster.config), "alpha"), str(node.state))
        try:
            lv = Live(replica)
            applying, local = str(node.data / "from-peer"), str(node.data / "edited-here")
            replica.applying.add(applying)
            t0 = time.monotonic()
            assert lv._hold([applying, local], [str(node.data)], t0) == ([local], [str(node.data)])
            lv.agg.release(t0 + 0.1)  # the batch is still going: held
            assert lv.agg.take() == [] and lv.status()["queue"] == 1
            replica.applying.discard(applying)
            lv.agg.release(t0 + 0.2, early=True)  # as live mode does once batch_done is set
            assert lv.agg.take() == [applying] and lv.status()["queue"] == 0
            replica.applying.add(applying)  # a batch that lasts: held at most HOLD_MAX_S
            lv._hold([applying], [], t0)
            lv.agg.release(t0 + HOLD_MAX_S + 0.01)
            assert lv.agg.take() == [applying]
        finally:
            await replica.close()

    asyncio.run(scenario())


class _Session:
    """What ``Replica`` pokes: a lasting session's peer and its poke flag."""

    def __init__(self, peer: str) -> None:
        self.auth = type("Auth", (), {"peer": peer})()
        self.local_changed = asyncio.Event()


def test_records_taken_from_a_peer_are_forwarded_once_batches_pause(cluster: Cluster) -> None:
    """Local changes are poked about at once. Records taken from a peer are poked about to the other
    peers once batches stop arriving for FORWARD_QUIET_S (at most FORWARD_MAX_S after the first), and
    not to that peer; from several peers, to all of them."""
    node = cluster.nodes["alpha"]
    quiet, most = replica_mod.FORWARD_QUIET_S, replica_mod.FORWARD_MAX_S

    async def poked(sessions: dict[str, _Session], within: float) -> set[str]:
        async with asyncio.timeout(within):
            while not any(s.local_changed.is_set() for s in sessions.values()):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.05)
        got = {p for p, s in sessions.items() if s.local_changed.is_set()}
        for s in sessions.values():
            s.local_changed.clear()
        return got

    async def scenario() -> None:
        replica = await Replica.open(load_node_config(str(cluster.config), "alpha"), str(node.state))
        sessions = {p: _Session(p) for p in ("beta", "gamma", "delta")}
        replica.sessions = dict.fromkeys(sessions.values())  # type: ignore[arg-type]
        loop = asyncio.get_running_loop()
        try:
            replica.notify_changed()
            assert {p for p, s in sessions.items() if s.local_changed.is_set()} == set(sessions)
            for s in sessions.values():
                s.local_changed.clear()

            t0 = loop.time()
            replica.notify_forwarded("beta")
            assert not any(s.local_changed.is_set() for s in sessions.values())
            timer = replica._forward_timer
            assert timer is not None and abs(timer.when() - (t0 + quiet)) < 0.05
            replica.notify_forwarded("beta")  # another batch: the pause starts again
            assert replica._forward_timer is not timer and timer.cancelled()
            assert await poked(sessions, quiet + 2) == {"gamma", "delta"}

            # Batches that never pause: forwarded FORWARD_MAX_S after the first all the same.
            t0 = loop.time()
            replica.notify_forwarded("gamma")
            while loop.time() < t0 + most - quiet / 2:
                await asyncio.sleep(quiet / 5)
                replica.notify_forwarded("gamma")
            timer = replica._forward_timer
            early = any(s.local_changed.is_set() for s in sessions.values())  # a stall longer than the pause
            assert early or (timer is not None and timer.when() <= t0 + most + 0.01)
            assert await poked(sessions, quiet + 2) == {"beta", "delta"}

            replica.notify_forwarded("beta")
            replica.notify_forwarded("gamma")
            assert await poked(sessions, quiet + 2) == set(sessions)
        finally:
            await replica.close()

    asyncio.run(scenario())
