"""``shoal config check``: validate the config and show this node's view of it; ``shoal config systemd``
lives in config_systemd_cmd.py."""

from __future__ import annotations

import click

from shoal.cli.config_systemd_cmd import systemd
from shoal.cli.context import AppContext
from shoal.config.describe import describe_group
from shoal.config.lint import warnings


@click.group("config")
def config_group() -> None:
    """Inspect the configuration."""


@config_group.command("check")
@click.pass_obj
def check(app: AppContext) -> int:
    """Validate the config; print this node's groups, peers, roots and policies."""
    cfg = app.node_config()
    extra = len(cfg.files) - 1
    click.echo(f"config    {cfg.files[0]}" + (f" (+{extra} included)" if extra else ""))
    click.echo(f"node      {cfg.node}  (port {cfg.port})")
    if cfg.ignore:
        click.echo(f"ignore    {' '.join(cfg.ignore)}")
    for name, path in cfg.prefixes:
        click.echo(f"prefix    %{name}% = {path}")
    for g in cfg.groups:
        click.echo("")
        for line in describe_group(cfg, g):
            click.echo(line)
    click.echo("")
    found = warnings(cfg.groups)
    for line in found:
        click.echo(line, err=True)
    counted = f", {len(found)} warning(s)" if found else ""
    click.echo(f"ok: {len(cfg.groups)} group(s), {len(cfg.peers())} peer(s){counted}")
    return 0


config_group.add_command(systemd)
