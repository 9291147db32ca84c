"""3-5 simulated replicas under random edits, deletes, renames, type changes, partitions and syncs.

Decisions come from the real pure ``reconcile``/``resolve``. After any history, healing the partitions
and letting every pair meet (and, under ``auto none``, an admin resolving what stayed open) must
converge every master to the same tree, every slave to the masters' tree, and every version any node
ever wrote must be either an ancestor of what nodes hold or kept as a backup somewhere.

2,000 examples by default; ``-m slow`` runs the 20,000-example profile.
"""

from __future__ import annotations

import itertools
import os

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from shoal.model.reconcile import Policy
from shoal.model.records import Kind
from shoal.testing.replicas import Cluster, label_of

POLICIES: list[Policy] = ["none", "first", "younger", "older", "bigger", "smaller", "left", "right"]
FILES = ["f", "g", "d/x", "d/y"]
NAMES = ["a", "b", "c", "d", "e"]
HEAL_ROUNDS = 12


class Replicas(RuleBasedStateMachine):
    cluster: Cluster

    def __init__(self) -> None:
        super().__init__()
        self.labels = itertools.count()
        self.cut: set[frozenset[str]] = set()

    @initialize(
        n=st.integers(3, 5),
        policy=st.sampled_from(POLICIES),
        slave=st.booleans(),
    )
    def start(self, n: int, policy: Policy, slave: bool) -> None:
        names = NAMES[:n]
        slaves = frozenset({names[-1]}) if slave else frozenset()
        self.cluster = Cluster(names, policy, slaves)
        self.cluster.mkdir(names[0], "d")
        self.cluster.edit(names[0], "f", "f0")
        for other in names[1:]:
            self.cluster.sync(names[0], other)

    def _node(self, data: st.DataObject) -> str:
        return data.draw(st.sampled_from(sorted(self.cluster.nodes)))

    def _live(self, node: str, path: str) -> bool:
        rec = self.cluster.nodes[node].records.get(path)
        return rec is not None and not rec.deleted

    def _dir_ok(self, node: str, path: str) -> bool:
        """Files under d/ need d to be a live directory there (as on a real disk)."""
        if "/" not in path:
            return True
        rec = self.cluster.nodes[node].records.get("d")
        return rec is not None and not rec.deleted and rec.kind is Kind.DIR

    @rule(data=st.data(), path=st.sampled_from(FILES))
    def edit(self, data: st.DataObject, path: str) -> None:
        node = self._node(data)
        if self._dir_ok(node, path) and not (self._live(node, path) and self._kind(node, path) is Kind.DIR):
            self.cluster.edit(node, path, f"v{next(self.labels)}" + "x" * data.draw(st.integers(0, 3)))

    def _kind(self, node: str, path: str) -> Kind:
        return self.cluster.nodes[node].records[path].kind

    @rule(data=st.data(), path=st.sampled_from(FILES))
    def delete(self, data: st.DataObject, path: str) -> None:
        self.cluster.delete(self._node(data), path)

    @rule(data=st.data())
    def rename_f_to_g(self, data: st.DataObject) -> None:
        node = self._node(data)
        rec = self.cluster.nodes[node].records.get("f")
        if rec is not None and not rec.deleted and rec.kind is Kind.FILE:
            label = label_of(rec)
            self.cluster.delete(node, "f")
            self.cluster.edit(node, "g", label)

    @rule(data=st.data())
    def delete_dir_tree(self, data: st.DataObject) -> None:
        node = self._node(data)
        for p in ("d/x", "d/y", "d"):
            self.cluster.delete(node, p)

    @rule(data=st.data())
    def make_dir_again(self, data: st.DataObject) -> None:
        node = self._node(data)
        if not self._live(node, "d"):
            self.cluster.mkdir(node, "d")

    @rule(data=st.data(), path=st.sampled_from(["f", "g"]))
    def type_change(self, data: st.DataObject, path: str) -> None:
        node = self._node(data)
        if data.draw(st.booleans()):
            self.cluster.mkdir(node, path)
        else:
            self.cluster.symlink(node, path, f"t{next(self.labels)}")

    @rule(data=st.data())
    def sync(self, data: st.DataObject) -> None:
        a, b = data.draw(st.permutations(sorted(self.cluster.nodes)))[:2]
        if frozenset((a, b)) not in self.cut:
            self.cluster.sync(a, b)

    @rule(data=st.data())
    def partition(self, data: st.DataObject) -> None:
        a, b = data.draw(st.permutations(sorted(self.cluster.nodes)))[:2]
        self.cut ^= {frozenset((a, b))}

    @precondition(lambda self: any(n.open_conflicts for n in self.cluster.nodes.values()))
    @rule(data=st.data())
    def admin_resolves(self, data: st.DataObject) -> None:
        nodes = sorted(n for n, v in self.cluster.nodes.items() if v.open_conflicts)
        node = data.draw(st.sampled_from(nodes))
        path = data.draw(st.sampled_from(sorted(self.cluster.nodes[node].open_conflicts)))
        self.cluster.resolve_keep_local(node, path)

    @invariant()
    def nothing_lost_so_far(self) -> None:
        assert self.cluster.lost_versions() == []

    def teardown(self) -> None:
        c = getattr(self, "cluster", None)
        if c is None:
            return
        names = sorted(c.nodes)
        for _ in range(HEAL_ROUNDS):
            for a, b in itertools.permutations(names, 2):
                c.sync(a, b)
            # the admin settles each open conflict once, on the first node that shows it
            settled: set[str] = set()
            for n in names:
                for path in sorted(c.nodes[n].open_conflicts):
                    if path not in settled:
                        settled.add(path)
                        c.resolve_keep_local(n, path)
            if c.converged() and not any(v.open_conflicts for v in c.nodes.values()):
                break
        for a, b in itertools.permutations(names, 2):
            c.sync(a, b)
        masters = [n for n in names if n not in c.slaves]
        trees = {n: {p: label_of(r) for p, r in sorted(c.nodes[n].records.items())} for n in names}
        first = trees[masters[0]]
        assert all(trees[m] == first for m in masters), trees
        for s in c.slaves:
            # A slave matches the masters on every path they know. Its own new paths stay (nobody has
            # a version to replace them with), and so do the directories holding them.
            own = [p for p, label in trees[s].items() if label != "-" and first.get(p, "-") == "-"]
            known = {p: trees[s].get(p, "-") for p in first if not any(o.startswith(p + "/") for o in own)}
            assert known == {p: first[p] for p in known}, trees
        assert not any(v.open_conflicts for v in c.nodes.values())
        assert c.lost_versions() == []


DEFAULT = settings(
    max_examples=2000, stateful_step_count=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
SLOW = settings(DEFAULT, max_examples=20_000, stateful_step_count=40)


@pytest.mark.timeout(600)
def test_replicas_converge() -> None:
    Replicas.TestCase.settings = settings(DEFAULT, max_examples=int(os.environ.get("SHOAL_SM_EXAMPLES", "2000")))
    Replicas.TestCase().runTest()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_replicas_converge_slow() -> None:
    Replicas.TestCase.settings = SLOW
    Replicas.TestCase().runTest()
