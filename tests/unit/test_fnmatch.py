"""Our fnmatch against glibc's, through ctypes: a table and a random sweep."""

from __future__ import annotations

import ctypes
import ctypes.util

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.model.fnmatch import fnmatch

FNM_PATHNAME = 1
FNM_LEADING_DIR = 8

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_libc.fnmatch.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int]


def libc_fnmatch(pattern: str, string: str, pathname: bool, leading_dir: bool) -> bool:
    flags = (FNM_PATHNAME if pathname else 0) | (FNM_LEADING_DIR if leading_dir else 0)
    return bool(_libc.fnmatch(pattern.encode(), string.encode(), flags) == 0)


TABLE = [
    # pattern, string, pathname, leading_dir, expected
    ("*.swp", ".x.swp", False, False, True),  # no FNM_PERIOD: * matches a leading dot
    ("/srv/*", "/srv/a/b", True, False, False),  # * does not cross / under FNM_PATHNAME
    ("/srv/*", "/srv/a/b", True, True, True),  # ... but leading-dir accepts the prefix match
    ("/srv/**", "/srv/a/b", False, True, True),
    ("/srv/www", "/srv/www2", True, True, False),  # leading-dir needs a / after the match
    ("/srv/www", "/srv/www/x", True, True, True),
    ("[b-e]", "c", False, False, True),
    ("[!b-e]", "c", False, False, False),
    ("[^b-e]", "a", False, False, True),
    ("[]x]", "]", False, False, True),
    ("[a", "[a", False, False, True),  # an unclosed bracket is literal
    ("a\\*", "a*", False, False, True),
    ("a\\*", "ab", False, False, False),
    ("a\\", "a\\", False, False, False),  # a trailing backslash matches nothing
    ("/a/[/]b", "/a//b", True, False, False),  # brackets never match / under FNM_PATHNAME
    ("*\\/", "a/", True, False, False),  # glibc quirk, see model/fnmatch.py
    ("[[:digit:]]x", "7x", False, False, True),
    ("[z-a]", "m", False, False, False),  # reversed range matches nothing
    ("[[.a.]b]", "a", False, False, True),  # collating symbol
    ("[[=a=]]", "a", False, False, True),  # equivalence class
    ("[![.]", "\\", False, False, False),  # malformed collating symbol: the pattern matches nothing
    ("[[.ab.]]", "a", False, False, False),
    ("[[:foo:]]", "f", False, False, False),  # unknown class: matches nothing
]


@pytest.mark.parametrize(("pattern", "string", "pathname", "leading_dir", "expected"), TABLE)
def test_table(pattern: str, string: str, pathname: bool, leading_dir: bool, expected: bool) -> None:
    assert libc_fnmatch(pattern, string, pathname, leading_dir) is expected  # the table itself is right
    assert fnmatch(pattern, string, pathname=pathname, leading_dir=leading_dir) is expected


@settings(max_examples=3000, deadline=None)
@given(
    pattern=st.text(alphabet="ab/.*?[]!^-\\:=", max_size=8),
    string=st.text(alphabet="ab/.-]\\", max_size=7),
    pathname=st.booleans(),
    leading_dir=st.booleans(),
)
def test_agrees_with_glibc(pattern: str, string: str, pathname: bool, leading_dir: bool) -> None:
    want = libc_fnmatch(pattern, string, pathname, leading_dir)
    assert fnmatch(pattern, string, pathname=pathname, leading_dir=leading_dir) is want
