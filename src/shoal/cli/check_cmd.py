"""``shoal check [PATH...]``: scan the managed trees and record local changes."""

from __future__ import annotations

import click

from shoal.cli.context import AppContext
from shoal.fs.scan import Scanner


@click.command("check")
@click.argument("paths", nargs=-1)
@click.pass_obj
def check(app: AppContext, paths: tuple[str, ...]) -> int:
    """Scan the managed roots (or only PATHs) and record new, changed and deleted files."""
    cfg = app.node_config()
    with app.open_db() as db:
        res = Scanner(db, cfg).scan(list(paths) if paths else None)
    for p in res.problems:
        app.err.print(f"warning: {p.path}: {p.message}", markup=False, highlight=False)
    mib = res.hashed_bytes / (1 << 20)
    click.echo(
        f"checked in {res.seconds:.2f}s: {res.new} new, {res.changed} changed, {res.metadata} metadata, "
        f"{res.type_changed} type changes, {res.deleted} deleted, {res.unchanged} unchanged; "
        f"hashed {res.hashed_files} files ({mib:.1f} MiB)"
        + (f"; {res.forgotten} no longer managed" if res.forgotten else "")
    )
    if app.verbose:
        for path in res.changed_paths:
            click.echo(f"  {path}")
    return 1 if res.problems else 0
