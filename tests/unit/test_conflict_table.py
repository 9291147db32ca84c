"""The conflict decision table: every scenario under every ``auto`` policy, outcome stated on every node.

Each row sets up edits on simulated replicas (records only, decided by the real ``reconcile``), runs the
listed sessions (the first node named starts each one) and states what every node holds afterwards
("-" = nothing), which versions each node kept as backups, and which nodes still hold an open conflict.
The simulator independently refuses any replacement of a version that was not built on it unless the
decision keeps a copy (``LostVersion``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from shoal.model.reconcile import Policy
from shoal.testing.replicas import Cluster, label_of

POLICIES: tuple[Policy, ...] = ("none", "first", "younger", "older", "bigger", "smaller", "left", "right")

Op = tuple[object, ...]


@dataclass(frozen=True)
class Scenario:
    name: str
    ops: tuple[Op, ...]  #: (verb, node, argument, mtime, path, mode), trailing ones optional
    sessions: tuple[tuple[str, str], ...]
    #: policy -> {node: what it holds at path "f" (or {path: label} per node for tree cases)}
    expect: dict[str, dict[str, object]]
    kept: dict[str, dict[str, list[str]]] = field(default_factory=dict)  #: policy -> node -> kept labels
    open_: dict[str, set[str]] = field(default_factory=dict)  #: policy -> nodes with an open conflict
    nodes: tuple[str, ...] = ("a", "b")
    slaves: frozenset[str] = frozenset()
    path: str = "f"


def every(value: dict[str, object]) -> dict[str, dict[str, object]]:
    return {p: value for p in POLICIES}


def by_winner(a: dict[str, object], b: dict[str, object], winners: str) -> dict[str, dict[str, object]]:
    """``winners``: one letter per policy in POLICIES order after 'none': a = a's version, b = b's."""
    return {p: (a if w == "a" else b) for p, w in zip(POLICIES[1:], winners, strict=True)}


BASE = (("edit", "a", "base"), ("sync", "a", "b"))


def both(label: str, nodes: tuple[str, ...] = ("a", "b")) -> dict[str, object]:
    return {n: label for n in nodes}


def loser_kept(winners: str, a_label: str, b_label: str) -> dict[str, dict[str, list[str]]]:
    """The node whose version lost keeps it (only live versions are kept; a deletion has nothing to keep)."""
    out: dict[str, dict[str, list[str]]] = {"none": {}}
    for p, w in zip(POLICIES[1:], winners, strict=True):
        loser, label = ("b", b_label) if w == "a" else ("a", a_label)
        out[p] = {loser: [label]} if label != "-" else {}
    return out


def conflict(name: str, ops: tuple[Op, ...], a_label: str, b_label: str, winners: str, **kw: object) -> Scenario:
    expect = {"none": {"a": a_label, "b": b_label}, **by_winner(both(a_label), both(b_label), winners)}
    return Scenario(
        name, BASE + ops, (("a", "b"),), expect, loser_kept(winners, a_label, b_label), {"none": {"a", "b"}}, **kw
    )


#                                        first younger older bigger smaller left right
SCENARIOS = [
    conflict("both modified, b later and bigger", (("edit", "a", "aa"), ("edit", "b", "bbb")), "aa", "bbb", "ababaab"),
    conflict("both modified, a later and bigger", (("edit", "b", "b"), ("edit", "a", "aaaa")), "aaaa", "b", "aababab"),
    conflict(
        "both modified, equal mtime, b bigger",
        (("edit", "a", "a1", 500), ("edit", "b", "b22", 500)),
        "a1",
        "b22",
        # equal mtimes: younger and older both fall to the fixed tie-break (greater size, then hash, wins)
        "abbbaab",
    ),
    conflict(
        "both modified, equal mtime and size",
        (("edit", "a", "xa", 500), ("edit", "b", "xb", 500)),
        "xa",
        "xb",
        # everything equal but the content: the greater hash wins under younger/older/bigger/smaller
        "abbbbab",
    ),
    conflict("modify here, delete there", (("edit", "a", "am"), ("del", "b")), "am", "-", "aaaaaab"),
    conflict("delete here, modify there", (("del", "a"), ("edit", "b", "bm")), "-", "bm", "abbbbab"),
    conflict("file here, dir there (dir first)", (("mkdir", "a"), ("edit", "b", "bb")), "dir", "bb", "ababaab"),
    conflict("dir here, file there (file first)", (("edit", "b", "bb"), ("mkdir", "a")), "dir", "bb", "aabbaab"),
    conflict("symlink here, file there", (("link", "a", "t"), ("edit", "b", "bb")), "->t", "bb", "ababaab"),
    conflict("file here, symlink there", (("edit", "a", "aa"), ("link", "b", "t")), "aa", "->t", "abaabab"),
    Scenario(
        "b starts: first picks b",
        (*BASE, ("edit", "a", "aa"), ("edit", "b", "bbb")),
        (("b", "a"),),
        {"none": {"a": "aa", "b": "bbb"}, **by_winner(both("aa"), both("bbb"), "bbabaab")},
        loser_kept("bbabaab", "aa", "bbb"),
        {"none": {"a", "b"}},
    ),
    Scenario(
        "identical edits on both sides",
        (*BASE, ("edit", "a", "same"), ("edit", "b", "same")),
        (("a", "b"),),
        every(both("same")),
    ),
    Scenario("both deleted", (*BASE, ("del", "a"), ("del", "b")), (("a", "b"),), every(both("-"))),
    Scenario("modified on a only", (*BASE, ("edit", "a", "new")), (("b", "a"),), every(both("new"))),
    Scenario("deleted on b only", (*BASE, ("del", "b")), (("a", "b"),), every(both("-"))),
    Scenario(
        "metadata change on one side",
        (*BASE, ("chmod", "a", 0o600)),
        (("a", "b"),),
        every(both("base@600")),
    ),
    Scenario(
        "metadata changes on both sides: the later one wins",
        (*BASE, ("chmod", "b", 0o640), ("edit", "a", "base", 900, None, 0o600)),
        (("a", "b"),),
        every(both("base@600")),
    ),
    Scenario(
        "content on a, mode on b: the content change was made on the base b still has",
        (*BASE, ("edit", "a", "new"), ("chmod", "b", 0o600)),
        (("a", "b"),),
        every(both("new")),
    ),
    Scenario(
        "slave edits: the master ignores it, the slave takes the master's version back",
        (*BASE, ("edit", "b", "slave")),
        (("a", "b"),),
        every(both("base")),
        every({"b": ["slave"]}),  # type: ignore[arg-type]
        slaves=frozenset({"b"}),
    ),
    Scenario(
        "slave and master both edit: the master's wins on the slave",
        (*BASE, ("edit", "b", "slave"), ("edit", "a", "master")),
        (("b", "a"),),
        every(both("master")),
        every({"b": ["slave"]}),  # type: ignore[arg-type]
        slaves=frozenset({"b"}),
    ),
    Scenario(
        "slave deletes: the file comes back",
        (*BASE, ("del", "b")),
        (("b", "a"),),
        every(both("base")),
        slaves=frozenset({"b"}),
    ),
    Scenario(
        "master edits: the slave follows",
        (*BASE, ("edit", "a", "m2")),
        (("a", "b"),),
        every(both("m2")),
        slaves=frozenset({"b"}),
    ),
    Scenario(
        "slave is a (left of b): host order never makes a slave win",
        (*BASE, ("edit", "a", "sl"), ("edit", "b", "mm")),
        (("a", "b"),),
        every(both("mm")),
        every({"a": ["sl"]}),  # type: ignore[arg-type]
        slaves=frozenset({"a"}),
    ),
    Scenario(
        "three nodes, a and c write, b relays",
        (("edit", "a", "base"), ("sync", "a", "b"), ("sync", "b", "c"), ("edit", "a", "aa"), ("edit", "c", "ccc")),
        (("a", "b"), ("b", "c"), ("a", "b")),
        {
            "none": {"a": "aa", "b": "aa", "c": "ccc"},
            # first: b started the b-c session, holding a's version
            **by_winner(both("aa", ("a", "b", "c")), both("ccc", ("a", "b", "c")), "ababaab"),
        },
        {
            "none": {},
            "first": {"c": ["ccc"]},
            "younger": {"b": ["aa"]},
            "older": {"c": ["ccc"]},
            "bigger": {"b": ["aa"]},
            "smaller": {"c": ["ccc"]},
            "left": {"c": ["ccc"]},
            "right": {"b": ["aa"]},
        },
        {"none": {"b", "c"}},
        nodes=("a", "b", "c"),
    ),
    Scenario(
        "three nodes, all three write, then everyone meets",
        (
            ("edit", "a", "base"),
            ("sync", "a", "b"),
            ("sync", "b", "c"),
            ("edit", "a", "a"),
            ("edit", "b", "bb"),
            ("edit", "c", "ccc"),
        ),
        (("a", "b"), ("b", "c"), ("c", "a"), ("a", "b"), ("b", "c")),
        {
            "none": {"a": "a", "b": "bb", "c": "ccc"},
            "first": both("a", ("a", "b", "c")),
            "younger": both("ccc", ("a", "b", "c")),
            "older": both("a", ("a", "b", "c")),
            "bigger": both("ccc", ("a", "b", "c")),
            "smaller": both("a", ("a", "b", "c")),
            "left": both("a", ("a", "b", "c")),
            "right": both("ccc", ("a", "b", "c")),
        },
        {
            "none": {},
            **{p: {"b": ["bb"], "c": ["ccc"]} for p in ("first", "older", "smaller", "left")},
            **{p: {"a": ["a", "bb"], "b": ["bb"]} for p in ("younger", "bigger", "right")},
        },
        {"none": {"a", "b", "c"}},
        nodes=("a", "b", "c"),
    ),
]

# Tree cases: a directory deleted on one side while something inside it was created or modified on the
# other. A directory is never removed under a live entry; it comes back everywhere.
TREE_BASE = (("mkdir", "a", None, None, "d"), ("edit", "a", "x", None, "d/x"), ("sync", "a", "b"))
TREE = [
    Scenario(
        "dir deleted on a, child modified on b",
        (*TREE_BASE, ("del", "a", None, None, "d/x"), ("del", "a", None, None, "d"), ("edit", "b", "x2", None, "d/x")),
        (("a", "b"), ("a", "b")),
        {
            "none": {"a": {"d": "dir", "d/x": "-"}, "b": {"d": "dir", "d/x": "x2"}},
            # the modification beats the deletion under these four; first and left pick a (the deleter)
            **{
                p: {n: {"d": "dir", "d/x": "x2"} for n in "ab"}
                for p in ("younger", "older", "bigger", "smaller", "right")
            },
            **{p: {n: {"d": "-", "d/x": "-"} for n in "ab"} for p in ("first", "left")},
        },
        {
            "none": {},
            **{p: {} for p in ("younger", "older", "bigger", "smaller", "right")},
            "first": {"b": ["x2"]},
            "left": {"b": ["x2"]},
        },
        {"none": {"a", "b"}},
    ),
    Scenario(
        "dir deleted on a, new child created on b",
        (*TREE_BASE, ("del", "a", None, None, "d/x"), ("del", "a", None, None, "d"), ("edit", "b", "y", None, "d/y")),
        (("a", "b"), ("a", "b")),
        every({n: {"d": "dir", "d/x": "-", "d/y": "y"} for n in "ab"}),
    ),
]


def run(sc: Scenario, policy: Policy) -> Cluster:
    c = Cluster(list(sc.nodes), policy, sc.slaves)
    for op in sc.ops:
        kind, node, arg, mtime, path, mode = (*op, None, None, None, None)[:6]
        node, where = str(node), str(path or sc.path)
        if kind == "sync":
            c.sync(node, str(arg))
        elif kind == "edit":
            c.edit(node, where, str(arg), mtime=mtime, mode=mode or 0o644)  # type: ignore[arg-type]
        elif kind == "del":
            c.delete(node, where)
        elif kind == "mkdir":
            c.mkdir(node, where)
        elif kind == "link":
            c.symlink(node, where, str(arg))
        else:
            assert kind == "chmod"
            c.chmod(node, where, int(arg))  # type: ignore[call-overload]
    for a, b in sc.sessions:
        c.sync(a, b)
    return c


def view(c: Cluster, node: str, path: str) -> str:
    rec = c.nodes[node].records.get(path)
    label = label_of(rec)
    if rec is not None and not rec.deleted and rec.kind.name == "FILE" and rec.mode != 0o644:
        label += f"@{rec.mode:o}"
    return label


CASES = [(sc, p) for sc in SCENARIOS + TREE for p in POLICIES]


@pytest.mark.parametrize(("sc", "policy"), CASES, ids=[f"{sc.name} [{p}]" for sc, p in CASES])
def test_outcome_on_every_node(sc: Scenario, policy: Policy) -> None:
    c = run(sc, policy)
    for node, want in sc.expect[policy].items():
        if isinstance(want, dict):
            got: object = {p: view(c, node, p) for p in want}
        else:
            got = view(c, node, sc.path)
        assert got == want, f"node {node}"
    kept = {n: sorted(label_of(r) for _, r in c.nodes[n].kept) for n in sc.nodes}
    want_kept = sc.kept.get(policy, {})
    assert kept == {n: sorted(want_kept.get(n, [])) for n in sc.nodes}
    assert {n for n in sc.nodes if c.nodes[n].open_conflicts} == sc.open_.get(policy, set())
    assert c.lost_versions() == []


def test_table_size() -> None:
    assert len(CASES) >= 100


def test_slave_never_keeps_a_version_the_masters_settled_against() -> None:
    """Found by the state machine: a slave resolved a pair its own way and ended with the masters' exact
    vector but other content; masters never pull from slaves, so it stayed diverged. A slave now always
    takes a master's version in a conflict, equal vectors included."""
    c = Cluster(["a", "b", "c", "d"], "older", frozenset({"d"}))
    c.edit("a", "f", "f0")
    for n in "bcd":
        c.sync("a", n)
    c.edit("a", "f", "v0")
    c.sync("a", "c")
    c.edit("b", "f", "v1")
    c.edit("c", "f", "v2")  # made on top of v0
    c.sync("c", "d")
    c.sync("d", "b")  # the slave meets b's v1 first
    for a, b in (("a", "b"), ("a", "c"), ("b", "c"), ("a", "b"), ("a", "d"), ("b", "d"), ("c", "d")):
        c.sync(a, b)
    assert {n: label_of(c.nodes[n].records["f"]) for n in "abcd"} == dict.fromkeys("abcd", "v2")
    assert c.lost_versions() == []
