"""The per-directory fast path gives the same verdicts as classifying each path on its own."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.model.patterns import Matcher, Rule, Verdict

NAMES = ["a", "b", ".h", "x.log", "ab", "keep"]
components = st.lists(st.sampled_from(NAMES), min_size=0, max_size=4)
patterns = st.one_of(
    st.sampled_from(["*.log", ".*", "keep", "a", "b*", "[ab]", "*"]),
    st.lists(st.sampled_from([*NAMES, "*", "**", "?", "[ab]", "a*"]), min_size=0, max_size=4).map(
        lambda parts: "/r" + "".join("/" + p for p in parts)
    ),
)
rule_lists = st.lists(st.builds(Rule, st.sampled_from(["include", "exclude", "compare"]), patterns), max_size=6)


@settings(max_examples=1500, deadline=None)
@given(groups=st.lists(rule_lists, min_size=1, max_size=3), parent=components, child=st.sampled_from(NAMES))
def test_for_children_agrees_with_classify(groups: list[list[Rule]], parent: list[str], child: str) -> None:
    matcher = Matcher([(f"g{i}", rules) for i, rules in enumerate(groups)])
    directory = "/r" + "".join("/" + p for p in parent)
    path = f"{directory}/{child}"
    fast = matcher.for_children(directory)
    got = fast if isinstance(fast, bool) else fast(child)
    want = matcher.classify(path)
    assert got == (want is Verdict.MANAGED)
    if want is Verdict.WALK:
        assert matcher.step_into_any(path)


@settings(max_examples=500, deadline=None)
@given(
    groups=st.lists(rule_lists, min_size=1, max_size=3),
    paths=st.lists(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5), min_size=1, max_size=10),
)
def test_managed_cached_agrees_with_is_managed(groups: list[list[Rule]], paths: list[list[str]]) -> None:
    matcher = Matcher([(f"g{i}", rules) for i, rules in enumerate(groups)])
    cache: dict[str, bool] = {}
    for parts in paths:
        path = "/r/" + "/".join(parts)
        assert matcher.managed_cached(path, cache) == matcher.is_managed(path)
