"""Conflicts with three real daemons: every auto policy, kept losers, resolve, slaves, backups."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from shoal.testing.cluster import Cluster

NAMES = ("alpha", "beta", "gamma")
ALPHA_TEXT = "alpha's edit, the longer one\n"
GAMMA_TEXT = "gamma's\n"


def _all_daemons(cluster: Cluster) -> None:
    for n in NAMES:
        cluster.start(n)


def _settle(cluster: Cluster, rounds: int = 3) -> None:
    for _ in range(rounds):
        for n in NAMES:
            cluster.sync(n)


def _concurrent_edit(cluster: Cluster) -> None:
    """f exists everywhere; then alpha and gamma change it before talking to anyone."""
    (cluster.nodes["alpha"].data / "f").write_text("base\n")
    assert cluster.sync("alpha").returncode == 0
    now = time.time()
    a, g = cluster.nodes["alpha"].data / "f", cluster.nodes["gamma"].data / "f"
    a.write_text(ALPHA_TEXT)
    os.utime(a, (now - 100, now - 100))  # alpha's edit is the older one
    g.write_text(GAMMA_TEXT)
    os.utime(g, (now - 10, now - 10))


def _contents(cluster: Cluster) -> dict[str, str]:
    return {n: (cluster.nodes[n].data / "f").read_text() for n in NAMES}


WINNER = {
    "first": ALPHA_TEXT,  # alpha's sync reaches gamma first
    "younger": GAMMA_TEXT,
    "older": ALPHA_TEXT,
    "bigger": ALPHA_TEXT,
    "smaller": GAMMA_TEXT,
    "left": ALPHA_TEXT,  # alpha is listed first
    "right": GAMMA_TEXT,
}


@pytest.mark.parametrize("policy", sorted(WINNER))
def test_auto_policy_picks_the_same_winner_everywhere_and_keeps_the_loser(cluster: Cluster, policy: str) -> None:
    cluster.write_config(f"auto {policy};")
    _all_daemons(cluster)
    _concurrent_edit(cluster)
    r = cluster.sync("alpha")  # the daemons do the work; alpha talks to beta and gamma at once
    assert r.returncode == 0, r.stdout + r.stderr
    _settle(cluster)
    want = WINNER[policy]
    assert _contents(cluster) == dict.fromkeys(NAMES, want)
    loser, lost_text = ("gamma", GAMMA_TEXT) if want == ALPHA_TEXT else ("alpha", ALPHA_TEXT)
    view = json.loads(cluster.run(loser, "conflicts", "--json").stdout)
    kept = [k for k in view["kept"] if k["real"].endswith("/f")]
    assert kept, view
    assert Path(kept[0]["location"]).read_text() == lost_text
    assert kept[0]["location"].startswith(str(cluster.nodes[loser].state / "conflict-store"))
    assert view["open"] == []
    for n in NAMES:
        assert cluster.run(n, "pending", "--json").returncode == 0
        assert json.loads(cluster.run(n, "pending", "--json").stdout)["conflicts"] == []


def test_auto_none_keeps_both_until_resolve(cluster: Cluster) -> None:
    _all_daemons(cluster)
    _concurrent_edit(cluster)
    assert cluster.run("gamma", "check").returncode == 0  # gamma records its edit (its daemon does not watch yet)
    r = cluster.sync("alpha")
    assert r.returncode == 1 and "conflict: %d%/f" in r.stdout and "conflict on gamma: %d%/f" in r.stdout, r.stdout
    # a later run still names it, on both sides
    r = cluster.sync("alpha")
    assert r.returncode == 1 and "open conflict: %d%/f with gamma" in r.stdout, r.stdout
    r = cluster.sync("gamma", "--peer", "alpha")
    assert r.returncode == 1 and "%d%/f with alpha" in r.stdout, r.stdout
    assert (cluster.nodes["alpha"].data / "f").read_text() == ALPHA_TEXT
    assert (cluster.nodes["gamma"].data / "f").read_text() == GAMMA_TEXT
    out = cluster.run("gamma", "conflicts").stdout
    assert "open: %d%/f with alpha" in out and "shoal resolve" in out
    # gamma's admin settles it for alpha's version
    r = cluster.run("gamma", "resolve", str(cluster.nodes["gamma"].data / "f"), "--keep", "alpha")
    assert r.returncode == 0, r.stdout + r.stderr
    _settle(cluster)
    assert _contents(cluster) == dict.fromkeys(NAMES, ALPHA_TEXT)
    view = json.loads(cluster.run("gamma", "conflicts", "--json").stdout)
    assert view["open"] == []
    assert [Path(k["location"]).read_text() for k in view["kept"]] == [GAMMA_TEXT]
    for n in NAMES:
        assert cluster.sync(n).returncode == 0
        assert json.loads(cluster.run(n, "conflicts", "--json").stdout)["open"] == []


def test_resolve_keep_local(cluster: Cluster) -> None:
    _all_daemons(cluster)
    _concurrent_edit(cluster)
    assert cluster.run("gamma", "check").returncode == 0
    assert cluster.sync("alpha").returncode == 1
    r = cluster.run("gamma", "resolve", "%d%/f", "--keep", "local")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "this node's version wins over alpha" in r.stdout
    _settle(cluster)
    assert _contents(cluster) == dict.fromkeys(NAMES, GAMMA_TEXT)
    kept = json.loads(cluster.run("alpha", "conflicts", "--json").stdout)["kept"]
    assert [Path(k["location"]).read_text() for k in kept] == [ALPHA_TEXT]


def test_resolve_without_a_conflict_is_an_error(cluster: Cluster) -> None:
    (cluster.nodes["alpha"].data / "f").write_text("x")
    r = cluster.run("alpha", "resolve", "%d%/f", "--keep", "local", "--no-sync")
    assert r.returncode == 1 and "no open conflict on %d%/f" in r.stderr


def test_slave_changes_are_never_taken_and_get_replaced(cluster: Cluster) -> None:
    # gamma is receive-only
    hosts = " ".join(
        f"({n.name}@{n.address}:{n.port})" if n.name == "gamma" else f"{n.name}@{n.address}:{n.port}"
        for n in cluster.nodes.values()
    )
    cluster.config.write_text(
        cluster.config.read_text().replace(
            " ".join(f"{n.name}@{n.address}:{n.port}" for n in cluster.nodes.values()), hosts
        )
    )
    _all_daemons(cluster)
    (cluster.nodes["alpha"].data / "f").write_text("master\n")
    assert cluster.sync("alpha").returncode == 0
    g = cluster.nodes["gamma"].data
    (g / "f").write_text("slave's edit\n")
    (g / "new-on-slave").write_text("never leaves gamma\n")
    cluster.sync("gamma")
    cluster.sync("alpha")
    assert (cluster.nodes["alpha"].data / "f").read_text() == "master\n"
    assert (cluster.nodes["beta"].data / "f").read_text() == "master\n"
    assert not (cluster.nodes["alpha"].data / "new-on-slave").exists()
    assert (g / "f").read_text() == "master\n"  # the slave took its master's copy back...
    kept = json.loads(cluster.run("gamma", "conflicts", "--json").stdout)["kept"]
    assert [Path(k["location"]).read_text() for k in kept] == ["slave's edit\n"]  # ...keeping its own
    (g / "f").unlink()  # a slave's deletion is undone too
    cluster.sync("gamma")
    assert (g / "f").read_text() == "master\n"


def test_backup_directory_generations(cluster: Cluster) -> None:
    backups = {n: cluster.base / f"backups-{n}" for n in NAMES}
    cluster.top_extra = "prefix b { " + " ".join(f"on {n}: {p};" for n, p in backups.items()) + " }"
    cluster.write_config("backup-directory %b%; backup-generations 3;")
    cluster.start("beta")
    f = cluster.nodes["alpha"].data / "f"
    for i in range(1, 6):
        f.write_text(f"v{i}\n")
        assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    mirrored = backups["beta"] / str(cluster.nodes["beta"].data / "f").lstrip("/")
    assert mirrored.read_text() == "v4\n"
    assert Path(f"{mirrored}.1").read_text() == "v3\n"
    assert Path(f"{mirrored}.2").read_text() == "v2\n"
    assert not Path(f"{mirrored}.3").exists()
    f.unlink()  # a deletion by a peer is backed up too
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    assert not (cluster.nodes["beta"].data / "f").exists()
    assert mirrored.read_text() == "v5\n"
    assert Path(f"{mirrored}.2").read_text() == "v3\n"


def test_directory_deleted_while_the_peer_wrote_inside_it(cluster: Cluster) -> None:
    cluster.write_config("auto younger;")
    cluster.start("beta")
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    (a / "d").mkdir()
    (a / "d" / "x").write_text("x\n")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    (a / "d" / "x").unlink()
    (a / "d").rmdir()
    (b / "d" / "y").write_text("new inside\n")
    cluster.sync("beta", "--peer", "alpha")  # beta's change reaches alpha, alpha's deletions reach beta
    cluster.sync("alpha", "--peer", "beta")
    cluster.sync("alpha", "--peer", "beta")
    for node in (a, b):
        assert (node / "d" / "y").read_text() == "new inside\n"
        assert not (node / "d" / "x").exists()


def _wait_for(path: Path, timeout_s: float = 10.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and path.read_text().strip():
            return path.read_text()
        time.sleep(0.05)
    raise AssertionError(f"{path} never appeared")


def test_actions_run_on_receivers_and_locally_as_configured(cluster: Cluster) -> None:
    marks = cluster.base / "marks"
    marks.mkdir()
    logs = cluster.base / "action.log"
    cluster.write_config(
        "action {\n"
        "    pattern %d%/conf/*.conf;\n"
        f'    exec "echo %% >> {marks}/applied";\n'
        f'    logfile "{logs}";\n'
        "}\n"
        "action {\n"
        "    pattern %d%/conf;\n"
        f'    exec "echo %% >> {marks}/local-only";\n'
        "    do-local-only;\n"
        "}\n"
    )
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    (a / "conf").mkdir()
    (a / "conf" / "one.conf").write_text("1")
    (a / "conf" / "two.conf").write_text("2")
    (a / "conf" / "notes.txt").write_text("not matched")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    applied = _wait_for(marks / "applied")
    beta_conf = cluster.nodes["beta"].data / "conf"
    # one run for the batch, with both matching real paths on beta, and nothing else
    assert sorted(applied.split()) == [str(beta_conf / "one.conf"), str(beta_conf / "two.conf")]
    log_text = _wait_for(logs)
    assert "exited with 0" in log_text and log_text.count("shoal: action") == 1
    # do-local-only ran on alpha (where the change was made), once, for the paths below conf; the
    # first action (no do-local) did not run on alpha
    local_only = (marks / "local-only").read_text().split()
    assert sorted(local_only) == sorted(str(a / "conf" / n) for n in ("", "one.conf", "two.conf", "notes.txt"))
    assert str(a) not in applied


def test_diff_lists_and_shows_differences(cluster: Cluster) -> None:
    cluster.start("beta")
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    (a / "same").write_text("same\n")
    (a / "changed").write_text("one\ntwo\nthree\n")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    r = cluster.run("alpha", "diff", "beta")
    assert r.returncode == 0 and r.stdout == "", r.stdout + r.stderr
    (a / "changed").write_text("one\nTWO\nthree\n")
    (a / "here-only").write_text("h")
    (b / "there-only").write_text("t")
    assert cluster.run("beta", "check").returncode == 0
    r = cluster.run("alpha", "diff", "beta")
    assert r.returncode == 1, r.stderr
    lines = sorted(line.split("\t")[:4] for line in r.stdout.splitlines())
    assert lines == [
        ["L", "alpha", "beta", "%d%/here-only"],
        ["R", "alpha", "beta", "%d%/there-only"],
        ["X", "alpha", "beta", "%d%/changed"],
    ]
    r = cluster.run("alpha", "diff", "beta", str(a / "changed"))
    assert r.returncode == 1
    assert "--- alpha:%d%/changed\n+++ beta:%d%/changed\n" in r.stdout
    assert "-TWO\n+two\n" in r.stdout and " one\n" in r.stdout
    assert (b / "changed").read_text() == "one\ntwo\nthree\n"  # diff changes nothing
