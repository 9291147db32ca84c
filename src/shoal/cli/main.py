"""Entry point of ``shoal``: global options, command registration, and the error boundary."""

from __future__ import annotations

import os
import sys

import click
from rich.console import Console

from shoal.cli import check_cmd, config_cmd, demo_cmd, identity_cmd, keygen_cmd, ls_cmd
from shoal.cli.context import DEFAULT_STATE_DIR, AppContext, setup_logging
from shoal.errors import ShoalError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-c",
    "--config",
    "config_path",
    metavar="FILE",
    help="Config file (default /etc/shoal/shoal.cfg, else /etc/csync2.cfg).",
)
@click.option("-N", "--node", metavar="NAME", help="This node's name (default: the hostname).")
@click.option(
    "--state-dir",
    metavar="DIR",
    default=lambda: os.environ.get("SHOAL_STATE_DIR", DEFAULT_STATE_DIR),
    show_default="/var/lib/shoal or $SHOAL_STATE_DIR",
    help="Where keys and the database live.",
)
@click.option("-v", "--verbose", count=True, help="More log output (repeatable).")
@click.version_option(package_name="shoal")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, node: str | None, state_dir: str, verbose: int) -> None:
    """shoal keeps directories identical across a group of servers."""
    setup_logging(verbose)
    ctx.obj = AppContext(config_path, node, state_dir, verbose, Console(), Console(stderr=True))


for module in (identity_cmd, keygen_cmd, config_cmd, check_cmd, ls_cmd, demo_cmd):
    module.register(cli)


def main() -> None:
    try:
        rc = cli.main(prog_name="shoal", standalone_mode=False)
    except ShoalError as e:
        click.echo(f"shoal: {e}", err=True)
        sys.exit(e.exit_code)
    except click.exceptions.ClickException as e:
        e.show()
        sys.exit(e.exit_code)
    except click.exceptions.Abort:
        click.echo("shoal: aborted", err=True)
        sys.exit(130)
    sys.exit(rc if isinstance(rc, int) else 0)
