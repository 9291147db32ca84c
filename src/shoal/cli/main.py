"""The ``shoal`` command line: global options, lazy command registration, and the error boundary (a
sync handed to a running daemon is answered before this module loads: see cli/quick.py).

Commands are imported only when they run (``LazyGroup``), so a cron-driven ``shoal check`` does not pay
for the TLS, table-rendering and demo code it never uses.
"""

from __future__ import annotations

import importlib
import os
import sys

import click

from shoal import DEFAULT_STATE_DIR
from shoal.cli.context import AppContext, setup_logging
from shoal.errors import ShoalError

#: command name -> (module, attribute, one-line help shown in ``shoal --help``)
COMMANDS = {
    "init": ("shoal.cli.identity_cmd", "init", "Create this node's key and certificate."),
    "id": ("shoal.cli.identity_cmd", "show_id", "Print this node's name and certificate fingerprint."),
    "keygen": ("shoal.cli.keygen_cmd", "keygen", "Write a new group key to FILE."),
    "config": ("shoal.cli.config_cmd", "config_group", "Inspect the configuration."),
    "check": ("shoal.cli.check_cmd", "check", "Scan the managed roots and record local changes."),
    "ls": ("shoal.cli.ls_cmd", "ls", "List the records of this node."),
    "sync": ("shoal.cli.sync_cmd", "sync", "Scan, then exchange changes with every reachable peer."),
    "daemon": ("shoal.cli.daemon_cmd", "daemon", "Serve peers in the foreground until SIGTERM."),
    "status": ("shoal.cli.status_cmd", "status", "The daemon's view: peers, watches, queue, lag, conflicts."),
    "pending": ("shoal.cli.pending_cmd", "pending", "Show what each peer has not taken yet, and conflicts."),
    "conflicts": ("shoal.cli.conflicts_cmd", "conflicts", "List open conflicts and kept losing versions."),
    "resolve": ("shoal.cli.resolve_cmd", "resolve", "Settle a conflict for our version or a peer's, cluster-wide."),
    "diff": ("shoal.cli.diff_cmd", "diff", "List differences with a peer; with PATH, a unified diff."),
    "trust": ("shoal.cli.trust_cmd", "trust", "Forget a peer's pinned certificate fingerprint."),
    "demo": ("shoal.cli.demo_cmd", "demo", "A 3-node cluster on loopback: daemons, a sync, a conflict; then cleanup."),
}


class LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        spec = COMMANDS.get(cmd_name)
        if spec is None:
            return None
        command = getattr(importlib.import_module(spec[0]), spec[1])
        assert isinstance(command, click.Command)
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, COMMANDS[name][2]) for name in self.list_commands(ctx)])


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
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
    ctx.obj = AppContext(config_path, node, state_dir, verbose)


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
