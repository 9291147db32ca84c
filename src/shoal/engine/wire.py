"""Records on the wire and back (proto/ WireRecord <-> model/ Record)."""

from __future__ import annotations

from dataclasses import replace

import msgspec

from shoal.model.records import KINDS, Record
from shoal.proto import messages as m


def to_record(w: m.WireRecord) -> Record:
    """The record a peer sent (ValueError for an unknown kind). Positional, in Record's field order:
    this runs for every record received."""
    if not 0 <= w.kind < len(KINDS):
        raise ValueError(f"{w.kind} is not a valid Kind")
    return Record(
        w.path,
        KINDS[w.kind],
        w.size,
        w.mode,
        w.uid,
        w.gid,
        w.user,
        w.group,
        w.mtime_ns,
        w.hash,
        w.target,
        w.rdev,
        tuple(sorted(w.vector)),  # (msgspec decodes each entry as a tuple)
        w.base,
        w.deleted,
    )


def to_wire(r: Record) -> m.WireRecord:
    return m.WireRecord(
        r.path,
        int(r.kind),
        r.size_bytes,
        r.mode,
        r.uid,
        r.gid,
        r.user,
        r.group,
        r.mtime_ns,
        r.hash,
        r.target,
        r.rdev,
        list(r.vector),
        r.base,
        r.deleted,
        r.seq,
    )


def record_bytes(rec: Record, peer_seq: int) -> bytes:
    """A peer's record as stored with an open conflict: the wire form, with the peer's sequence number."""
    return msgspec.msgpack.encode(to_wire(replace(rec, seq=peer_seq)))


def record_from_bytes(raw: bytes) -> Record:
    """The inverse of ``record_bytes``; ``seq`` is the peer's sequence number of that version."""
    w = msgspec.msgpack.decode(raw, type=m.WireRecord)
    return replace(to_record(w), seq=w.seq)
