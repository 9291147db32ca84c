"""On random trees and rule lists, the scanner records exactly the paths ``Matcher.is_managed`` accepts."""

from __future__ import annotations

import os
import tempfile

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, resolve
from shoal.fs import walk
from shoal.fs.scan import Scanner
from shoal.state.db import StateDB

NAMES = ["a", "b", ".h", "x.log", "c.tmp", "keep"]

rel_paths = st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=4).map("/".join), min_size=1, max_size=25)
rules = st.lists(
    st.tuples(
        st.sampled_from(["include", "exclude"]),
        st.one_of(
            st.sampled_from(["*.log", ".*", "*.tmp", "keep", "a", "b*", "[ab]"]),
            st.lists(st.sampled_from([*NAMES, "*", "**", "?"]), min_size=0, max_size=3).map(
                lambda parts: "%root%" + "".join("/" + p for p in parts)
            ),
        ),
    ),
    min_size=1,
    max_size=6,
)


def probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "k" * 64)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=rel_paths, rule_list=rules)
def test_scanned_set_equals_managed_set(files: list[str], rule_list: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = os.path.join(tmp, "root")
        os.mkdir(root)
        existing = {root}
        for rel in files:
            parts = rel.split("/")
            for i in range(1, len(parts)):
                d = os.path.join(root, *parts[:i])
                if os.path.isfile(d):
                    break
                os.makedirs(d, exist_ok=True)
                existing.add(d)
            else:
                full = os.path.join(root, *parts)
                if not os.path.isdir(full):
                    with open(full, "w") as f:
                        f.write(rel)
                    existing.add(full)
        body = " ".join(f'{kind} "{pat}";' for kind, pat in rule_list)
        text = f"group g {{ host n1; key k; {body} }} prefix root {{ on n1: {root}; }}"
        cfg = resolve(parse_text(text), "n1", probe)
        matcher = cfg.matcher()
        expected = {p for p in existing if matcher.is_managed(p)}
        with StateDB.open(os.path.join(tmp, "s.db")) as db:
            Scanner(db, cfg).scan()
            scanned = {r.path.replace("%root%", root, 1) for r in db.all_records()}
            assert scanned == expected
            saved = walk.PARALLEL_MIN_RECORDS
            walk.PARALLEL_MIN_RECORDS = 1  # the second scan splits the walk over two processes
            try:
                again = Scanner(db, cfg).scan()
            finally:
                walk.PARALLEL_MIN_RECORDS = saved
            assert again.recorded == 0 and again.forgotten == 0
            assert again.unchanged == len(expected)
