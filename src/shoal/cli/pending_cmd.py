"""``shoal pending [--json]``: what each peer has not acknowledged yet, and open conflicts."""

from __future__ import annotations

import json

import click

from shoal.cli.context import AppContext


@click.command("pending")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts.")
@click.pass_obj
def pending(app: AppContext, as_json: bool) -> int:
    """Show, per peer, the changes it has not taken yet, and the open conflicts."""
    from shoal.engine.pending import pending_view

    cfg = app.node_config()
    with app.open_db(readonly=True) as db:
        view = pending_view(db, cfg)
    if as_json:
        click.echo(json.dumps(view.to_json(), ensure_ascii=False))
        return 0
    for peer, paths in view.peers.items():
        click.echo(f"{peer}: {len(paths)} change(s) pending")
        for p in paths[:50]:
            click.echo(f"  {p}")
        if len(paths) > 50:
            click.echo(f"  ... and {len(paths) - 50} more")
    for c in view.conflicts:
        click.echo(f"conflict: {c.path} with {c.peer}")
    return 0
