"""glibc ``fnmatch(3)`` semantics, as csync2 uses them, compiled to regular expressions.

Owns: translating one glob into a ``re`` pattern under the flags csync2 passes: ``FNM_PATHNAME``
(wildcards do not match ``/``) and ``FNM_LEADING_DIR`` (a match of a leading part of the string that is
followed by ``/`` counts). ``FNM_PERIOD`` is never set, so ``*`` matches a leading dot. Backslash quotes
the next character. A ``[`` without its ``]`` is a literal. Python's own ``fnmatch`` differs in all of
these, hence this module.
"""

from __future__ import annotations

import re
from functools import lru_cache

_CLASSES = {
    "alnum": "a-zA-Z0-9",
    "alpha": "a-zA-Z",
    "blank": " \\t",
    "cntrl": "\\x00-\\x1f\\x7f",
    "digit": "0-9",
    "graph": "\\x21-\\x7e",
    "lower": "a-z",
    "print": "\\x20-\\x7e",
    "punct": "!-/:-@\\[-`{-~",
    "space": " \\t\\n\\r\\f\\v",
    "upper": "A-Z",
    "xdigit": "0-9A-Fa-f",
}


class _NeverMatches(Exception):
    """glibc treats the pattern as an error: it matches nothing at all."""


def _bracket(pat: str, i: int, pathname: bool) -> tuple[str, int] | None:
    """Translate the bracket expression starting at ``pat[i] == '['``; None if it is not closed (then the
    ``[`` is a literal). ``[.x.]``, ``[=x=]`` and ``[:class:]`` inside it must be well formed (one
    character, a known class), else the whole pattern matches nothing, as in glibc."""
    j = i + 1
    negate = j < len(pat) and pat[j] in "!^"
    if negate:
        j += 1
    parts: list[str] = []
    first = True
    special = False  # a [. [= or [: construct was met: an unclosed bracket is then an error, not a literal
    while j < len(pat):
        c = pat[j]
        if c == "]" and not first:
            body = "".join(parts) or "(?!)"
            excl = "/" if pathname else ""
            if negate:
                return f"[^{body}{re.escape(excl) if excl else ''}]", j + 1
            if excl:
                return f"(?!/)[{body}]", j + 1
            return f"[{body}]", j + 1
        first = False
        if c == "[" and j + 1 < len(pat) and pat[j + 1] in ".=:":
            special = True
            kind = pat[j + 1]
            end = pat.find(kind + "]", j + 2)
            if end < 0:
                raise _NeverMatches
            name = pat[j + 2 : end]
            if kind == ":":
                if name not in _CLASSES:
                    raise _NeverMatches
                parts.append(_CLASSES[name])
            elif len(name) == 1:
                parts.append(re.escape(name))
            else:
                raise _NeverMatches
            j = end + 2
            continue
        if c == "\\" and j + 1 < len(pat):
            j += 1
            c = pat[j]
        if j + 2 < len(pat) and pat[j + 1] == "-" and pat[j + 2] != "]":
            hi = pat[j + 2]
            if hi == "\\" and j + 3 < len(pat):
                hi = pat[j + 3]
                j += 1
            if c <= hi:  # glibc: a reversed range matches nothing
                parts.append(f"{re.escape(c)}-{re.escape(hi)}")
            j += 3
            continue
        parts.append(re.escape(c))
        j += 1
    if special:
        raise _NeverMatches
    return None


def translate(pattern: str, *, pathname: bool, leading_dir: bool) -> str:
    """The regex source for ``pattern``, anchored at both ends."""
    try:
        return _translate(pattern, pathname=pathname, leading_dir=leading_dir)
    except _NeverMatches:
        return "(?!)"


def _translate(pattern: str, *, pathname: bool, leading_dir: bool) -> str:
    star = "[^/]*" if pathname else ".*"
    one = "[^/]" if pathname else "."
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            while i < n and pattern[i] == "*":
                i += 1
            out.append(star)
            if pathname and i < n and pattern[i] != "/":
                # glibc tries the rest of the pattern only at positions before the string's next '/',
                # unless a plain '/' follows the star (so '*\/' or '*[/]' can never match).
                out.append("(?!/)")
            continue
        if c == "?":
            out.append(one)
        elif c == "[":
            br = _bracket(pattern, i, pathname)
            if br is not None:
                out.append(br[0])
                i = br[1]
                continue
            out.append(re.escape(c))
        elif c == "\\":
            if i + 1 == n:  # glibc: a trailing backslash makes the pattern match nothing
                return "(?!)"
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    tail = "(?:/.*)?" if leading_dir else ""
    return "(?s:" + "".join(out) + tail + r")\Z"


@lru_cache(maxsize=4096)
def compile_glob(pattern: str, *, pathname: bool, leading_dir: bool) -> re.Pattern[str]:
    return re.compile(translate(pattern, pathname=pathname, leading_dir=leading_dir))


def fnmatch(pattern: str, string: str, *, pathname: bool = False, leading_dir: bool = False) -> bool:
    """True where glibc ``fnmatch(pattern, string, flags) == 0`` for the given flags."""
    return compile_glob(pattern, pathname=pathname, leading_dir=leading_dir).match(string) is not None
