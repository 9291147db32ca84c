"""The pure packages never import I/O modules, and only state/ holds SQL (design.md section 4)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"
PURE = ("config", "model", "proto")
FORBIDDEN = {"asyncio", "socket", "ssl", "sqlite3", "os", "pathlib", "subprocess", "shutil", "io", "time"}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


@pytest.mark.parametrize("package", PURE)
def test_pure_packages_do_no_io(package: str) -> None:
    files = sorted((SRC / package).rglob("*.py"))
    assert files or package == "proto"
    for f in files:
        for mod in imports_of(f):
            top = mod.split(".")[0]
            assert top not in FORBIDDEN, f"{f.relative_to(SRC)} imports {mod}"
            if mod.startswith("shoal."):
                layer = mod.split(".")[1]
                assert layer in (*PURE, "errors"), f"{f.relative_to(SRC)} (pure) imports {mod}"


def test_only_state_uses_sqlite() -> None:
    for f in SRC.rglob("*.py"):
        if f.parent.name == "state":
            continue
        assert "sqlite3" not in {m.split(".")[0] for m in imports_of(f)}, f"{f.relative_to(SRC)} imports sqlite3"
