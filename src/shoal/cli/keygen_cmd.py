"""``shoal keygen FILE``: a new group key, as ``csync2 -k`` makes it."""

from __future__ import annotations

import click

from shoal.fs.keyfile import write_key_file


@click.command("keygen")
@click.argument("file", type=click.Path(dir_okay=False))
def keygen(file: str) -> int:
    """Write a new group key to FILE (mode 0600; an existing FILE is never overwritten)."""
    write_key_file(file)
    return 0
