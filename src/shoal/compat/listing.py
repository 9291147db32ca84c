"""What csync2's listing modes print, from shoal records (pure).

Owns: the line formats of ``-L``/``-S`` (check text + name), ``-M`` (dirty rows), ``-H`` (hints), ``-T``
(differences), and the order csync2 lists names in. Must not: read the database or the disk.

Names are printed as stored: prefix-encoded (``%root%/a``) and otherwise raw. csync2 keeps names
URL-encoded in its database and sorts by that encoding, so listings are ordered by :func:`url_encode`.
"""

from __future__ import annotations

import difflib
import stat

from shoal.model.records import Kind, Record

#: characters csync2 URL-encodes in stored names, besides the control range and space
_SPECIAL = frozenset("\"'%$:|\\")

_FMT = {
    Kind.FILE: stat.S_IFREG,
    Kind.DIR: stat.S_IFDIR,
    Kind.SYMLINK: stat.S_IFLNK,
    Kind.FIFO: stat.S_IFIFO,
    Kind.CHR: stat.S_IFCHR,
    Kind.BLK: stat.S_IFBLK,
}
_TYPE = {
    Kind.FILE: "reg",
    Kind.DIR: "dir",
    Kind.SYMLINK: "lnk",
    Kind.FIFO: "fifo",
    Kind.CHR: "chr",
    Kind.BLK: "blk",
}


def url_encode(name: str) -> str:
    """csync2's stored form of a name: bytes 0x01-0x20, 0x7f and ``"'%$:|\\`` as ``%XX`` (upper-case
    hex); everything else, bytes >= 0x80 too, unchanged."""
    out = []
    for ch in name:
        code = ord(ch)
        if code <= 0x20 or code == 0x7F or ch in _SPECIAL:
            out.append(f"%{code:02X}")
        else:
            out.append(ch)
    return "".join(out)


def order_key(name: str) -> bytes:
    """Sort key of csync2's listings: the stored (encoded) name, as bytes."""
    return url_encode(name).encode("utf-8", "surrogateescape")


def checktxt(rec: Record, ignore: tuple[str, ...] = ()) -> str:
    """csync2's one-line description of a path's state (``-L``): mtime in seconds (not for directories
    and symlinks), the full st_mode, owner, type, then size, link target or device number. Fields the
    config ignores (``ignore uid|gid|mod``) are left out."""
    parts = ["v1"]
    if rec.kind not in (Kind.DIR, Kind.SYMLINK):
        parts.append(f"mtime={rec.mtime_ns // 1_000_000_000}")
    if "mod" not in ignore:
        parts.append(f"mode={_FMT[rec.kind] | rec.mode}")
    if "uid" not in ignore:
        parts.append(f"uid={rec.uid}")
    if "gid" not in ignore:
        parts.append(f"gid={rec.gid}")
    parts.append(f"type={_TYPE[rec.kind]}")
    if rec.kind is Kind.FILE:
        parts.append(f"size={rec.size_bytes}")
    elif rec.kind is Kind.SYMLINK:
        parts.append(f"target={rec.target or ''}")
    elif rec.kind in (Kind.CHR, Kind.BLK):
        parts.append(f"dev={rec.rdev}")
    return ":".join(parts)


def file_lines(records: list[Record], ignore: tuple[str, ...] = ()) -> list[str]:
    """``-L`` / ``-S``: one ``CHECKTXT<TAB>NAME`` line per live record, in csync2's order."""
    live = sorted((r for r in records if not r.deleted), key=lambda r: order_key(r.path))
    return [f"{checktxt(r, ignore)}\t{r.path}" for r in live]


def dirty_lines(me: str, rows: list[tuple[bool, str, str]]) -> list[str]:
    """``-M``: ``force|chary<TAB>ME<TAB>PEER<TAB>NAME`` for each ``(forced, peer, name)``, by name then peer."""
    ordered = sorted(rows, key=lambda r: (order_key(r[2]), r[1]))
    return [f"{'force' if forced else 'chary'}\t{me}\t{peer}\t{name}" for forced, peer, name in ordered]


def hint_lines(hints: list[tuple[str, bool]]) -> list[str]:
    """``-H``: ``RECURSIVE<TAB>PATH`` (1 or 0) per hint."""
    return [f"{int(rec)}\t{path}" for path, rec in sorted(hints, key=lambda h: order_key(h[0]))]


def difference_lines(me: str, peer: str, diffs: list[tuple[str, str]]) -> list[str]:
    """``-T``: ``X|L|R<TAB>ME<TAB>PEER<TAB>NAME`` per ``(code, name)``."""
    return [f"{code}\t{me}\t{peer}\t{name}" for code, name in sorted(diffs, key=lambda d: order_key(d[1]))]


def nus_diff(old_label: str, new_label: str, old: bytes, new: bytes) -> str:
    """What ``diff -Nus`` prints for two contents under these labels (an absent file counts as empty):
    a unified diff, "Files ... are identical", or "Binary files ... differ"."""
    if old == new:
        return f"Files {old_label} and {new_label} are identical\n"
    if b"\0" in old or b"\0" in new:
        return f"Binary files {old_label} and {new_label} differ\n"
    a = old.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    b = new.decode("utf-8", "surrogateescape").splitlines(keepends=True)
    out = []
    for line in difflib.unified_diff(a, b, old_label, new_label):
        out.append(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n")
    return "".join(out)
