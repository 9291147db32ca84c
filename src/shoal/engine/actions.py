"""Running ``action`` commands after changes: once per batch, in order, each with a timeout.

Owns: starting ``/bin/sh -c COMMAND`` with stdin from /dev/null and stdout/stderr appended to the
action's logfile (or discarded), killing the process group at the timeout, and logging the exit status
(also appended to the logfile). Must not: decide which commands run (model/actions.py), or take a
command from anywhere but the local config (peers only ever send paths and records).

Jobs queue up and run one after another in a background task, so a slow command never holds up the
exchange that triggered it; ``drain`` waits for the queue (a one-shot sync does before it exits, the
daemon on shutdown).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Sequence

from shoal.config.resolve import NodeConfig
from shoal.model.actions import Job, plan
from shoal.model.paths import PathMap
from shoal.model.patterns import Matcher

log = logging.getLogger(__name__)

ACTION_TIMEOUT_S = 300.0


class ActionRunner:
    def __init__(self, cfg: NodeConfig, pmap: PathMap, timeout_s: float = ACTION_TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self.pmap = pmap
        self._groups = [(g, Matcher([(g.name, g.rules)])) for g in cfg.groups if g.actions]
        self._queue: asyncio.Queue[Job] | None = None
        self._task: asyncio.Task[None] | None = None
        self.ran = 0

    def changed(self, logical_paths: Sequence[str], *, local: bool) -> None:
        """Queue the jobs that ``logical_paths`` (just applied, or just recorded here when ``local``) fire."""
        if not self._groups or not logical_paths:
            return
        reals = [r for r in (self.pmap.to_real_safe(p) for p in logical_paths) if r is not None]
        for group, matcher in self._groups:
            mine = [r for r in reals if matcher.is_managed(r)]
            for job in plan(group.actions, mine, local=local):
                self._submit(job)

    def _submit(self, job: Job) -> None:
        if self._queue is None:
            self._queue = asyncio.Queue()
        self._queue.put_nowait(job)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._worker(), name="shoal-actions")

    async def _worker(self) -> None:
        assert self._queue is not None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            try:
                await self._run(job)
            except Exception:  # one broken action must not stop the others
                log.exception("action %r failed to run", job.command)
            finally:
                self._queue.task_done()

    async def drain(self) -> None:
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self, job: Job) -> None:
        out = None
        if job.logfile:
            try:
                out = open(job.logfile, "ab")  # noqa: SIM115 (closed below, after the process ends)
            except OSError as e:
                log.warning("action %r: cannot open logfile %s: %s; output discarded", job.command, job.logfile, e)
        started = time.monotonic()
        try:
            proc = await asyncio.create_subprocess_exec(
                "/bin/sh",
                "-c",
                job.command,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=out if out is not None else asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.STDOUT if out is not None else asyncio.subprocess.DEVNULL,
                start_new_session=True,
            )
            try:
                rc = await asyncio.wait_for(proc.wait(), self.timeout_s)
                status = f"exited with {rc}"
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                await proc.wait()
                rc = -1
                status = f"killed after {self.timeout_s:.0f}s"
            self.ran += 1
            line = (
                f"shoal: action {job.command!r} {status} ({time.monotonic() - started:.2f}s, {len(job.paths)} path(s))"
            )
            (log.info if rc == 0 else log.warning)("%s", line)
            if out is not None:
                out.write(line.encode() + b"\n")
        finally:
            if out is not None:
                out.close()
