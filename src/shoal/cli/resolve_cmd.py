"""``shoal resolve PATH --keep local|NODE``: settle a conflict cluster-wide, then sync."""

from __future__ import annotations

import os

import click

from shoal.cli.context import AppContext


@click.command("resolve")
@click.argument("path")
@click.option("--keep", required=True, metavar="local|NODE", help="Whose version wins everywhere.")
@click.option("--no-sync", is_flag=True, help="Only record the decision; the next sync carries it.")
@click.pass_context
def resolve(ctx: click.Context, path: str, keep: str, no_sync: bool) -> int:
    """Settle the open conflict on PATH (a real path, or %prefix%/...) for our version or NODE's, then
    sync so that every node takes it. The version that loses is kept on each node that held it."""
    from shoal.engine.resolution import ResolveError, keep_local, keep_peer
    from shoal.fs.scan import Scanner
    from shoal.model.paths import PathMap

    app: AppContext = ctx.obj
    cfg = app.node_config()
    pmap = PathMap(dict(cfg.prefixes))
    logical = path if path.startswith("%") else pmap.to_logical(os.path.abspath(path))
    real = pmap.to_real(logical)
    keep = keep.lower()
    if keep != "local" and keep not in cfg.peers():
        raise click.UsageError(f"--keep takes 'local' or a peer of this node, not {keep!r}")
    with app.open_db() as db:
        try:
            if keep == "local":
                Scanner(db, cfg).scan([real])  # our version as it is on disk now
                peers = keep_local(db, cfg, logical)
                click.echo(f"{logical}: this node's version wins over {', '.join(peers)}")
            else:
                keep_peer(db, logical, keep)
                peers = [keep]
                click.echo(f"{logical}: {keep}'s version wins; it is taken at the next exchange with {keep}")
        except ResolveError as e:
            raise click.ClickException(str(e)) from None
    if no_sync:
        return 0
    from shoal.cli.sync_cmd import sync

    if keep != "local":  # take the peer's version first, then pass the decision on to everyone
        rc = ctx.invoke(sync, peers=(keep,))
        if rc:
            return int(rc)
    return int(ctx.invoke(sync) or 0)
