"""Records and version vectors: what a node knows about one managed path.

Owns: the record value and vector arithmetic. Must not: know how records are stored or sent.

A version vector is a sorted tuple of ``(node, counter)``. A node that changes a path bumps its own entry
to ``max(counter + 1, now_s)``: a node that lost its database restarts from the wall clock, so its new
versions conflict with its old ones instead of silently losing to them.
"""

from __future__ import annotations

import enum
import stat
from collections.abc import Iterable
from dataclasses import dataclass

Vector = tuple[tuple[str, int], ...]


class Kind(enum.IntEnum):
    FILE = 0
    DIR = 1
    SYMLINK = 2
    FIFO = 3
    CHR = 4
    BLK = 5


#: Kind by value, for decoding many records (``Kind(n)`` costs an enum lookup each time).
KINDS: tuple[Kind, ...] = tuple(Kind)

#: POSIX file-type bits (stat.S_IFMT of st_mode) -> Kind; sockets and the like have none.
KIND_OF_FMT = {
    stat.S_IFREG: Kind.FILE,
    stat.S_IFDIR: Kind.DIR,
    stat.S_IFLNK: Kind.SYMLINK,
    stat.S_IFIFO: Kind.FIFO,
    stat.S_IFCHR: Kind.CHR,
    stat.S_IFBLK: Kind.BLK,
}


def kind_of(mode: int) -> Kind | None:
    return KIND_OF_FMT.get(stat.S_IFMT(mode))


class Order(enum.Enum):
    EQUAL = "equal"
    BEFORE = "before"  #: a happened before b (b dominates)
    AFTER = "after"  #: a dominates b
    CONCURRENT = "concurrent"


def vector(entries: Iterable[tuple[str, int]]) -> Vector:
    """Normalize: merged by node (highest counter wins), zero counters dropped, sorted by node."""
    best: dict[str, int] = {}
    for node, counter in entries:
        if counter > best.get(node, 0):
            best[node] = counter
    return tuple(sorted(best.items()))


def bump(v: Vector, node: str, now_s: int) -> Vector:
    current = dict(v).get(node, 0)
    return vector([*v, (node, max(current + 1, now_s))])


def merge(a: Vector, b: Vector) -> Vector:
    return vector([*a, *b])


def compare(a: Vector, b: Vector) -> Order:
    da, db = dict(a), dict(b)
    a_ahead = any(c > db.get(n, 0) for n, c in da.items())
    b_ahead = any(c > da.get(n, 0) for n, c in db.items())
    if a_ahead and b_ahead:
        return Order.CONCURRENT
    if a_ahead:
        return Order.AFTER
    if b_ahead:
        return Order.BEFORE
    return Order.EQUAL


_SIG_P = 0x9E3779B97F4A7C15  # odd: multiplying by it is invertible modulo a power of two
_SIG_MOD = 1 << 62
_P1, _P2, _P3, _P4, _P5, _P6, _P7 = (pow(_SIG_P, k, _SIG_MOD) for k in range(1, 8))
SIG_RECHECK = 0  #: the signature of a live record that must be read again at the next scan
SIG_DELETED = -1  #: the signature of a tombstone


def stat_signature(
    kind: int, size: int, mtime_ns: int, ctime_ns: int, inode: int, mode: int, uid: int, gid: int
) -> int:
    """A stable 62-bit digest of the change-detection fields, never 0 or -1.

    Polynomial in an odd multiplier modulo 2**62: a change of any single field by less than 2**62 always
    changes the value, so the scanner can compare one integer per file with no false "unchanged".
    """
    return (
        kind * _P7 + size * _P6 + mtime_ns * _P5 + ctime_ns * _P4 + inode * _P3 + mode * _P2 + uid * _P1 + gid
    ) % _SIG_MOD + 1


@dataclass(frozen=True, slots=True)
class Record:
    """One path as this node knows it. ``path`` is the logical name (see model/paths.py)."""

    path: str
    kind: Kind
    size_bytes: int = 0
    mode: int = 0  #: permission bits only (S_IMODE)
    uid: int = 0
    gid: int = 0
    user: str = ""
    group: str = ""
    mtime_ns: int = 0
    hash: bytes | None = None  #: BLAKE3-256 of the content, files only
    target: str | None = None  #: symlink target
    rdev: int = 0  #: device number for CHR/BLK
    vector: Vector = ()
    base: bytes | None = None  #: the content hash this version was made from
    deleted: bool = False
    seq: int = 0  #: local sequence number of the last change
    # Local change detection only; never compared across nodes.
    ctime_ns: int = 0
    inode: int = 0
    recheck: bool = False  #: re-read at the next scan even if stat looks unchanged
    origin: str | None = None  #: database id of the peer this exact version was taken from, if any

    def same_content(self, other: Record) -> bool:
        """Same kind and payload (content, link target or device), metadata aside."""
        return (
            self.kind == other.kind
            and self.deleted == other.deleted
            and self.hash == other.hash
            and self.target == other.target
            and self.rdev == other.rdev
        )

    def signature(self) -> int:
        """What the scan index stores: the stat signature, or a marker for tombstones and rechecks."""
        if self.deleted:
            return SIG_DELETED
        if self.recheck:
            return SIG_RECHECK
        return self.stat_signature()

    def stat_signature(self) -> int:
        return stat_signature(
            self.kind, self.size_bytes, self.mtime_ns, self.ctime_ns, self.inode, self.mode, self.uid, self.gid
        )

    def same_metadata(self, other: Record) -> bool:
        return (
            self.mode == other.mode
            and self.uid == other.uid
            and self.gid == other.gid
            and self.mtime_ns == other.mtime_ns
        )
