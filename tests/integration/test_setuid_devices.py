"""``allow setuid;`` and ``allow devices;`` (issue 16, item 7): without them a receiving node applies no
setuid/setgid bit and creates no device node, whatever a peer sends; the origin keeps its own."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from shoal.testing.cluster import Cluster

LOOP0 = os.makedev(7, 0)


def _plant(cluster: Cluster) -> None:
    a = cluster.nodes["alpha"].data
    (a / "su").write_text("#!/bin/sh\nid\n")
    os.chown(a / "su", 0, 0)
    os.chmod(a / "su", 0o4755)
    (a / "sg").write_text("#!/bin/sh\n")
    os.chmod(a / "sg", 0o2711)
    (a / "shared").mkdir()
    os.chmod(a / "shared", 0o3775)  # setgid and sticky
    os.mknod(a / "disk", 0o600 | stat.S_IFBLK, LOOP0)
    os.chmod(a / "disk", 0o666)
    os.mknod(a / "tty", 0o600 | stat.S_IFCHR, os.makedev(5, 0))


def _mode(path: os.PathLike[str]) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, r.stdout + r.stderr
    return r.stdout


def test_setuid_is_stripped_and_devices_refused_by_default(cluster: Cluster) -> None:
    _plant(cluster)
    a, b = cluster.nodes["alpha"].data, cluster.nodes["beta"].data
    cluster.start("beta")
    _ok(cluster.sync("alpha", "--peer", "beta"))
    assert (b / "su").read_text() == "#!/bin/sh\nid\n"
    assert (_mode(b / "su"), _mode(b / "sg"), _mode(b / "shared")) == (0o755, 0o711, 0o1775)  # sticky stays
    assert not os.path.lexists(b / "disk") and not os.path.lexists(b / "tty")
    refusals = [line for line in cluster.log_text("beta").splitlines() if "does not 'allow devices'" in line]
    assert len(refusals) == 2, refusals  # one line per path
    # The origin keeps its own, and nothing is left to do in either direction: the stripped files are
    # not local changes of beta's, and the refused devices are not offered again.
    again = _ok(cluster.sync("alpha", "--peer", "beta"))
    assert "received 0 files" in again and "sent 0 files" in again, again
    cluster.start("alpha")
    back = _ok(cluster.sync("beta", "--peer", "alpha"))
    assert "received 0 files" in back and "sent 0 files" in back, back
    assert (_mode(a / "su"), _mode(a / "sg"), _mode(a / "shared")) == (0o4755, 0o2711, 0o3775)
    assert stat.S_ISBLK(os.lstat(a / "disk").st_mode) and _mode(a / "disk") == 0o666
    refusals = [line for line in cluster.log_text("beta").splitlines() if "does not 'allow devices'" in line]
    assert len(refusals) == 2, refusals  # not retried
    # A later change at the origin arrives, stripped again.
    os.chmod(a / "su", 0o4750)
    _ok(cluster.sync("alpha", "--peer", "beta"))
    assert _mode(b / "su") == 0o750 and _mode(a / "su") == 0o4750


def test_allowed_setuid_and_devices_arrive_exactly(tmp_path: Path) -> None:
    with Cluster(tmp_path / "c", group_extra="allow setuid devices;") as cluster:
        _plant(cluster)
        cluster.start("beta")
        _ok(cluster.sync("alpha", "--peer", "beta"))
        b = cluster.nodes["beta"].data
        assert (_mode(b / "su"), _mode(b / "sg"), _mode(b / "shared")) == (0o4755, 0o2711, 0o3775)
        disk = os.lstat(b / "disk")
        assert stat.S_ISBLK(disk.st_mode) and disk.st_rdev == LOOP0 and _mode(b / "disk") == 0o666
        assert stat.S_ISCHR(os.lstat(b / "tty").st_mode)
        assert cluster.tree("beta") == cluster.tree("alpha")
