"""``shoal diff PEER [PATH]``: compare this node's records with a peer's, as csync2 -T / -TT do.

Owns: a read-only session (we offer nothing and apply nothing): read the peer's whole index for the
groups we share, compare it with ours, and for one path fetch the peer's content for a unified diff.
Must not: change records or files.

A path differs (``X``) when kind, content, link target, device, mode, owner or (for non-directories)
mtime differ, honouring ``ignore uid|gid|mod``; ``L`` = only here, ``R`` = only there. Both sides are
compared as last recorded: ``shoal diff`` scans this node first, the peer's records are as of its
last scan.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from shoal.engine.handshake import client_handshake
from shoal.engine.replica import Replica
from shoal.engine.wire import to_record
from shoal.model.records import Kind, Record
from shoal.net.transport import Channel, PeerClosed, dial
from shoal.proto import messages as m


@dataclass(frozen=True, slots=True)
class Difference:
    code: str  #: X, L or R
    path: str
    why: str


def _differs(a: Record, b: Record, ignore: tuple[str, ...]) -> str | None:
    if a.kind != b.kind:
        return f"{a.kind.name.lower()} here, {b.kind.name.lower()} there"
    if not a.same_content(b):
        return "content"
    if "mod" not in ignore and a.mode != b.mode:
        return f"mode {a.mode:04o} here, {b.mode:04o} there"
    if ("uid" not in ignore and a.uid != b.uid) or ("gid" not in ignore and a.gid != b.gid):
        return f"owner {a.uid}:{a.gid} here, {b.uid}:{b.gid} there"
    if a.kind is not Kind.DIR and a.mtime_ns != b.mtime_ns:
        return "mtime"
    return None


def differences(ours: dict[str, Record], theirs: dict[str, Record], ignore: tuple[str, ...]) -> list[Difference]:
    out: list[Difference] = []
    for path in sorted(ours.keys() | theirs.keys()):
        a, b = ours.get(path), theirs.get(path)
        if a is None:
            out.append(Difference("R", path, "only there"))
        elif b is None:
            out.append(Difference("L", path, "only here"))
        elif (why := _differs(a, b, ignore)) is not None:
            out.append(Difference("X", path, why))
    return out


def unified(path: str, me: str, peer: str, ours: bytes | None, theirs: bytes | None) -> str:
    if ours == theirs:
        return ""
    if b"\0" in (ours or b"") or b"\0" in (theirs or b""):
        return f"Binary files {me}:{path} and {peer}:{path} differ\n"
    a = (ours or b"").decode("utf-8", "replace").splitlines(keepends=True)
    b = (theirs or b"").decode("utf-8", "replace").splitlines(keepends=True)
    lines = difflib.unified_diff(
        a,
        b,
        f"{me}:{path}" if ours is not None else "/dev/null",
        f"{peer}:{path}" if theirs is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


class _Reader:
    """Messages of the read-only session, skipping the peer's own PullDone."""

    def __init__(self, ch: Channel) -> None:
        self.ch = ch

    async def next(self) -> m.Message:
        while True:
            msg = await self.ch.recv()
            if isinstance(msg, m.PullDone):
                continue
            if isinstance(msg, m.Bye):
                raise PeerClosed(msg.reason)
            return msg


async def compare_with(replica: Replica, peer: str, path: str | None = None) -> tuple[list[Difference], str | None]:
    """The differences with ``peer`` (under ``path`` if given); with ``path``, also a unified diff of it."""
    cfg = replica.cfg
    info = cfg.peers()[peer]
    ch = await dial(info.address, info.port, cfg.uses_tls(peer))
    try:
        auth = await client_handshake(replica, ch, peer, offer=False)
        matcher = replica.matcher_for(auth.groups)
        reader = _Reader(ch)
        await ch.send(m.IndexRequest(0, 0, everything=True))
        theirs: dict[str, Record] = {}
        while True:
            batch = await reader.next()
            if not isinstance(batch, m.IndexBatch):
                raise PeerClosed(f"{peer} answered an index request with {type(batch).__name__}")
            for w in batch.records:
                rec = to_record(w)
                if not rec.deleted:
                    theirs[rec.path] = rec
            if not batch.more:
                break

        def shared(p: str) -> bool:
            real = replica.pmap.to_real_safe(p)
            return real is not None and matcher.is_managed(real)

        ours = {r.path: r for r in await replica.db(lambda db: db.all_records(include_deleted=False)) if shared(r.path)}
        if path is not None:
            below = path.rstrip("/") + "/"
            ours = {p: r for p, r in ours.items() if p == path or p.startswith(below)}
            theirs = {p: r for p, r in theirs.items() if p == path or p.startswith(below)}
        diffs = differences(ours, {p: r for p, r in theirs.items() if shared(p)}, cfg.ignore)
        text = None
        if path is not None and (path in ours or path in theirs):
            text = await _content_diff(replica, reader, ch, peer, path, ours.get(path), theirs.get(path))
        await ch.send(m.PullDone(0, [], []))
        await ch.send(m.Bye("done"))
        return diffs, text
    finally:
        await ch.close()


async def _content_diff(
    replica: Replica, reader: _Reader, ch: Channel, peer: str, path: str, ours: Record | None, theirs: Record | None
) -> str:
    mine = None
    if ours is not None and ours.kind is Kind.FILE:
        real = replica.pmap.to_real(path)
        with open(real, "rb") as f:
            mine = f.read()
    elif ours is not None and ours.kind is Kind.SYMLINK:
        mine = f"-> {ours.target}\n".encode()
    other = None
    if theirs is not None and theirs.kind is Kind.FILE:
        await ch.send(m.ContentRequest(0, path, theirs.hash or b"", []))
        parts: list[bytes] = []
        while True:
            msg = await reader.next()
            if isinstance(msg, m.ContentData):
                parts.append(msg.data)
            elif isinstance(msg, m.ContentEnd):
                if msg.error:
                    raise PeerClosed(f"{peer} could not send {path}: {msg.error}")
                break
        other = b"".join(parts)
    elif theirs is not None and theirs.kind is Kind.SYMLINK:
        other = f"-> {theirs.target}\n".encode()
    return unified(path, replica.cfg.node, peer, mine, other)
