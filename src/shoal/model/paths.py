"""Path names: validation, and the mapping between real paths and the logical names peers share.

Owns: the rules a path must meet before anything reads or writes it, and prefix encoding. Must not: look
at the disk. A *logical* name is what travels between nodes and keys the record table: the real path,
with a leading prefix directory replaced by ``%NAME%`` (csync2's encoding), so nodes whose data lives in
different places (``prefix`` blocks) still agree on names.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from shoal.errors import ShoalError

MAX_PATH_BYTES = 4095
MAX_NAME_BYTES = 255


class UnsafePath(ShoalError):
    """A path that must not be used: relative, ``..``, empty component, NUL, too long, outside roots."""


def check_path(path: str) -> str:
    """Return ``path`` if it is a clean absolute path, else raise UnsafePath saying why."""
    if "\x00" in path:
        raise UnsafePath(f"path contains a NUL byte: {path!r}")
    if not path.startswith("/"):
        raise UnsafePath(f"path is not absolute: {path!r}")
    if path == "/":
        return path
    raw = path.encode("utf-8", "surrogateescape")
    if len(raw) > MAX_PATH_BYTES:
        raise UnsafePath(f"path is longer than {MAX_PATH_BYTES} bytes: {path[:60]!r}...")
    if (
        len(raw) <= MAX_NAME_BYTES  # then no component is too long either
        and "//" not in path
        and "/./" not in path
        and "/../" not in path
        and not path.endswith(("/", "/.", "/.."))
    ):
        return path  # the common case, checked without splitting (every record sent or received)
    for part in path[1:].split("/"):
        if part == "":
            raise UnsafePath(f"path has an empty component: {path!r}")
        if part in (".", ".."):
            raise UnsafePath(f"path has a '{part}' component: {path!r}")
        if len(part.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
            raise UnsafePath(f"path component longer than {MAX_NAME_BYTES} bytes: {part[:40]!r}...")
    return path


def is_within(path: str, root: str) -> bool:
    return root in ("/", path) or path.startswith(root + "/")


def check_within(path: str, roots: Iterable[str]) -> str:
    """``check_path``, and the path must lie at or below one of ``roots``."""
    check_path(path)
    if not any(is_within(path, r) for r in roots):
        raise UnsafePath(f"path is outside every managed root: {path!r}")
    return path


class PathMap:
    """Real path <-> logical name for this node, given its prefix paths ``{name: real_dir}``."""

    def __init__(self, prefixes: Mapping[str, str]) -> None:
        self.prefixes = dict(prefixes)
        # Longest real directory first, so nested prefixes resolve to the innermost one.
        self._by_len = sorted(self.prefixes.items(), key=lambda kv: len(kv[1]), reverse=True)

    def to_logical(self, real: str) -> str:
        for name, base in self._by_len:
            if is_within(real, base):
                return f"%{name}%" + real[len(base) :] if base != "/" else f"%{name}%{real}"
        return real

    def to_real(self, logical: str) -> str:
        """The real path on this node; raise UnsafePath for a malformed name or an unknown prefix."""
        if logical.startswith("%"):
            end = logical.find("%", 1)
            if end < 0:
                raise UnsafePath(f"unterminated prefix in {logical!r}")
            name, rest = logical[1:end], logical[end + 1 :]
            base = self.prefixes.get(name)
            if base is None:
                raise UnsafePath(f"prefix '%{name}%' has no path on this node: {logical!r}")
            if rest and not rest.startswith("/"):
                raise UnsafePath(f"prefix must be followed by '/': {logical!r}")
            real = (base.rstrip("/") + rest) or "/"
        else:
            real = logical
        return check_path(real)

    def to_real_safe(self, logical: str) -> str | None:
        """``to_real``, or None where the name has no valid real path on this node."""
        try:
            return self.to_real(logical)
        except UnsafePath:
            return None
