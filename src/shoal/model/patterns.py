"""Which paths a group manages: csync2's include/exclude semantics.

Owns: deciding, for a real path, whether it is managed, only walked through, or skipped. Must not: look
at the disk (symlinked directories are the scanner's business) or know about prefixes (patterns arrive
already expanded to this node's paths).

The rules (csync2 2.0):
- A pattern starting with ``/`` is a *pathname* pattern, matched against the whole path with leading-dir
  semantics (a pattern matching a directory matches everything below it); ``*`` does not cross ``/``,
  unless the pattern contains ``**`` somewhere, in which case every ``*`` in it does.
- Any other pattern is a *basename* pattern, matched against the last component (``*`` matches dot files).
- Within each category the last matching pattern wins; pathname default is excluded, basename default is
  included; a path is managed when both verdicts say include.
- ``compare`` patterns are includes that count only in compare mode (``-T``).
- A directory is walked into when it is managed, or when it matches the part before some ``/`` of a
  pathname include (it is an ancestor of an include root). Everything else prunes its subtree.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from shoal.model.fnmatch import compile_glob

_GLOB_CHARS = frozenset("*?[\\")


class Verdict(enum.IntEnum):
    SKIP = 0  #: neither managed nor on the way to anything managed: prune
    WALK = 1  #: not managed itself, but an ancestor of an include root: descend only
    MANAGED = 2


@dataclass(frozen=True, slots=True)
class Rule:
    """One include/exclude/compare pattern, with the prefix already replaced by this node's path."""

    kind: str  # "include" | "exclude" | "compare"
    pattern: str


@dataclass(frozen=True, slots=True)
class _Compiled:
    include: bool
    compare: bool
    pathname: bool
    regex: re.Pattern[str]
    #: For pathname includes: the pattern cut before each ``/``, longest first (csync2 step-into test).
    ancestors: tuple[re.Pattern[str], ...]
    #: For pathname patterns: does ``*`` cross ``/`` (the pattern holds ``**``).
    crosses: bool = False
    #: For pathname patterns without ``**``: (number of ``/``, the pattern cut before each ``/`` by depth).
    depth: int = 0
    cuts: tuple[re.Pattern[str], ...] = ()

    def may_match_below(self, directory: str, depth: int) -> bool:
        """Could this pathname pattern match some path strictly below ``directory`` (``depth`` slashes)?
        Only meaningful when it does not match ``directory`` itself."""
        if self.crosses or depth == 0:
            return True
        return self.depth > depth and self.cuts[depth - 1].match(directory) is not None


def _compile(rule: Rule) -> _Compiled:
    pattern = rule.pattern
    include = rule.kind != "exclude"
    compare = rule.kind == "compare"
    if not pattern.startswith("/"):
        return _Compiled(include, compare, False, compile_glob(pattern, pathname=False, leading_dir=False), ())
    fnm_pathname = "**" not in pattern
    regex = compile_glob(pattern, pathname=fnm_pathname, leading_dir=True)
    ancestors: list[re.Pattern[str]] = []
    if include:
        cut = pattern
        while (slash := cut.rfind("/")) > 0:
            cut = cut[:slash]
            ancestors.append(compile_glob(cut, pathname=fnm_pathname, leading_dir=False))
    slashes = [i for i, ch in enumerate(pattern) if ch == "/"]
    cuts = tuple(compile_glob(pattern[:i], pathname=True, leading_dir=False) for i in slashes[1:])
    return _Compiled(include, compare, True, regex, tuple(ancestors), not fnm_pathname, len(slashes), cuts)


class GroupMatcher:
    """The pattern list of one group."""

    def __init__(self, rules: Iterable[Rule]) -> None:
        self.rules = tuple(rules)
        self._compiled = tuple(_compile(r) for r in self.rules)

    def matches(self, path: str, *, compare_mode: bool = False) -> bool:
        """csync2's ``match_pattern_list``: both category verdicts say include."""
        base = path[path.rfind("/") + 1 :]
        match_path = False
        match_base = True
        for c in self._compiled:
            if c.compare and not compare_mode:
                continue
            if c.pathname:
                if c.regex.match(path):
                    match_path = c.include
            elif c.regex.match(base):
                match_base = c.include
        return match_path and match_base

    def step_into(self, path: str, *, compare_mode: bool = False) -> bool:
        if path == "/":
            return True
        for c in self._compiled:
            if c.compare and not compare_mode:
                continue
            for a in c.ancestors:
                if a.match(path):
                    return True
        return False

    def for_children(self, directory: str) -> Callable[[str], bool] | bool:
        """Whether each child of ``directory`` is matched (``matches``), as one constant when that does not
        depend on the child's name, else as a function of the name. Rules that match the directory match
        every path below it (leading-dir semantics), so only rules that could match deeper, and basename
        rules, are looked at per child."""
        depth = directory.count("/") if directory != "/" else 0
        prefix = directory + "/" if directory != "/" else "/"
        fixed = False  # pathname verdict from the last rule that matches the directory itself
        per_child: list[_Compiled] = []  # pathname rules after that one, which might match a child
        basenames: list[_Compiled] = []
        for c in self._compiled:
            if c.compare:
                continue
            if not c.pathname:
                basenames.append(c)
            elif c.regex.match(directory):
                fixed = c.include
                per_child.clear()
            elif c.may_match_below(directory, depth):
                per_child.append(c)
        if not per_child and not fixed:
            return False
        if not per_child and all(c.include for c in basenames):
            return fixed  # basename includes alone never exclude (the basename default is include)
        if not per_child and not any(c.include for c in basenames):
            # The common case (exclude *.swp .* *~): one regex call decides.
            combined = re.compile("|".join(f"(?:{c.regex.pattern})" for c in basenames))
            return lambda name: combined.match(name) is None

        def verdict(name: str) -> bool:
            match_path = fixed
            for c in per_child:
                if c.regex.match(prefix + name):
                    match_path = c.include
            if not match_path:
                return False
            match_base = True
            for c in basenames:
                if c.regex.match(name):
                    match_base = c.include
            return match_base

        return verdict

    def roots(self) -> list[str]:
        """Directories (or files) under which every path this group can manage lies."""
        out = []
        for r in self.rules:
            if r.kind != "exclude" and r.pattern.startswith("/"):
                out.append(literal_root(r.pattern))
        return minimal_roots(out)


class Matcher:
    """All groups of this node: the managed set is the union of theirs."""

    def __init__(self, groups: Sequence[tuple[str, Iterable[Rule]]]) -> None:
        self.groups = tuple((name, GroupMatcher(rules)) for name, rules in groups)

    def groups_of(self, path: str, *, compare_mode: bool = False) -> list[str]:
        """Names of the groups whose patterns manage ``path`` (ancestors not considered)."""
        return [name for name, g in self.groups if g.matches(path, compare_mode=compare_mode)]

    def classify(self, path: str, *, compare_mode: bool = False) -> Verdict:
        """The verdict for one path, assuming its parent was walked into."""
        for _, g in self.groups:
            if g.matches(path, compare_mode=compare_mode):
                return Verdict.MANAGED
        for _, g in self.groups:
            if g.step_into(path, compare_mode=compare_mode):
                return Verdict.WALK
        return Verdict.SKIP

    def reach(self, path: str, *, compare_mode: bool = False) -> Verdict:
        """The verdict for ``path`` as a walk from ``/`` would give it: SKIP if any ancestor prunes it."""
        cut = path.rfind("/")
        while cut > 0:
            if self.classify(path[:cut], compare_mode=compare_mode) is Verdict.SKIP:
                return Verdict.SKIP
            cut = path.rfind("/", 0, cut)
        return self.classify(path, compare_mode=compare_mode)

    def for_children(self, directory: str) -> Callable[[str], bool] | bool:
        """Which children of a walked ``directory`` are managed (not in compare mode): True or False for
        all of them when no child's name can change that, else a function of the name. Unmanaged
        children may still be directories to walk through: see :meth:`step_into_any`."""
        fns: list[Callable[[str], bool]] = []
        for _, g in self.groups:
            v = g.for_children(directory)
            if v is True:
                return True
            if v is not False:
                fns.append(v)
        if not fns:
            return False
        if len(fns) == 1:
            return fns[0]
        return lambda name: any(f(name) for f in fns)

    def step_into_any(self, path: str) -> bool:
        return any(g.step_into(path) for _, g in self.groups)

    def managed_cached(self, path: str, walkable: dict[str, bool]) -> bool:
        """``is_managed`` for many paths at once: ``walkable`` caches, per directory, whether a walk
        reaches into it (the same answer for all its entries)."""
        cut = path.rfind("/")
        parent = path[:cut]
        if cut > 0:
            ok = walkable.get(parent)
            if ok is None:
                ok = self.reach(parent) is not Verdict.SKIP
                walkable[parent] = ok
            if not ok:
                return False
        return self.classify(path) is Verdict.MANAGED

    def is_managed(self, path: str, *, compare_mode: bool = False) -> bool:
        """Managed, and reachable: no ancestor prunes it (the scanner could find it)."""
        return self.reach(path, compare_mode=compare_mode) is Verdict.MANAGED

    def roots(self) -> list[str]:
        return minimal_roots(r for _, g in self.groups for r in g.roots())


def literal_root(pattern: str) -> str:
    """The longest wildcard-free leading directory of a pathname pattern (the pattern itself if literal)."""
    first = next((i for i, ch in enumerate(pattern) if ch in _GLOB_CHARS), None)
    if first is None:
        return pattern
    cut = pattern.rfind("/", 0, first)
    return pattern[:cut] or "/"


def minimal_roots(paths: Iterable[str]) -> list[str]:
    """Sorted, without any path that lies below another one of the list."""
    out: list[str] = []
    for p in sorted(set(paths)):
        if not any(p == r or p.startswith(r.rstrip("/") + "/") for r in out):
            out.append(p)
    return out
