"""Shared test fixtures: every test fails if it leaks threads or file descriptors."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import pytest


def _fds() -> set[int]:
    return {int(n) for n in os.listdir("/proc/self/fd")}


@pytest.fixture(autouse=True)
def _no_leaks() -> Iterator[None]:
    threads_before = set(threading.enumerate())
    fds_before = _fds()
    yield
    deadline = time.monotonic() + 2.0
    while True:
        leaked_threads = [t for t in threading.enumerate() if t not in threads_before and t.is_alive()]
        leaked_fds = _fds() - fds_before
        if not leaked_threads and not leaked_fds:
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    details = [f"thread {t.name}" for t in leaked_threads]
    for fd in sorted(leaked_fds):
        try:
            details.append(f"fd {fd} -> {os.readlink(f'/proc/self/fd/{fd}')}")
        except OSError:
            continue  # closed meanwhile (e.g. the listdir fd itself)
    if details:
        pytest.fail("test leaked: " + ", ".join(details))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``slow`` (long fuzzing profiles) run only when asked for with ``-m slow``."""
    if "slow" in (config.getoption("-m") or ""):
        return
    keep = [i for i in items if i.get_closest_marker("slow") is None]
    if len(keep) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i.get_closest_marker("slow") is not None])
        items[:] = keep
