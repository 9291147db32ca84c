"""``shoal trust --reset PEER``: forget a peer's pinned certificate fingerprint."""

from __future__ import annotations

import click

from shoal.cli.context import AppContext


@click.command("trust")
@click.option("--reset", "peer", required=True, metavar="PEER", help="Forget PEER's pinned fingerprint.")
@click.pass_obj
def trust(app: AppContext, peer: str) -> int:
    """Forget a peer's pinned certificate (after it was reinstalled); the next contact pins it again."""
    with app.open_db() as db:
        had = db.reset_pin(peer.lower())
    click.echo(f"forgot the pinned fingerprint of {peer}" if had else f"no fingerprint was pinned for {peer}")
    return 0
