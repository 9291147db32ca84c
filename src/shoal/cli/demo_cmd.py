"""``shoal demo``: a throw-away 3-node cluster on loopback, then clean up."""

from __future__ import annotations

import click

from shoal.engine.demo import run_demo


@click.command("demo")
@click.option("--keep", is_flag=True, help="Leave the temporary cluster directory in place.")
def demo(keep: bool) -> int:
    """Run a 3-node cluster on loopback in a temporary directory: daemons, a sync, a conflict; then clean up."""
    return run_demo(click.echo, keep=keep)
