"""``shoal trust``: the certificate fingerprints this node trusts for its peers.

``shoal trust PEER FINGERPRINT`` pins a fingerprint an admin read off the peer (``shoal id`` there)
before the first contact; ``--list`` shows every pin and how it came about; ``--reset PEER`` forgets one
(after the peer was reinstalled), so that the next contact from PEER's address pins again.
"""

from __future__ import annotations

import re
import time

import click

from shoal.cli.context import AppContext
from shoal.net.identity import format_fingerprint

_FINGERPRINT = re.compile(r"(?:sha256:)?([0-9a-f]{2}(?::?[0-9a-f]{2}){31})")


def parse_fingerprint(text: str) -> str | None:
    """A SHA-256 fingerprint as ``shoal id`` prints it (``ab:cd:…``) or bare hex, as bare lower-case hex."""
    match = _FINGERPRINT.fullmatch(text.strip().lower())
    return None if match is None else match.group(1).replace(":", "")


@click.command("trust")
@click.option("--reset", "reset", metavar="PEER", help="Forget PEER's pinned fingerprint.")
@click.option("--list", "listing", is_flag=True, help="List the pinned fingerprints and how each was pinned.")
@click.argument("peer", required=False)
@click.argument("fingerprint", required=False)
@click.pass_obj
def trust(app: AppContext, reset: str | None, listing: bool, peer: str | None, fingerprint: str | None) -> int:
    """Pin PEER's certificate FINGERPRINT (from 'shoal id' on PEER), list pins, or forget one."""
    if sum((reset is not None, listing, peer is not None)) != 1 or (peer is not None and fingerprint is None):
        raise click.UsageError("give PEER FINGERPRINT, --list, or --reset PEER")
    with app.open_db() as db:
        if reset is not None:
            had = db.reset_pin(reset.lower())
            click.echo(f"forgot the pinned fingerprint of {reset}" if had else f"no fingerprint was pinned for {reset}")
            return 0
        if listing:
            for name, pinned_fp, at_ns, how in db.pins():
                when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at_ns / 1e9)) if at_ns else "?"
                click.echo(f"{name}\t{format_fingerprint(pinned_fp)}\t{when}\t{how or 'first contact'}")
            return 0
        assert peer is not None and fingerprint is not None
        fp = parse_fingerprint(fingerprint)
        if fp is None:
            raise click.BadParameter("not a SHA-256 fingerprint (64 hex digits, with or without ':')")
        name = peer.lower()
        pinned = db.pin(name)
        if pinned is not None and pinned != fp:
            click.echo(
                f"shoal: {name} is pinned to {format_fingerprint(pinned)} already; "
                f"run 'shoal trust --reset {name}' first if it was reinstalled",
                err=True,
            )
            return 1
        db.set_pin(name, fp, time.time_ns(), "shoal trust")
    click.echo(f"pinned {name}: {format_fingerprint(fp)}")
    return 0
