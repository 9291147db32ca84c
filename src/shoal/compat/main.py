"""Entry point of ``shoal-csync2``. The csync2 command line arrives with its own issue."""

from __future__ import annotations

import sys


def main() -> None:
    print("shoal-csync2: not implemented yet (the csync2 command line is planned; use 'shoal')", file=sys.stderr)
    sys.exit(2)
