"""csync2's include/exclude semantics, rule by rule (compat.md section 2)."""

from __future__ import annotations

import pytest

from shoal.model.patterns import Matcher, Rule, Verdict, literal_root, minimal_roots


def m(*rules: tuple[str, str]) -> Matcher:
    return Matcher([("g", [Rule(k, p) for k, p in rules])])


CASES = [
    # (rules, path, managed) -- each row names the rule it shows
    # pathname default is excluded: nothing is managed without a pathname include
    ((), "/srv/a", False),
    ((("include", "*.conf"),), "/etc/a.conf", False),
    # a pathname pattern matching a directory matches everything below it
    ((("include", "/srv"),), "/srv/a/b/c", True),
    ((("include", "/srv"),), "/srv", True),
    ((("include", "/srv"),), "/srv2/a", False),
    # * does not cross / ...
    ((("include", "/srv/*/conf"),), "/srv/a/conf", True),
    ((("include", "/srv/*/conf"),), "/srv/a/b/conf", False),
    # ... unless the pattern holds ** anywhere, then every * does
    ((("include", "/srv/**/conf"),), "/srv/a/b/conf", True),
    ((("include", "/srv/*/x/**"),), "/srv/a/b/x/y", True),
    # basename patterns match the last component only; * matches dot files
    ((("include", "/srv"), ("exclude", "*.swp")), "/srv/a/.b.swp", False),
    ((("include", "/srv"), ("exclude", ".*")), "/srv/.git", False),
    ((("include", "/srv"), ("exclude", ".*")), "/srv/a.git", True),
    ((("include", "/srv"), ("exclude", "a")), "/srv/b/xa", True),  # only the whole last component counts
    ((("include", "/srv"), ("exclude", "a")), "/srv/b/a", False),
    # last match wins, per category
    ((("include", "/srv"), ("exclude", "/srv/cache"), ("include", "/srv/cache/keep")), "/srv/cache/keep/x", True),
    ((("include", "/srv"), ("exclude", "/srv/cache"), ("include", "/srv/cache/keep")), "/srv/cache/tmp", False),
    ((("exclude", "/srv/cache"), ("include", "/srv")), "/srv/cache/x", True),  # later include overrides
    ((("include", "/srv"), ("exclude", "*.log"), ("include", "keep.log")), "/srv/keep.log", True),
    ((("include", "/srv"), ("exclude", "*.log"), ("include", "keep.log")), "/srv/other.log", False),
    # both verdicts must say include
    ((("include", "/srv"), ("include", "*.c"), ("exclude", "*.c")), "/srv/x.c", False),
    # paths are case-sensitive
    ((("include", "/srv/Data"),), "/srv/data/x", False),
    ((("include", "/srv"), ("exclude", "*.TMP")), "/srv/a.tmp", True),
    # compare patterns count only in compare mode
    ((("compare", "/srv"),), "/srv/a", False),
    # trailing slashes were stripped by the parser; brackets and ? work as in glibc
    ((("include", "/srv/host[12]"),), "/srv/host2/x", True),
    ((("include", "/srv/host?"),), "/srv/host10", False),
    # subtree pruning: an excluded directory hides what basename rules would let through
    ((("include", "/srv"), ("exclude", "cache")), "/srv/cache/x", False),
    ((("include", "/srv"), ("exclude", "cache")), "/srv/cache", False),
    # a pathname exclude with a glob prunes matching directories
    ((("include", "/srv"), ("exclude", "/srv/*/tmp")), "/srv/a/tmp/f", False),
    ((("include", "/srv"), ("exclude", "/srv/*/tmp")), "/srv/a/b/tmp/f", True),
]


@pytest.mark.parametrize(("rules", "path", "managed"), CASES)
def test_managed(rules: tuple[tuple[str, str], ...], path: str, managed: bool) -> None:
    assert m(*rules).is_managed(path) is managed


def test_compare_mode_includes_compare_patterns() -> None:
    matcher = m(("compare", "/srv"))
    assert matcher.is_managed("/srv/a", compare_mode=True)


def test_ancestors_of_include_roots_are_walked_not_managed() -> None:
    matcher = m(("include", "/srv/www/htdocs"), ("include", "/etc/*/conf.d"))
    assert matcher.classify("/") is Verdict.WALK
    assert matcher.classify("/srv") is Verdict.WALK
    assert matcher.classify("/srv/www") is Verdict.WALK
    assert matcher.classify("/srv/www/htdocs") is Verdict.MANAGED
    assert matcher.classify("/srv/other") is Verdict.SKIP
    assert matcher.classify("/etc/nginx") is Verdict.WALK
    assert matcher.classify("/etc/nginx/conf.d") is Verdict.MANAGED
    assert matcher.classify("/etc/nginx/sites") is Verdict.SKIP


def test_excluded_dir_still_walked_toward_a_nested_include() -> None:
    matcher = m(("include", "/srv"), ("exclude", "/srv/cache"), ("include", "/srv/cache/keep"))
    assert matcher.classify("/srv/cache") is Verdict.WALK
    assert matcher.reach("/srv/cache/keep/deep/file") is Verdict.MANAGED


def test_union_of_groups() -> None:
    matcher = Matcher([("a", [Rule("include", "/a")]), ("b", [Rule("include", "/b"), Rule("exclude", "*.tmp")])])
    assert matcher.groups_of("/a/x.tmp") == ["a"]
    assert matcher.groups_of("/b/x.tmp") == []
    assert matcher.is_managed("/a/x.tmp") and not matcher.is_managed("/b/x.tmp")
    assert matcher.roots() == ["/a", "/b"]


@pytest.mark.parametrize(
    ("pattern", "root"),
    [
        ("/srv/www", "/srv/www"),
        ("/srv/*/conf", "/srv"),
        ("/srv/w?w/x", "/srv"),
        ("/*", "/"),
        ("/srv/a[bc]", "/srv"),
        ("/srv/**", "/srv"),
    ],
)
def test_literal_root(pattern: str, root: str) -> None:
    assert literal_root(pattern) == root


def test_minimal_roots() -> None:
    assert minimal_roots(["/srv/www", "/srv", "/srv2", "/etc/x", "/etc/x/y"]) == ["/etc/x", "/srv", "/srv2"]
