"""Records and version vectors: what a node knows about one managed path.

Owns: the record value and vector arithmetic. Must not: know how records are stored or sent.

A version vector is a sorted tuple of ``(node, counter)``. A node that changes a path bumps its own entry
to ``max(counter + 1, now_s)``: a node that lost its database restarts from the wall clock, so its new
versions conflict with its old ones instead of silently losing to them.
"""

from __future__ import annotations

import enum
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

    def same_content(self, other: Record) -> bool:
        """Same kind and payload (content, link target or device), metadata aside."""
        return (
            self.kind == other.kind
            and self.deleted == other.deleted
            and self.hash == other.hash
            and self.target == other.target
            and self.rdev == other.rdev
        )

    def same_metadata(self, other: Record) -> bool:
        return (
            self.mode == other.mode
            and self.uid == other.uid
            and self.gid == other.gid
            and self.mtime_ns == other.mtime_ns
        )
