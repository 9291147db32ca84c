"""``shoal diff PEER [PATH]``: differences with a peer (X differs, L only here, R only there); with PATH, a
unified diff of its content. Exit 0 when nothing differs, 1 when something does (as diff(1))."""

from __future__ import annotations

import os

import click

from shoal.cli.context import AppContext


@click.command("diff")
@click.argument("peer")
@click.argument("path", required=False)
@click.pass_obj
def diff(app: AppContext, peer: str, path: str | None) -> int:
    """List the differences with PEER (after scanning this node); with PATH (a real path or
    %prefix%/...), limit the list to it and show a unified diff of its content."""
    import asyncio

    from shoal.engine.compare import Difference, compare_with
    from shoal.engine.replica import Replica
    from shoal.engine.sync import scan_first
    from shoal.model.paths import PathMap

    cfg = app.node_config()
    peer = peer.lower()
    if peer not in cfg.peers():
        raise click.UsageError(f"not a peer of this node: {peer}")
    logical = None
    if path is not None:
        pmap = PathMap(dict(cfg.prefixes))
        logical = path if path.startswith("%") else pmap.to_logical(os.path.abspath(path))
    scan_first(cfg, app.state_dir, [PathMap(dict(cfg.prefixes)).to_real(logical)] if logical else None)

    async def main() -> tuple[list[Difference], str | None]:
        replica = await Replica.open(cfg, app.state_dir)
        try:
            return await compare_with(replica, peer, logical)
        finally:
            await replica.close()

    diffs, text = asyncio.run(main())
    for d in diffs:
        click.echo(f"{d.code}\t{cfg.node}\t{peer}\t{d.path}\t{d.why}")
    if text:
        click.echo(text, nl=False)
    return 1 if diffs else 0
