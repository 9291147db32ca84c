"""check_path's quick acceptance of common paths agrees with the rules stated per component."""

from __future__ import annotations

from hypothesis import example, given, settings
from hypothesis import strategies as st

from shoal.model.paths import MAX_NAME_BYTES, MAX_PATH_BYTES, UnsafePath, check_path


def by_the_rules(path: str) -> bool:
    if "\x00" in path or not path.startswith("/"):
        return False
    if path == "/":
        return True
    if len(path.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        return False
    return all(
        part not in ("", ".", "..") and len(part.encode("utf-8", "surrogateescape")) <= MAX_NAME_BYTES
        for part in path[1:].split("/")
    )


def accepted(path: str) -> bool:
    try:
        check_path(path)
    except UnsafePath:
        return False
    return True


good = st.text(alphabet="abé.-", min_size=1, max_size=6).filter(lambda t: t not in (".", ".."))
component = st.one_of(
    good,
    good,
    good,
    st.sampled_from(["", ".", "..", "\x00", "a/b"]),
    st.integers(MAX_NAME_BYTES - 2, MAX_NAME_BYTES + 2).map(lambda n: "n" * n),
    st.integers(MAX_NAME_BYTES // 2 - 1, MAX_NAME_BYTES // 2 + 1).map(lambda n: "é" * n),  # 2 bytes each
)


@settings(max_examples=3000, deadline=None)
@given(st.lists(component, min_size=0, max_size=6), st.booleans(), st.booleans())
@example(["a", "..", "b"], True, False)
@example(["a", ".", "b"], True, False)
@example(["a", "", "b"], True, False)
@example(["a", ".."], True, False)
def test_check_path_matches_the_rules(parts: list[str], lead: bool, trail: bool) -> None:
    path = ("/" if lead else "") + "/".join(parts) + ("/" if trail else "")
    assert accepted(path) == by_the_rules(path), repr(path)
