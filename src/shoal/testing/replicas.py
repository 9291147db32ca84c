"""Simulated replicas: N nodes holding records only, synced by the real pure decision functions.

Used by the decision-table and state-machine tests. A node's "disk" is its record table; a session
between two nodes lets each pull the other's records, each deciding against its own pre-session state
(as the real engine does: both pulls run at once). Every applied decision is checked independently
here: a node may only replace a payload it holds with one not built on it if it keeps a copy
(``backup``), or the payload survives elsewhere (another node holds or kept it: the node that decided
a conflict keeps the loser, others holding the same version later fast-forward past it). The lineage of
every version ever written is tracked, so tests can check that nothing written was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from shoal.model.reconcile import Action, Context, Policy, Side, reconcile, stored_vector
from shoal.model.records import Kind, Record, bump, merge


def content_hash(label: str) -> bytes:
    return label.encode().ljust(32, b".")[:32]


def label_of(rec: Record | None) -> str:
    """A short name for what a node holds: the content label, 'dir', '->target', or '-' if nothing."""
    if rec is None or rec.deleted:
        return "-"
    if rec.kind is Kind.DIR:
        return "dir"
    if rec.kind is Kind.SYMLINK:
        return f"->{rec.target}"
    return (rec.hash or b"").rstrip(b".").decode()


@dataclass
class Node:
    name: str
    records: dict[str, Record] = field(default_factory=dict)
    kept: list[tuple[str, Record]] = field(default_factory=list)  #: (path, record) of backed-up versions
    open_conflicts: dict[str, dict[str, Record]] = field(default_factory=dict)  #: path -> peer -> its record
    forced: dict[str, Side] = field(default_factory=dict)


class LostVersion(AssertionError):
    pass


class Cluster:
    """Nodes, a logical clock, and the lineage of every version written."""

    def __init__(
        self, names: list[str], policy: Policy = "none", slaves: frozenset[str] = frozenset(), *, check: bool = True
    ) -> None:
        self.nodes = {n: Node(n) for n in names}
        self.hosts = tuple(names)
        self.policy: Policy = policy
        self.slaves = slaves
        self.clock = 100
        self.check = check
        # Lineage: version key -> the version keys it was written on top of (same path).
        self.parents: dict[tuple[str, bytes | str], set[tuple[str, bytes | str]]] = {}
        self.written: set[tuple[str, bytes | str]] = set()

    # -- local edits ------------------------------------------------------------------------------

    def _tick(self) -> int:
        self.clock += 1
        return self.clock

    @staticmethod
    def key(path: str, rec: Record) -> tuple[str, bytes | str]:
        return (path, label_of(rec) if not rec.deleted else f"-deleted:{(rec.base or b'').rstrip(b'.').decode()}")

    def _write(self, node: str, path: str, new: Record, mtime: int | None = None) -> Record:
        n = self.nodes[node]
        old = n.records.get(path)
        now = self._tick()
        rec = replace(new, vector=bump(old.vector if old else (), node, now), mtime_ns=now if mtime is None else mtime)
        n.records[path] = rec
        k = self.key(path, rec)
        self.written.add(k)
        self.parents.setdefault(k, set())
        if old is not None:
            self.parents[k].add(self.key(path, old))
        n.open_conflicts.pop(path, None)  # a new local edit is the admin's answer too
        return rec

    def edit(self, node: str, path: str, label: str, *, mtime: int | None = None, mode: int = 0o644) -> Record:
        old = self.nodes[node].records.get(path)
        base = old.hash if old is not None and not old.deleted else None
        new = Record(path, Kind.FILE, len(label), mode, hash=content_hash(label), base=base)
        return self._write(node, path, new, mtime)

    def chmod(self, node: str, path: str, mode: int) -> Record:
        old = self.nodes[node].records[path]
        return self._write(node, path, replace(old, mode=mode, base=old.hash), old.mtime_ns)

    def mkdir(self, node: str, path: str) -> Record:
        return self._write(node, path, Record(path, Kind.DIR, 0, 0o755))

    def symlink(self, node: str, path: str, target: str) -> Record:
        return self._write(node, path, Record(path, Kind.SYMLINK, len(target), 0o777, target=target))

    def delete(self, node: str, path: str) -> Record | None:
        old = self.nodes[node].records.get(path)
        if old is None or old.deleted:
            return None
        base = old.hash or content_hash(label_of(old))  # names what was deleted, in the lineage too
        return self._write(node, path, replace(old, deleted=True, hash=None, base=base, target=None))

    def resolve_keep_local(self, node: str, path: str) -> None:
        """``shoal resolve PATH --keep local``: our version, as a new version that dominates the others."""
        n = self.nodes[node]
        rec = n.records[path]
        vec = rec.vector
        for o in n.open_conflicts.get(path, {}).values():
            vec = merge(vec, o.vector)
        n.records[path] = replace(rec, vector=bump(vec, node, self._tick()))
        n.open_conflicts.pop(path, None)

    # -- sessions ---------------------------------------------------------------------------------

    def context(self, me: str, peer: str, started: bool, path: str) -> Context:
        n = self.nodes[me]
        return Context(
            me=me,
            peer=peer,
            policy=self.policy,
            hosts=self.hosts,
            slaves=self.slaves,
            me_started=started,
            force=n.forced.get(path),
            open_conflict=bool(n.open_conflicts.get(path)),
        )

    def sync(self, a: str, b: str) -> None:
        """A session started by ``a``: each side pulls the other's records as they were at the start."""
        snap = {x: dict(self.nodes[x].records) for x in (a, b)}
        for me, peer in ((a, b), (b, a)):
            if me not in self.slaves and peer in self.slaves:
                continue  # masters never pull from slaves (the engine does not even ask)
            for path, remote in sorted(snap[peer].items()):
                self.pull_one(me, peer, path, remote, started=me == a)
            self._keep_parents(me)

    def _keep_parents(self, node: str) -> None:
        """A directory is never removed under a live entry: where our records hold a live path whose
        parent is a tombstone (deleted elsewhere while something was created or kept inside it), the
        directory becomes a new version of ours again, which then travels back to the deleting side."""
        recs = self.nodes[node].records
        for path in sorted(recs, key=lambda p: p.count("/"), reverse=True):
            parent = path.rpartition("/")[0]
            if parent and not recs[path].deleted and parent in recs and recs[parent].deleted:
                self.mkdir(node, parent)

    def pull_one(self, me: str, peer: str, path: str, remote: Record, *, started: bool) -> None:
        n = self.nodes[me]
        local = n.records.get(path)
        d = reconcile(local, remote, self.context(me, peer, started, path))
        if d.action is Action.IGNORE:
            if d.conflict:
                n.open_conflicts.pop(path, None)
            return
        if d.action is Action.CONFLICT:
            n.open_conflicts.setdefault(path, {})[peer] = remote
            return
        vec = stored_vector(d, local, remote)
        if d.bump:
            vec = bump(vec, me, self._tick())
        if d.action is Action.MERGE:
            assert local is None or local.same_content(remote), f"{me}: merge of different payloads at {path}"
            base = remote if (d.take_metadata or local is None) else local
            n.records[path] = replace(base, vector=vec)
        else:
            if self.check and local is not None and not local.deleted and not d.backup:
                self._check_replace(me, path, local, remote)
            if d.backup and local is not None and not local.deleted:
                n.kept.append((path, local))
            n.records[path] = replace(remote, vector=vec)
        if d.conflict or d.backup:
            n.open_conflicts.pop(path, None)
        n.forced.pop(path, None)

    def _check_replace(self, me: str, path: str, local: Record, remote: Record) -> None:
        """Replacing ``local`` without keeping a copy is fine only if it survives somewhere else."""
        held_elsewhere = any(
            r.same_content(local) for x, v in self.nodes.items() if x != me for p, r in v.records.items() if p == path
        )
        edited_on_top = any(self.key(path, local) in ps for ps in self.parents.values())
        built_on = self._built_on(path, remote, local)
        if not (built_on or self._kept_anywhere(path, local) or held_elsewhere or edited_on_top):
            raise LostVersion(f"{me} replaced {label_of(local)} at {path} by {label_of(remote)} without a copy")

    def _kept_anywhere(self, path: str, rec: Record) -> bool:
        return any(p == path and r.same_content(rec) for n in self.nodes.values() for p, r in n.kept)

    def _built_on(self, path: str, newer: Record, older: Record) -> bool:
        """Is ``older`` an ancestor-or-self of ``newer`` in the edit lineage (or does the node hold the
        same payload in another version)?"""
        if newer.same_content(older):
            return True
        target, start = self.key(path, older), self.key(path, newer)
        seen, todo = set(), [start]
        while todo:
            k = todo.pop()
            if k == target:
                return True
            if k not in seen:
                seen.add(k)
                todo.extend(self.parents.get(k, ()))
        return False

    # -- checks -----------------------------------------------------------------------------------

    def converged(self) -> bool:
        views = [{p: label_of(r) for p, r in n.records.items() if not r.deleted} for n in self.masters()]
        return all(v == views[0] for v in views)

    def masters(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.name not in self.slaves]

    def lost_versions(self) -> list[tuple[str, bytes | str]]:
        """Versions written by an edit and never edited further (on any node) that are neither an ancestor
        of something a node holds now nor kept in some node's backups. A version someone edited or deleted
        on top of was superseded on purpose; only its successor has to survive."""
        alive = set()
        for n in self.nodes.values():
            alive |= {self.key(p, r) for p, r in n.records.items()}
            alive |= {self.key(p, r) for p, r in n.kept}
        reach: set[tuple[str, bytes | str]] = set()
        todo = list(alive)
        while todo:
            k = todo.pop()
            if k not in reach:
                reach.add(k)
                todo.extend(self.parents.get(k, ()))
        superseded = set().union(*self.parents.values()) if self.parents else set()
        leaves = self.written - superseded
        return sorted((k for k in leaves - reach if not str(k[1]).startswith("-")), key=str)
