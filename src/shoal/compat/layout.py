"""Where ``shoal-csync2`` finds its config and keeps its state, following csync2's naming.

- Config: ``$CSYNC2_SYSTEM_DIR/csync2.cfg`` (default ``/etc``), or ``csync2_NAME.cfg`` with ``-C NAME``;
  a ``csync2.lock`` file in that directory stops every run.
- Database: with ``-D DIR`` (or ``sqlite[3]:///DIR`` or ``.../FILE.db3``, or the config's ``database``),
  ``DIR/<node>[_<NAME>].db3``, so several nodes of a test cluster share one directory. The node's key,
  certificate, conflict store and control socket go to ``DIR/<node>[_<NAME>].d/`` beside it.
  Without either, the node shares shoal's own state (``$SHOAL_STATE_DIR``, default ``/var/lib/shoal``),
  so ``shoal status``, ``shoal conflicts`` and ``shoal-csync2`` see one node; with ``-C NAME`` only, the
  files are ``<state dir>/<node>_<NAME>.db3`` and ``.d``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from shoal import DEFAULT_STATE_DIR
from shoal.errors import ShoalError
from shoal.state.db import DB_NAME

DEFAULT_SYSTEM_DIR = "/etc"


class LayoutError(ShoalError):
    pass


@dataclass(frozen=True)
class Layout:
    config_file: str
    lock_file: str
    db_file: str
    state_dir: str


def config_paths(env: dict[str, str], config_name: str | None) -> tuple[str, str]:
    """(config file, lock file)."""
    system_dir = env.get("CSYNC2_SYSTEM_DIR") or DEFAULT_SYSTEM_DIR
    name = f"csync2_{config_name}.cfg" if config_name else "csync2.cfg"
    return os.path.join(system_dir, name), os.path.join(system_dir, "csync2.lock")


def database_location(spec: str) -> tuple[str, str | None]:
    """(directory, file name or None) of a ``-D`` value: a directory, or an sqlite URL naming one or a
    ``.db3`` file. Other database servers are refused: shoal keeps its state in SQLite."""
    if "://" in spec:
        scheme, _, rest = spec.partition("://")
        if scheme not in ("sqlite", "sqlite3"):
            raise LayoutError(
                f"database {spec!r}: shoal keeps its state in SQLite files; use a directory or sqlite3:///DIR"
            )
        spec = rest
    if not spec:
        raise LayoutError("empty database location")
    spec = os.path.abspath(spec)
    if spec.endswith((".db3", ".db")):
        return os.path.dirname(spec), os.path.basename(spec)
    return spec, None


def layout(
    env: dict[str, str], node: str, config_name: str | None, database: str | None, config_database: str | None
) -> Layout:
    config_file, lock_file = config_paths(env, config_name)
    spec = database or config_database
    stem = f"{node}_{config_name}" if config_name else node
    if spec is None:
        state = env.get("SHOAL_STATE_DIR") or DEFAULT_STATE_DIR
        if config_name is None:
            return Layout(config_file, lock_file, os.path.join(state, DB_NAME), state)
        return Layout(config_file, lock_file, os.path.join(state, f"{stem}.db3"), os.path.join(state, f"{stem}.d"))
    directory, file_name = database_location(spec)
    db_file = os.path.join(directory, file_name or f"{stem}.db3")
    return Layout(config_file, lock_file, db_file, os.path.splitext(db_file)[0] + ".d")
