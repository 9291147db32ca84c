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
from shoal.engine.serving import MAX_PATHS_ASKED
from shoal.engine.wire import to_record
from shoal.model.paths import is_within
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


class PeerView:
    """A read-only session with a peer (``async with``): its records and contents. We offer nothing
    and apply nothing; the peer changes nothing either."""

    def __init__(self, replica: Replica, peer: str) -> None:
        self.replica, self.peer = replica, peer
        self._ch: Channel | None = None

    async def __aenter__(self) -> PeerView:
        cfg = self.replica.cfg
        info = cfg.peers()[self.peer]
        ch = await dial(info.address, info.port, cfg.uses_tls(self.peer), source=self.replica.source_address)
        try:
            auth = await client_handshake(self.replica, ch, self.peer, offer=False)
        except BaseException:
            await ch.close()
            raise
        self._ch, self.matcher, self.reader = ch, self.replica.matcher_for(auth.groups), _Reader(ch)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._ch is not None
        try:
            if exc[0] is None:
                await self._ch.send(m.PullDone(0, [], []))
                await self._ch.send(m.Bye("done"))
        finally:
            await self._ch.close()

    def shared(self, logical: str) -> bool:
        """Whether both of us manage ``logical`` in a group we share."""
        real = self.replica.pmap.to_real_safe(logical)
        return real is not None and self.matcher.is_managed(real)

    async def records(self, paths: list[str] | None = None) -> dict[str, Record]:
        """The peer's records (tombstones too) of the groups we share: all of them, or of ``paths``."""
        assert self._ch is not None
        requests = (
            [m.IndexRequest(0, 0, everything=True)]
            if paths is None
            else [m.IndexRequest(0, 0, paths[i : i + MAX_PATHS_ASKED]) for i in range(0, len(paths), MAX_PATHS_ASKED)]
        )
        theirs: dict[str, Record] = {}
        for request in requests:
            await self._ch.send(request)
            due = m.PAGES_PER_REQUEST
            while True:
                batch = await self.reader.next()
                if not isinstance(batch, m.IndexBatch):
                    raise PeerClosed(f"{self.peer} answered an index request with {type(batch).__name__}")
                for w in batch.records:
                    rec = to_record(w)
                    if self.shared(rec.path):
                        theirs[rec.path] = rec
                if not batch.more:
                    break
                due -= 1
                if due == 0:  # the last page this request is answered with: ask on from there
                    await self._ch.send(m.IndexRequest(batch.upto, 0, everything=True))
                    due = m.PAGES_PER_REQUEST
        return theirs

    async def content(self, path: str, rec: Record) -> bytes:
        """The content of the peer's file ``path`` (version ``rec``)."""
        assert self._ch is not None
        await self._ch.send(m.ContentRequest(0, path, rec.hash or b"", []))
        parts: list[bytes] = []
        while True:
            msg = await self.reader.next()
            if isinstance(msg, m.ContentData):
                parts.append(msg.data)
            elif isinstance(msg, m.ContentEnd):
                if msg.error:
                    raise PeerClosed(f"{self.peer} could not send {path}: {msg.error}")
                return b"".join(parts)


def local_content(replica: Replica, rec: Record | None) -> bytes | None:
    """What a unified diff shows of our side of ``rec``: file bytes, or a symlink's target."""
    if rec is None or rec.deleted:
        return None
    if rec.kind is Kind.FILE:
        with open(replica.pmap.to_real(rec.path), "rb") as f:
            return f.read()
    if rec.kind is Kind.SYMLINK:
        return f"-> {rec.target}\n".encode()
    return None


async def remote_content(view: PeerView, rec: Record | None) -> bytes | None:
    if rec is None or rec.deleted:
        return None
    if rec.kind is Kind.FILE:
        return await view.content(rec.path, rec)
    if rec.kind is Kind.SYMLINK:
        return f"-> {rec.target}\n".encode()
    return None


def under(path: str | None, records: dict[str, Record]) -> dict[str, Record]:
    """The records at ``path`` or below it (all when ``path`` is None)."""
    if path is None:
        return records
    return {p: r for p, r in records.items() if is_within(p, path)}


async def compare_with(replica: Replica, peer: str, path: str | None = None) -> tuple[list[Difference], str | None]:
    """The differences with ``peer`` (under ``path`` if given); with ``path``, also a unified diff of it."""
    async with PeerView(replica, peer) as view:
        theirs = {p: r for p, r in (await view.records()).items() if not r.deleted}
        ours = {
            r.path: r for r in await replica.db(lambda db: db.all_records(include_deleted=False)) if view.shared(r.path)
        }
        ours, theirs = under(path, ours), under(path, theirs)
        diffs = differences(ours, theirs, replica.cfg.ignore)
        text = None
        if path is not None and (path in ours or path in theirs):
            mine, other = local_content(replica, ours.get(path)), await remote_content(view, theirs.get(path))
            text = unified(path, replica.cfg.node, peer, mine, other)
        return diffs, text
