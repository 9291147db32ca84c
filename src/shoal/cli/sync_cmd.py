"""``shoal sync``: scan, then exchange with every reachable peer in parallel; a summary at the end."""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from shoal.cli.context import AppContext


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


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
        "paths": list(paths),
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
    from shoal.engine.reports import SyncReport

    report: object
    if answer is not None:
        if "error" in answer:
            raise click.ClickException(f"the daemon refused: {answer['error']}")
        report = SyncReport.from_json(answer["report"])
    else:
        report = _standalone(app, request)
    return _render(app, report)


def _standalone(app: AppContext, request: dict[str, Any]) -> object:
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

    async def main() -> object:
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
                description=f"{r.peer}: received {r.files_in} files ({_size(r.bytes_in)}), "
                f"sent {r.files_out} ({_size(r.bytes_out)})",
            )


def _render(app: AppContext, report: object) -> int:
    from shoal.engine.reports import SyncReport

    assert isinstance(report, SyncReport)
    if report.scan is not None and (report.scan.recorded or app.verbose):
        s = report.scan
        click.echo(f"local: {s.new} new, {s.changed} changed, {s.metadata} metadata, {s.deleted} deleted")
    reasons: list[str] = []
    for sess in report.sessions:
        if sess.error:
            click.echo(f"{sess.peer}: failed: {sess.error}")
            reasons.append(f"{sess.peer}: {sess.error}")
            continue
        click.echo(
            f"{sess.peer}: received {sess.files_in} files ({_size(sess.bytes_in)}), {sess.deleted_in} "
            f"deletions; sent {sess.files_out} files ({_size(sess.bytes_out)})"
        )
        for path in sess.would_change:
            click.echo(f"  would apply: {path}")
        for how in sess.resolved:
            click.echo(f"  conflict settled: {how}")
        for path in sess.conflicts:
            click.echo(f"  conflict: {path} (changed here and on {sess.peer}; both versions kept)")
            reasons.append(f"conflict on {path} with {sess.peer}")
        for problem in sess.problems:
            click.echo(f"  problem: {problem}")
            reasons.append(problem)
        if sess.superseded:  # not a problem: the new versions are the next sync's
            click.echo(f"  {sess.superseded} file(s) changed on {sess.peer} while being sent; not taken this time")
        for path in sess.peer_conflicts:
            click.echo(f"  conflict on {sess.peer}: {path} (changed there and here; both versions kept)")
            reasons.append(f"conflict on {path} at {sess.peer}")
        for problem in sess.peer_problems:
            click.echo(f"  problem on {sess.peer}: {problem}")
            reasons.append(f"{sess.peer}: {problem}")
    for what in report.open_conflicts:
        click.echo(f"open conflict: {what} (see 'shoal conflicts'; settle with 'shoal resolve')")
        reasons.append(f"open conflict: {what}")
    for name, why in sorted(report.unreachable.items()):
        click.echo(f"{name}: unreachable: {why}")
    if reasons:
        click.echo(f"not converged: {len(reasons)} problem(s)", err=True)
        return 1
    return 0
