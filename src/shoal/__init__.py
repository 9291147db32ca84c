"""shoal: keep directories identical across a group of servers.

The package is layered: ``config``, ``model`` and ``proto`` are pure (no I/O); ``state`` owns every line
of SQL; ``fs`` owns the disk; ``cli`` and ``compat`` are thin front ends. See docs in README.md.
"""

__version__ = "0.1.0"

#: Where keys, the database and the control socket live unless ``--state-dir`` or ``SHOAL_STATE_DIR``
#: say otherwise.
DEFAULT_STATE_DIR = "/var/lib/shoal"
