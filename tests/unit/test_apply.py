"""Receiving files (fs/apply.py) on a real temporary tree: what a failure must leave alone."""

from __future__ import annotations

import asyncio
import os
import threading
import time
from pathlib import Path

import blake3
import pytest

from shoal.engine.exchange import _whole
from shoal.fs.apply import TMP_PREFIX, ApplyError, FileWriter, Tree
from shoal.model.records import Kind, Record


def test_a_failed_finish_then_abort_closes_nothing_else(tmp_path: Path) -> None:
    """A transfer whose content did not match its hash was aborted twice: by ``finish`` and again by the
    session. The second close(2) hit whatever had been opened since under the same number (in the
    partition campaign: the scanner's directory listing, which then failed with ENOTDIR)."""
    rec = Record("%d%/f", Kind.FILE, size_bytes=5, mode=0o644, hash=blake3.blake3(b"right").digest())
    with Tree([str(tmp_path)]) as tree:
        w = FileWriter(tree, str(tmp_path / "f"), rec, None)
        w.write(b"wrong")
        with pytest.raises(ApplyError, match="does not match"):
            w.finish()
        sentinel = os.open(tmp_path / "sentinel", os.O_CREAT | os.O_RDWR, 0o600)  # the lowest free number
        try:
            w.abort()
            w.abort()
            os.fstat(sentinel)  # still ours
            assert os.write(sentinel, b"ok") == 2
        finally:
            os.close(sentinel)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sentinel"]
    assert not any(p.name.startswith(TMP_PREFIX) for p in tmp_path.iterdir())


def test_a_cancelled_batch_waits_for_its_thread() -> None:
    """A cancelled apply must not close its directory fds while its thread still renames through them."""
    finished = threading.Event()

    def work() -> int:
        time.sleep(0.3)
        finished.set()
        return 1

    async def scenario() -> None:
        task = asyncio.create_task(_whole(work))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert finished.is_set()  # the cancellation surfaced only after the thread was done
        assert await _whole(lambda: 7) == 7

    asyncio.run(scenario())
