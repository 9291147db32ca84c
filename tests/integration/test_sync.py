"""Three real daemons on loopback with real TLS: everything converges, byte for byte and in metadata."""

from __future__ import annotations

import os

from shoal.testing.cluster import Cluster


def converge(c: Cluster, writer: str) -> None:
    """Sync from the node that changed; every node must then hold the same tree."""
    r = c.sync(writer)
    assert r.returncode == 0, r.stdout + r.stderr
    want = c.tree(writer)
    for name in c.nodes:
        assert c.tree(name) == want, f"{name} differs from {writer}"


def test_everything_converges(cluster: Cluster) -> None:
    for n in ("beta", "gamma"):
        cluster.start(n)
    a = cluster.nodes["alpha"].data
    (a / "dir" / "sub").mkdir(parents=True)
    (a / "dir" / "sub" / "file.txt").write_text("hello\n")
    (a / "empty").write_bytes(b"")
    (a / "ünïcödé name with spaces").write_text("umlauts")
    (a / "new\nline").write_text("newline in the name")
    (a / ("x" * 255)).write_text("255-byte name")
    (a / "big.bin").write_bytes(os.urandom(3 << 20))
    os.symlink("dir/sub/file.txt", a / "link")
    os.symlink("/nonexistent/target", a / "dangling")
    os.mkfifo(a / "fifo")
    os.chmod(a / "dir" / "sub" / "file.txt", 0o640)
    os.utime(a / "empty", ns=(1_000_000_000, 1_234_567_891_234_567_891))
    converge(cluster, "alpha")

    # modify, delete, rename a whole tree, change modes and mtimes, change types both ways
    (a / "dir" / "sub" / "file.txt").write_text("changed\n")
    (a / "empty").unlink()
    os.rename(a / "dir", a / "renamed")
    os.chmod(a / "big.bin", 0o600)
    os.utime(a / "link", ns=(1, 1_500_000_000_000_000_000), follow_symlinks=False)
    (a / ("x" * 255)).unlink()
    (a / ("x" * 255)).mkdir()
    (a / ("x" * 255) / "inside").write_text("file became a directory")
    os.unlink(a / "link")
    (a / "link").write_text("symlink became a file")
    converge(cluster, "alpha")
    assert not (cluster.nodes["gamma"].data / "dir").exists()
    assert (cluster.nodes["gamma"].data / "renamed" / "sub" / "file.txt").read_text() == "changed\n"

    # the other way round: beta writes (its daemon keeps running), everyone follows
    b = cluster.nodes["beta"].data
    (b / "renamed" / "sub" / "from-beta").write_text("beta was here")
    (b / ("x" * 255) / "inside").unlink()
    (b / ("x" * 255)).rmdir()
    (b / ("x" * 255)).write_text("and back to a file")
    cluster.start("alpha")
    converge(cluster, "beta")


def test_large_files_and_empty_file(cluster: Cluster) -> None:
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    (a / "fifty.bin").write_bytes(os.urandom(50 << 20))
    (a / "zero").write_bytes(b"")
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.tree("beta") == cluster.tree("alpha")


def test_an_index_longer_than_one_request_arrives_whole_both_ways(cluster: Cluster) -> None:
    """More records than one index request is answered with (PAGES_PER_REQUEST pages): the puller asks
    on from each request's last page, and so does the comparison of `shoal diff`."""
    from shoal.engine.serving import INDEX_PAGE
    from shoal.proto.messages import PAGES_PER_REQUEST

    count = PAGES_PER_REQUEST * INDEX_PAGE + 700
    cluster.start("beta")
    a = cluster.nodes["alpha"].data
    for d in range(10):
        (a / f"d{d}").mkdir()
        for i in range(count // 10):
            (a / f"d{d}" / f"f{i}").write_bytes(b"%d.%d" % (d, i))
    r = cluster.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert cluster.tree("beta") == cluster.tree("alpha")
    assert len(list((cluster.nodes["beta"].data / "d9").iterdir())) == count // 10
    diff = cluster.run("alpha", "diff", "beta")
    assert diff.returncode == 0 and diff.stdout == "", diff.stdout + diff.stderr
    (cluster.nodes["beta"].data / "d9" / "f1").write_bytes(b"changed on beta")
    assert cluster.run("beta", "check").returncode == 0
    diff = cluster.run("alpha", "diff", "beta")
    assert diff.returncode == 1 and "d9/f1" in diff.stdout, diff.stdout + diff.stderr
