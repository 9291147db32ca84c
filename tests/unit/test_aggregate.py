"""model/aggregate.Aggregator: coalescing, delay from the first event, max-wait, escalation."""

from __future__ import annotations

import pytest

from shoal.model.aggregate import Aggregator


def test_each_path_once_and_due_after_the_first_event() -> None:
    a = Aggregator(delay_s=0.05, max_wait_s=1.0)
    assert a.due_at() is None
    a.add(["/r/a", "/r/b"], now=10.0)
    a.add(["/r/a"], now=10.04)  # more events do not push the batch back
    assert a.due_at() == 10.05
    assert a.take() == ["/r/a", "/r/b"]
    assert a.due_at() is None and a.pending == 0


def test_max_wait_caps_the_delay() -> None:
    a = Aggregator(delay_s=5.0, max_wait_s=0.5)
    a.add(["/r/a"], now=1.0)
    assert a.due_at() == 1.5
    assert not a.overdue(1.4) and a.overdue(1.5)


def test_a_pending_directory_covers_its_subtree() -> None:
    a = Aggregator()
    a.add(["/r/d"], now=0)
    a.add(["/r/d/x", "/r/d/e/f", "/r/other"], now=0)
    assert a.take() == ["/r/d", "/r/other"]


def test_many_entries_of_one_directory_become_the_directory() -> None:
    a = Aggregator(escalate_at=3)
    a.add([f"/r/d/f{i}" for i in range(3)], now=0)
    assert a.pending == 3
    a.add(["/r/d/f3", "/r/e"], now=0)
    assert a.take() == ["/r/d", "/r/e"]


def test_overflow_or_flood_means_everything() -> None:
    a = Aggregator()
    a.add(["/r/a"], now=0)
    a.add(None, now=0)
    a.add(["/r/b"], now=0)
    assert a.take() is None
    b = Aggregator(escalate_at=10**9, flood_at=5)
    b.add([f"/r/{i}/f" for i in range(6)], now=0)
    assert b.take() is None


def test_a_directory_alone_covers_nothing_and_is_due_like_a_path() -> None:
    a = Aggregator(delay_s=0.02)
    a.add_alone(["/r/d"], 10.0)
    assert a.due_at() == 10.02 and a.pending == 1
    a.add(["/r/d/f"], 10.01)  # not covered by a directory alone
    assert a.take_alone() == ["/r/d"] and a.take() == ["/r/d/f"]
    assert a.due_at() is None and a.pending == 0
    a.add(["/r/d"], 11.0)
    a.add_alone(["/r/d", "/r/d/sub"], 11.0)  # a pending subtree covers them
    assert a.take_alone() == [] and a.take() == ["/r/d"]
    a.add(None, 12.0)
    a.add_alone(["/r/x"], 12.0)  # everything covers it too
    assert a.take_alone() == [] and a.take() is None


def test_held_changes_wait_for_release_or_hold_max() -> None:
    a = Aggregator(delay_s=0.01, hold_max_s=1.0)
    a.hold(["/r/busy"], ["/r"], now=5.0)
    a.hold([], [], now=5.5)  # nothing to hold: the first hold's clock stands
    assert a.due_at() is None and a.pending == 2 and a.held_until() == 6.0
    a.release(5.5)  # not done yet, not past hold_max
    assert a.due_at() is None
    a.release(5.6, early=True)  # what kept them busy is done
    assert a.held_until() is None and a.due_at() == pytest.approx(5.61)
    assert a.take_alone() == ["/r"] and a.take() == ["/r/busy"]
    a.hold(["/r/long"], [], now=7.0)
    a.release(7.99)
    assert a.due_at() is None
    a.release(8.0)  # hold_max passed: pending anyway
    assert a.take() == ["/r/long"] and a.pending == 0
