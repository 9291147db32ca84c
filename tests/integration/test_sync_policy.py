"""Connection policy from the config: only-from, nossl, fingerprint pins; owners and device nodes."""

from __future__ import annotations

import os
import stat

from shoal.net.identity import load_identity
from shoal.testing.cluster import Cluster


def test_only_from_refuses_before_tls(cluster: Cluster) -> None:
    cluster.write_config("only-from 10.99.0.0/16;")
    cluster.start("beta")
    (cluster.nodes["alpha"].data / "x").write_text("x")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 1
    assert "refused connection from 127.0.0.1: not in any group's only-from networks" in cluster.log_text("beta")
    assert not (cluster.nodes["beta"].data / "x").exists()
    cluster.stop("beta")
    cluster.write_config("only-from 127.0.0.0/8;")
    cluster.start("beta")
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    assert (cluster.nodes["beta"].data / "x").exists()


def test_nossl_only_where_both_ends_match(cluster: Cluster) -> None:
    cluster.top_extra = "nossl alpha beta;"
    cluster.write_config()
    cluster.start("beta")
    (cluster.nodes["alpha"].data / "plain").write_text("over plain TCP, still with the key proof")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (cluster.nodes["beta"].data / "plain").exists()
    # beta's own config does not allow plain connections from alpha: the plain client is refused
    cluster.stop("beta")
    strict = cluster.base / "strict.cfg"
    strict.write_text(cluster.config.read_text().replace("nossl alpha beta;", ""))
    cluster.start("beta", config=strict)
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 1
    assert "plain connections are not allowed for this host" in r.stdout


def test_fingerprint_pinned_in_the_config(cluster: Cluster) -> None:
    beta_fp = load_identity(str(cluster.nodes["beta"].state)).fingerprint
    cluster.write_config(f"fingerprint beta {'00' * 32};")
    cluster.start("beta")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 1 and "is not the trusted one" in r.stdout
    cluster.write_config(f"fingerprint beta {beta_fp};")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr


def test_owner_ids_and_device_nodes(cluster: Cluster) -> None:
    cluster.write_config("allow devices;")  # (refused by default: tests/integration/test_setuid_devices.py)
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    (a / "owned").write_text("owned by 1234:2345")
    os.chown(a / "owned", 1234, 2345)
    os.mknod(a / "null-like", 0o600 | stat.S_IFCHR, os.makedev(1, 3))
    os.chmod(a / "null-like", 0o620)  # mknod's mode goes through the umask
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    st = os.lstat(cluster.nodes["beta"].data / "owned")
    assert (st.st_uid, st.st_gid) == (1234, 2345)
    dev = os.lstat(cluster.nodes["beta"].data / "null-like")
    assert stat.S_ISCHR(dev.st_mode) and dev.st_rdev == os.makedev(1, 3) and stat.S_IMODE(dev.st_mode) == 0o620
    assert cluster.tree("beta") == cluster.tree("alpha")


def test_ignore_uid_gid_mod(cluster: Cluster) -> None:
    cluster.top_extra = "ignore uid gid mod;"
    cluster.write_config()
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    (a / "f").write_text("x")
    os.chown(a / "f", 1234, 2345)
    os.chmod(a / "f", 0o600)
    assert cluster.sync("alpha", "--peer", "beta").returncode == 0
    st = os.lstat(cluster.nodes["beta"].data / "f")
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o644)
    # and nothing bounces back: beta's record matches its disk, so a second sync changes nothing
    cluster.start("alpha")
    r = cluster.sync("beta", "--peer", "alpha")
    assert "received 0 files" in r.stdout
