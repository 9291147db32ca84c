"""Path validation, prefix encoding, and version vector arithmetic."""

from __future__ import annotations

import pytest

from shoal.model.paths import PathMap, UnsafePath, check_path, check_within
from shoal.model.records import Order, bump, compare, merge, vector


@pytest.mark.parametrize(
    "bad",
    [
        "relative/path",
        "",
        "/a/../b",
        "/a/./b",
        "/a//b",
        "/a/b/",
        "/a/\x00b",
        "/" + "x" * 256,
        "/" + "/".join(["d" * 200] * 21),
    ],
)
def test_unsafe_paths_are_rejected(bad: str) -> None:
    with pytest.raises(UnsafePath):
        check_path(bad)


@pytest.mark.parametrize("good", ["/", "/a", "/a b/c", "/ünï/ćødé", "/" + "x" * 255, "/a/..b/.c", "/\udcff"])
def test_clean_paths_pass(good: str) -> None:
    assert check_path(good) == good


def test_outside_every_root() -> None:
    assert check_within("/srv/www/a", ["/etc", "/srv/www"]) == "/srv/www/a"
    with pytest.raises(UnsafePath, match="outside every managed root"):
        check_within("/srv/wwwx/a", ["/srv/www"])


def test_prefix_encoding_round_trip() -> None:
    pm = PathMap({"data": "/tmp/n1/data", "inner": "/tmp/n1/data/inner"})
    assert pm.to_logical("/tmp/n1/data/x") == "%data%/x"
    assert pm.to_logical("/tmp/n1/data") == "%data%"
    assert pm.to_logical("/tmp/n1/data/inner/y") == "%inner%/y"  # innermost prefix wins
    assert pm.to_logical("/etc/hosts") == "/etc/hosts"
    for real in ("/tmp/n1/data/x", "/tmp/n1/data", "/tmp/n1/data/inner/y", "/etc/hosts"):
        assert pm.to_real(pm.to_logical(real)) == real


@pytest.mark.parametrize("bad", ["%nope%/x", "%data", "%data%x", "%data%/../../etc/passwd"])
def test_bad_logical_names(bad: str) -> None:
    with pytest.raises(UnsafePath):
        PathMap({"data": "/tmp/d"}).to_real(bad)


def test_vectors() -> None:
    a = vector([("n1", 3)])
    b = bump(a, "n2", now_s=0)
    assert b == (("n1", 3), ("n2", 1))
    assert compare(a, b) is Order.BEFORE and compare(b, a) is Order.AFTER
    c = bump(a, "n1", now_s=0)
    assert compare(b, c) is Order.CONCURRENT
    assert merge(b, c) == (("n1", 4), ("n2", 1))
    assert compare(merge(b, c), b) is Order.AFTER
    assert compare(a, vector([("n1", 3), ("n9", 0)])) is Order.EQUAL


def test_bump_restarts_from_the_clock() -> None:
    # A node that lost its database must not produce versions older than its old ones.
    assert bump((), "n1", now_s=1_700_000_000) == (("n1", 1_700_000_000),)
    assert bump((("n1", 1_800_000_000),), "n1", now_s=1_700_000_000) == (("n1", 1_800_000_001),)
