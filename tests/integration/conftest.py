"""Helpers to run the real ``shoal`` command line as a separate process."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from shoal.testing.cluster import Cluster

BIN = Path(sys.executable).parent


@dataclass
class Run:
    rc: int
    out: str
    err: str


class Shoal:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.env = {**os.environ, "SHOAL_STATE_DIR": str(tmp / "state")}

    def __call__(self, *args: str, prog: str = "shoal", timeout: float = 60) -> Run:
        exe = BIN / prog
        cmd = [str(exe), *args] if exe.exists() else [sys.executable, "-m", "shoal", *args]
        p = subprocess.run(
            cmd, capture_output=True, text=True, env=self.env, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
        return Run(p.returncode, p.stdout, p.stderr)


@pytest.fixture
def shoal(tmp_path: Path) -> Shoal:
    return Shoal(tmp_path)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Three nodes (alpha, beta, gamma) laid out under tmp_path; every daemon is stopped afterwards."""
    with Cluster(tmp_path / "c") as c:
        yield c
