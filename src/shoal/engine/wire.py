"""Records on the wire and back (proto/ WireRecord <-> model/ Record)."""

from __future__ import annotations

from shoal.model.records import Kind, Record
from shoal.proto import messages as m


def to_record(w: m.WireRecord) -> Record:
    return Record(
        path=w.path,
        kind=Kind(w.kind),
        size_bytes=w.size,
        mode=w.mode,
        uid=w.uid,
        gid=w.gid,
        user=w.user,
        group=w.group,
        mtime_ns=w.mtime_ns,
        hash=w.hash,
        target=w.target,
        rdev=w.rdev,
        vector=tuple(sorted((n, c) for n, c in w.vector)),
        base=w.base,
        deleted=w.deleted,
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
