"""Waiting for a condition in tests and benches: poll until it holds or fail saying what never happened."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(
    check: Callable[[], bool], timeout_s: float = 15.0, what: str = "condition", poll_s: float = 0.02
) -> float:
    """Seconds until ``check()`` held (an OSError counts as not yet: files come and go); AssertionError
    naming ``what`` after ``timeout_s``."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout_s:
        try:
            if check():
                return time.monotonic() - t0
        except OSError:
            pass
        time.sleep(poll_s)
    raise AssertionError(f"timed out waiting for {what}")
