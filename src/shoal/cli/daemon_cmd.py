"""``shoal daemon``: serve peers in the foreground (systemd-friendly)."""

from __future__ import annotations

import asyncio

import click

from shoal.cli.context import AppContext


@click.command("daemon")
@click.option("--listen", metavar="ADDR:PORT", help="Listen here instead of this node's host entry address.")
@click.option(
    "--no-watch", is_flag=True, help="Only serve peers: no watching, no scheduled verify (changes go out with 'sync')."
)
@click.option("--metrics-listen", metavar="ADDR:PORT", help="Serve Prometheus metrics here (overrides the config).")
@click.option(
    "--log-format",
    type=click.Choice(["text", "kv", "json"]),
    default="text",
    show_default=True,
    help="Log lines as text, key=value pairs, or JSON objects (one per line; journald-friendly).",
)
@click.pass_obj
def daemon(app: AppContext, listen: str | None, no_watch: bool, metrics_listen: str | None, log_format: str) -> int:
    """Serve peers, watch the managed trees and send changes as they happen, until SIGTERM (in-flight
    transfers finish first). On start it scans everything and syncs with every peer (catching up)."""
    import logging

    from shoal.cli.logfmt import formatter
    from shoal.engine.daemon import serve
    from shoal.engine.replica import Replica

    # A long-running process: every line gets a timestamp (journald adds its own, harmlessly).
    for handler in logging.getLogger().handlers:
        handler.setFormatter(formatter(log_format))
    cfg = app.node_config()
    host, port = None, None
    if listen:
        host, _, port_text = listen.rpartition(":")
        port = int(port_text)

    async def main() -> int:
        replica = await Replica.open(cfg, app.state_dir)
        try:
            return await serve(
                replica,
                host=host or None,
                port=port,
                watch=not no_watch,
                reload=app.node_config,
                metrics_listen=metrics_listen,
            )
        finally:
            await replica.close()

    return asyncio.run(main())
