"""``shoal conflicts [--json]``: open conflicts, and the versions this node kept when it lost one."""

from __future__ import annotations

import json
import os
import shlex
import time

import click

from shoal.cli.context import AppContext


@click.command("conflicts")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.pass_obj
def conflicts(app: AppContext, as_json: bool) -> int:
    """List open conflicts and the kept copies of versions that lost one, with how to restore each."""
    from shoal.engine.resolution import conflicts_view

    cfg = app.node_config()
    with app.open_db(readonly=True) as db:
        view = conflicts_view(db, cfg)
    if as_json:
        click.echo(json.dumps(view.to_json(), ensure_ascii=False))
        return 0
    if not view.open and not view.kept:
        click.echo("no open conflicts, no kept versions")
        return 0
    for c in view.open:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(c.detected_ns / 1e9))
        pending = " (to be settled for the peer's version at the next sync)" if c.keep else ""
        click.echo(f"open: {c.path} with {c.peer} since {when}; theirs: {c.theirs}{pending}")
    if view.open:
        click.echo("  settle one with: shoal resolve PATH --keep local|PEER")
    for k in view.kept:
        when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(k.kept_ns / 1e9))
        gone = "" if os.path.lexists(k.location) else " (the copy is gone)"
        click.echo(f"kept #{k.id}: {k.real} by {k.author}, lost to {k.lost_to} on {when}: {k.reason}")
        click.echo(f"  copy: {k.location}{gone}")
        click.echo(f"  restore: cp -a {shlex.quote(k.location)} {shlex.quote(k.real)} && shoal sync")
    return 0
