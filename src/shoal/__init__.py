"""shoal: keep directories identical across a group of servers.

The package is layered: ``config``, ``model`` and ``proto`` are pure (no I/O); ``state`` owns every line
of SQL; ``fs`` owns the disk; ``cli`` and ``compat`` are thin front ends. See docs in README.md.
"""

__version__ = "0.1.0"
