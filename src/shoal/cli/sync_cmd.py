"""``shoal sync``: scan, then exchange with every reachable peer in parallel; a summary at the end."""

from __future__ import annotations

import dataclasses
import os
import sys
from typing import TYPE_CHECKING, Any

import click

from shoal.cli.context import AppContext
from shoal.cli.quick import absolute
from shoal.cli.sync_text import refusal, render, size

if TYPE_CHECKING:
    from shoal.engine.reports import SyncReport


@click.command("sync")
@click.argument("paths", nargs=-1)
@click.option("--peer", "peers", multiple=True, metavar="P", help="Only this peer (repeatable).")
@click.option("--group", "groups", multiple=True, metavar="G", help="Only peers of this group (repeatable).")
@click.option("--dry-run", is_flag=True, help="Change nothing; show what pulling would change here.")
@click.option("--push-only", is_flag=True, help="Let peers take our changes; take none of theirs.")
@click.option("--standalone", is_flag=True, help="Do the work in this process even if a daemon runs here.")
@click.option(
    "--full",
    is_flag=True,
    help="Scan every managed tree even when a watching daemon does the work (it scans only what its "
    "watcher reported, unless told this).",
)
@click.pass_obj
def sync(
    app: AppContext,
    paths: tuple[str, ...],
    peers: tuple[str, ...],
    groups: tuple[str, ...],
    dry_run: bool,
    push_only: bool,
    standalone: bool,
    full: bool,
) -> int:
    """Scan local changes (or only PATHs), then exchange with every reachable peer.

    When this node's daemon runs, it does the work (it has everything loaded already); otherwise this
    process does. A watching daemon trusts its watcher and scans only what changed; --full scans all
    (this process always does)."""
    request = {
        "verb": "sync",
        "paths": absolute(paths),
        "peers": [p.lower() for p in peers],
        "groups": list(groups),
        "dry_run": dry_run,
        "push_only": push_only,
        "full": full,
    }
    answer = None
    if not standalone:
        from shoal.control.protocol import call, socket_path

        if sys.stdout.isatty() and os.path.exists(socket_path(app.state_dir)):
            from rich.console import Console

            with Console().status("syncing (this node's daemon does the work)..."):
                answer = call(app.state_dir, request)
        else:
            answer = call(app.state_dir, request)
    if answer is None:
        answer = {"report": dataclasses.asdict(_standalone(app, request))}
    why = refusal(answer)
    if why is not None:
        raise click.ClickException(why)
    return render(answer["report"], app.verbose)


def _standalone(app: AppContext, request: dict[str, Any]) -> SyncReport:
    """The same work the daemon does for a ``sync`` request, in this process."""
    import asyncio

    from shoal.engine.replica import Replica
    from shoal.engine.sync import scan_first, sync_once

    cfg = app.node_config()
    peers: list[str] = request["peers"]
    unknown = [p for p in peers if p not in cfg.peers()]
    if unknown:
        raise click.UsageError(f"not a peer of this node: {', '.join(unknown)}")
    paths = request["paths"] or None
    scanned = None if request["dry_run"] else scan_first(cfg, app.state_dir, paths)

    async def main() -> SyncReport:
        replica = await Replica.open(cfg, app.state_dir)
        try:
            kwargs: dict[str, Any] = dict(
                paths=paths,
                peers=peers or None,
                groups=request["groups"] or None,
                dry_run=request["dry_run"],
                push_only=request["push_only"],
                scanned=scanned,
            )
            if not sys.stdout.isatty():
                return await sync_once(replica, **kwargs)
            bars = _Bars(sorted(peers or cfg.peers()))
            with bars.progress:
                return await sync_once(replica, progress=bars.update, **kwargs)
        finally:
            await replica.close()

    return asyncio.run(main())


class _Bars:
    """One live row per peer on a terminal: files and bytes each way, updated as batches complete."""

    def __init__(self, peers: list[str]) -> None:
        from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

        self.progress = Progress(SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn(), transient=True)
        self.tasks = {p: self.progress.add_task(f"{p}: connecting", total=None) for p in peers}

    def update(self, r: Any) -> None:
        task = self.tasks.get(r.peer)
        if task is not None:
            self.progress.update(
                task,
                description=f"{r.peer}: received {r.files_in} files ({size(r.bytes_in)}), "
                f"sent {r.files_out} ({size(r.bytes_out)})",
            )
