"""``python -m shoal`` runs the command line."""

from shoal.cli.quick import main

main()
