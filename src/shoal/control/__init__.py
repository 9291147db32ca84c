"""The control socket of a running daemon: local commands (sync now; status comes with live mode)."""
