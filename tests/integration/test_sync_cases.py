"""Catch-up, forwarding, trust, conflicts and delta transfer with real daemons."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from shoal.net.identity import create_identity
from shoal.testing.cluster import Cluster


def test_offline_node_catches_up_after_restart(cluster: Cluster) -> None:
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    (a / "one").write_text("1")
    r = cluster.sync("alpha")  # gamma is down: converged with every *reachable* peer is success
    assert r.returncode == 0, r.stdout + r.stderr
    assert "gamma: unreachable: cannot connect to 127.0.0.1" in r.stdout
    (a / "two").write_text("2")
    (a / "one").unlink()
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    cluster.start("gamma")  # back online: it missed everything
    r = cluster.sync("gamma")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.tree("gamma") == cluster.tree("alpha") == cluster.tree("beta")


def test_changes_travel_through_a_middle_node(cluster: Cluster) -> None:
    # alpha only ever talks to beta, gamma only ever to beta: alpha's change still reaches gamma
    cluster.start("beta")
    (cluster.nodes["alpha"].data / "via-beta.txt").write_text("relayed")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    r = cluster.sync("gamma", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (cluster.nodes["gamma"].data / "via-beta.txt").read_text() == "relayed"
    assert cluster.tree("gamma") == cluster.tree("alpha")


def test_wrong_group_key_is_refused(cluster: Cluster, tmp_path: Path) -> None:
    cluster.start("beta")
    (cluster.nodes["alpha"].data / "secret").write_text("must not arrive")
    other_key = tmp_path / "other.key"
    other_key.write_text("B" * 64 + "\n")
    other_key.chmod(0o600)
    wrong = tmp_path / "wrong.cfg"
    wrong.write_text(cluster.config.read_text().replace(str(cluster.key), str(other_key)))
    r = cluster.run("alpha", "sync", "--peer", "beta", config=wrong)
    assert r.returncode == 1
    assert "beta refused us: wrong group key for group 'g'" in r.stdout
    assert not (cluster.nodes["beta"].data / "secret").exists()
    assert re.search(r"refused alpha at 127\.0\.0\.1: wrong group key for group 'g'", cluster.log_text("beta"))


def test_changed_certificate_is_refused_until_trust_reset(cluster: Cluster) -> None:
    cluster.start("beta")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0  # pins both ways
    alpha_state = cluster.nodes["alpha"].state
    for f in ("node.key", "node.crt"):
        os.unlink(alpha_state / f)
    create_identity(str(alpha_state), "alpha")  # alpha "reinstalled": new key and certificate
    (cluster.nodes["alpha"].data / "after-reinstall").write_text("x")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 1 and "beta refused us: certificate fingerprint does not match" in r.stdout
    assert "does not match the pinned" in cluster.log_text("beta")
    assert not (cluster.nodes["beta"].data / "after-reinstall").exists()
    assert cluster.run("beta", "trust", "--reset", "alpha").returncode == 0
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (cluster.nodes["beta"].data / "after-reinstall").exists()


def test_concurrent_edits_are_a_conflict_and_both_versions_stay(cluster: Cluster) -> None:
    cluster.start("beta")
    (cluster.nodes["alpha"].data / "shared.conf").write_text("original\n")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    cluster.stop("beta")
    (cluster.nodes["alpha"].data / "shared.conf").write_text("alpha's edit\n")
    (cluster.nodes["beta"].data / "shared.conf").write_text("beta's edit\n")
    assert cluster.run("beta", "check").returncode == 0
    cluster.start("beta")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 1
    assert "conflict: %d%/shared.conf" in r.stdout and "conflict on beta: %d%/shared.conf" in r.stdout
    assert (cluster.nodes["alpha"].data / "shared.conf").read_text() == "alpha's edit\n"
    assert (cluster.nodes["beta"].data / "shared.conf").read_text() == "beta's edit\n"
    pending = cluster.run("alpha", "pending", "--json")
    assert '"path": "%d%/shared.conf", "peer": "beta"' in pending.stdout


def test_delta_transfer_of_a_large_modified_file(cluster: Cluster) -> None:
    cluster.start("beta")
    big = cluster.nodes["alpha"].data / "big.img"
    big.write_bytes(os.urandom(16 << 20))
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    with open(big, "r+b") as f:
        f.seek(8 << 20)
        f.write(os.urandom(1 << 20))
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.tree("beta") == cluster.tree("alpha")
    sent = re.search(r"beta: received 0 files \(0 B\), 0 deletions; sent 1 files \(([\d.]+) MiB\)", r.stdout)
    assert sent is not None, r.stdout
    assert float(sent.group(1)) < 2.0  # 1 MiB rewritten in 16 MiB: about 1.2 MiB of chunks


def test_dry_run_changes_nothing(cluster: Cluster) -> None:
    cluster.start("beta")
    (cluster.nodes["beta"].data / "only-on-beta").write_text("b")
    assert cluster.run("beta", "check").returncode == 0
    r = cluster.sync("alpha", "--peer", "beta", "--dry-run")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "would apply: new path: %d%/only-on-beta" in r.stdout
    assert not (cluster.nodes["alpha"].data / "only-on-beta").exists()


def test_push_only_takes_nothing(cluster: Cluster) -> None:
    cluster.start("beta")
    (cluster.nodes["beta"].data / "from-beta").write_text("b")
    assert cluster.run("beta", "check").returncode == 0
    (cluster.nodes["alpha"].data / "from-alpha").write_text("a")
    assert cluster.sync("alpha", "--peer", "beta", "--push-only").returncode == 0
    assert (cluster.nodes["beta"].data / "from-alpha").exists()
    assert not (cluster.nodes["alpha"].data / "from-beta").exists()
    shutil.rmtree(cluster.nodes["gamma"].data)  # unused here


def test_sync_goes_through_the_local_daemon_when_it_runs(cluster: Cluster) -> None:
    for n in ("alpha", "beta"):
        cluster.start(n)
    sock = cluster.nodes["alpha"].state / "control.sock"
    assert oct(sock.stat().st_mode & 0o777) == "0o600"
    (cluster.nodes["alpha"].data / "via-daemon").write_text("d")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (cluster.nodes["beta"].data / "via-daemon").exists()
    assert "pinned beta's certificate" in cluster.log_text("alpha")  # the daemon dialled beta, not the CLI
    (cluster.nodes["alpha"].data / "standalone").write_text("s")
    assert cluster.sync("alpha", "--peer", "beta", "--standalone").returncode == 0
    assert (cluster.nodes["beta"].data / "standalone").exists()
    cluster.kill("alpha")  # leaves a stale socket behind: the CLI works alone
    assert sock.exists()
    (cluster.nodes["alpha"].data / "stale-socket").write_text("x")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (cluster.nodes["beta"].data / "stale-socket").exists()


def test_relative_paths_name_what_lies_below_the_callers_directory(cluster: Cluster) -> None:
    """Through the daemon (which runs in another directory) as much as in-process."""
    cluster.start("beta")
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    (a / "sub").mkdir()
    (a / "sub" / "alone").write_text("1")
    (a / "not-this").write_text("2")
    r = cluster.run("alpha", "sync", "--standalone", "--peer", "beta", "sub", cwd=a)
    assert r.returncode == 0, r.stdout + r.stderr
    assert (b / "sub" / "alone").read_text() == "1"
    assert not (b / "not-this").exists()
    cluster.start("alpha")
    (a / "sub" / "second").write_text("3")
    r = cluster.run("alpha", "sync", "--peer", "beta", "./second", cwd=a / "sub")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "beta: received 0 files (0 B), 0 deletions; sent 1 files (1 B)" in r.stdout
    assert (b / "sub" / "second").read_text() == "3"
    assert not (b / "not-this").exists()


def test_a_push_does_not_echo_back_but_a_reinstalled_node_gets_everything(cluster: Cluster) -> None:
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    for i in range(50):
        (a / f"f{i}").write_text(str(i))
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    r = cluster.run("alpha", "-vv", "sync", "--peer", "beta")
    batches = re.findall(r"batch of (\d+) records from beta", r.stderr)
    assert batches and sum(int(b) for b in batches) <= 1, batches  # at most beta's own root directory
    # a local deletion of a file that came from alpha still goes back to alpha
    cluster.start("alpha")
    (cluster.nodes["beta"].data / "f7").unlink()
    assert cluster.sync("beta", "--peer", "alpha").returncode == 0
    assert not (a / "f7").exists()
    # alpha loses its disk and its database: it gets its own files back from beta
    cluster.stop("alpha")
    shutil.rmtree(a)
    a.mkdir()
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        (cluster.nodes["alpha"].state / name).unlink(missing_ok=True)
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(p.name for p in a.iterdir()) == sorted(f"f{i}" for i in range(50) if i != 7)


def test_daemon_stops_cleanly_on_sigterm(cluster: Cluster) -> None:
    cluster.start("beta")
    sock = cluster.nodes["beta"].state / "control.sock"
    assert sock.exists()
    assert cluster.stop("beta") == 0
    assert not sock.exists()


def test_pending_lists_what_a_peer_has_not_taken(cluster: Cluster) -> None:
    a = cluster.nodes["alpha"].data
    (a / "waiting").write_text("w")
    assert cluster.run("alpha", "check").returncode == 0
    out = cluster.run("alpha", "pending").stdout
    assert "beta: 2 change(s) pending" in out and "%d%/waiting" in out  # the file and the root directory
    cluster.start("beta")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    # On first contact both nodes may merge their identical root directories concurrently; a merge made
    # here is a new version beta acknowledges at the next exchange. After that, nothing is pending.
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    out = cluster.run("alpha", "pending").stdout
    assert "beta: 0 change(s) pending" in out and "gamma: 2 change(s) pending" in out


def test_many_pages_with_large_files_in_early_pages(cluster: Cluster) -> None:
    # Index pages stream back to back while the puller fetches the large files of the first page:
    # content answers and later pages interleave on the wire.
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    for i in range(3):
        (a / f"big{i}.bin").write_bytes(os.urandom(300_000))
    sub = a / "many"
    sub.mkdir()
    for i in range(2500):
        (sub / f"f{i:04d}").write_text(str(i))
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.tree("beta") == cluster.tree("alpha")


def test_identical_trees_made_apart_converge_in_metadata_too(cluster: Cluster) -> None:
    # two nodes that already hold the same content (a bootstrap): no conflict, and one agreed mtime/mode
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    for root, mtime, mode in ((a, 1_600_000_000_000_000_000, 0o600), (b, 1_700_000_000_000_000_000, 0o644)):
        (root / "same.txt").write_text("identical\n")
        os.chmod(root / "same.txt", mode)
        os.utime(root / "same.txt", ns=(mtime, mtime))
        assert cluster.run(root.parent.name, "check").returncode == 0
    cluster.start("beta")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    for root in (a, b):
        st = os.stat(root / "same.txt")
        assert (st.st_mtime_ns, st.st_mode & 0o777) == (1_700_000_000_000_000_000, 0o644)


def test_a_local_version_recorded_while_a_batch_is_being_decided_is_not_replaced_unkept(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch from beta holds newer versions of a and b. Here, a changed on disk unrecorded, so it is
    rescanned before the batch is applied; meanwhile (as the watcher's scan can) b gets a local
    version recorded. b must be decided again against that version (a conflict, kept open under
    'auto none'), not replaced by the decision made against the version before it, which would lose it.
    Found by the crash campaign."""
    import asyncio

    from shoal.engine import exchange
    from shoal.engine.replica import Replica
    from shoal.engine.sync import sync_once
    from shoal.fs.config_source import load_node_config
    from shoal.fs.results import ScanResult

    a_dir, b_dir = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    (a_dir / "a").write_text("a0")
    (a_dir / "b").write_text("b0")
    cluster.start("beta")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    (b_dir / "a").write_text("a1 from beta")
    (b_dir / "b").write_text("b1 from beta")
    cluster.sync("beta", "--peer", "beta")  # beta's daemon records them (alpha has no daemon to take them)
    (a_dir / "a").write_text("a: an unrecorded local edit")  # stale: rescanned before the batch
    real_scan = exchange.Scanner.scan
    injected: list[str] = []

    def scan_and_meanwhile_record_b(self, paths=None, alone=()):  # type: ignore[no-untyped-def]
        if paths and not injected:
            injected.append("b")
            (a_dir / "b").write_text("b2: a local version recorded meanwhile")
            real_scan(self, [str(a_dir / "b")])
        return real_scan(self, paths, alone)

    monkeypatch.setattr(exchange.Scanner, "scan", scan_and_meanwhile_record_b)

    async def pull() -> None:
        replica = await Replica.open(load_node_config(str(cluster.config), "alpha"), str(cluster.nodes["alpha"].state))
        try:
            await sync_once(replica, peers=["beta"], scanned=ScanResult())  # (no scan first: 'a' stays stale)
        finally:
            await replica.close()

    asyncio.run(pull())
    assert injected == ["b"]
    assert (a_dir / "b").read_text() == "b2: a local version recorded meanwhile"
    assert (a_dir / "a").read_text() == "a: an unrecorded local edit"
