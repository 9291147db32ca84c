"""``shoal init`` and ``shoal id``: this node's key, certificate and fingerprint."""

from __future__ import annotations

import click

from shoal.cli.context import AppContext
from shoal.errors import IdentityError
from shoal.net.identity import create_identity, format_fingerprint, load_identity
from shoal.state.db import ensure_state_dir


@click.command("init")
@click.pass_obj
def init(app: AppContext) -> int:
    """Create this node's key and certificate (and its state database)."""
    ensure_state_dir(app.state_dir)
    try:
        ident = load_identity(app.state_dir)
        click.echo(f"already initialized in {app.state_dir}")
    except IdentityError:
        ident = create_identity(app.state_dir, app.node_name())
    with app.open_db():
        pass
    click.echo(f"node        {ident.node}")
    click.echo(f"fingerprint {format_fingerprint(ident.fingerprint)}")
    return 0


@click.command("id")
@click.pass_obj
def show_id(app: AppContext) -> int:
    """Print this node's name and certificate fingerprint."""
    ident = load_identity(app.state_dir)
    click.echo(f"node        {ident.node}")
    click.echo(f"fingerprint {format_fingerprint(ident.fingerprint)}")
    return 0
