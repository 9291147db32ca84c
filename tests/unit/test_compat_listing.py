"""What shoal-csync2's listings print (the formats real csync2 2.0 prints, checked against it)."""

from __future__ import annotations

import pytest

from shoal.compat.listing import (
    checktxt,
    difference_lines,
    dirty_lines,
    file_lines,
    hint_lines,
    nus_diff,
    order_key,
    url_encode,
)
from shoal.model.records import Kind, Record

S = 1_795_269_776


@pytest.mark.parametrize(
    ("name", "stored"),
    [
        ("%root%/a", "%25root%25/a"),
        ('%root%/d/sp ace:%$|"q', "%25root%25/d/sp%20ace%3A%25%24%7C%22q"),
        ("/t\tab\nnl", "/t%09ab%0Anl"),
        ("/c\x01x\\y\x7fz", "/c%01x%5Cy%7Fz"),
        ("/it's", "/it%27s"),
        ("/ümlaut", "/ümlaut"),
        ("/plain-name_1.txt", "/plain-name_1.txt"),
    ],
)
def test_url_encode_matches_csync2s_stored_names(name: str, stored: str) -> None:
    assert url_encode(name) == stored


def test_order_follows_the_stored_encoding_not_the_raw_name() -> None:
    # raw: ':' (0x3a) sorts before 'a'; stored, '%3A' ('%' is 0x25) sorts before '-' (0x2d) too
    names = ["/x/a", "/x/-", "/x/:"]
    assert sorted(names, key=order_key) == ["/x/:", "/x/-", "/x/a"]
    assert sorted(names) == ["/x/-", "/x/:", "/x/a"]


@pytest.mark.parametrize(
    ("rec", "ignore", "text"),
    [
        (
            Record("/f", Kind.FILE, 3, 0o644, mtime_ns=S * 10**9 + 5),
            (),
            f"v1:mtime={S}:mode=33188:uid=0:gid=0:type=reg:size=3",
        ),
        (Record("/d", Kind.DIR, 0, 0o755, mtime_ns=S * 10**9), (), "v1:mode=16877:uid=0:gid=0:type=dir"),
        (Record("/l", Kind.SYMLINK, 0, 0o777, target="/etc/x"), (), "v1:mode=41471:uid=0:gid=0:type=lnk:target=/etc/x"),
        (Record("/p", Kind.FIFO, 0, 0o644, mtime_ns=S * 10**9), ("uid", "mod"), f"v1:mtime={S}:gid=0:type=fifo"),
        (
            Record("/c", Kind.CHR, 0, 0o644, mtime_ns=S * 10**9, rdev=259),
            ("uid", "mod"),
            f"v1:mtime={S}:gid=0:type=chr:dev=259",
        ),
        (Record("/d", Kind.DIR, 0, 0o755, uid=5, gid=7), ("uid", "gid", "mod"), "v1:type=dir"),
    ],
)
def test_checktxt(rec: Record, ignore: tuple[str, ...], text: str) -> None:
    assert checktxt(rec, ignore) == text


def test_file_lines_skip_tombstones_and_sort_by_stored_name() -> None:
    recs = [
        Record("%r%/b", Kind.FILE, 1, 0o600, mtime_ns=S * 10**9),
        Record("%r%/a", Kind.FILE, 1, 0o600, mtime_ns=S * 10**9, deleted=True),
        Record("%r%", Kind.DIR, 0, 0o700),
    ]
    assert file_lines(recs) == [
        "v1:mode=16832:uid=0:gid=0:type=dir\t%r%",
        f"v1:mtime={S}:mode=33152:uid=0:gid=0:type=reg:size=1\t%r%/b",
    ]


def test_dirty_lines_by_name_then_peer() -> None:
    rows = [(False, "n3", "/b"), (True, "n2", "/b"), (False, "n2", "/a")]
    assert dirty_lines("n1", rows) == [
        "chary\tn1\tn2\t/a",
        "force\tn1\tn2\t/b",
        "chary\tn1\tn3\t/b",
    ]


def test_hint_and_test_lines() -> None:
    assert hint_lines([("/srv/b", False), ("/srv/a", True)]) == ["1\t/srv/a", "0\t/srv/b"]
    assert difference_lines("n1", "n2", [("X", "/b"), ("L", "/a")]) == ["L\tn1\tn2\t/a", "X\tn1\tn2\t/b"]


def test_nus_diff_shapes() -> None:
    assert nus_diff("p:/f", "m:/f", b"same\n", b"same\n") == "Files p:/f and m:/f are identical\n"
    assert nus_diff("p:/f", "m:/f", b"\0a", b"b") == "Binary files p:/f and m:/f differ\n"
    assert nus_diff("p:/f", "m:/f", b"one\nthree\n", b"one\ntwo\n") == (
        "--- p:/f\n+++ m:/f\n@@ -1,2 +1,2 @@\n one\n-three\n+two\n"
    )
    assert (
        nus_diff("p:/f", "m:/f", b"", b"x") == "--- p:/f\n+++ m:/f\n@@ -0,0 +1 @@\n+x\n\\ No newline at end of file\n"
    )
