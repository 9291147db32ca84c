"""What every command gets from the global options: config path, node name, state directory."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING

from shoal.logsafe import SafeFormatter

if TYPE_CHECKING:
    from rich.console import Console

    from shoal.config.resolve import NodeConfig
    from shoal.state.db import StateDB

# The config, state and rich modules are imported where a command needs them: a thin command (a sync
# handed to the daemon, id, keygen) should not pay for them at start-up.


@dataclass
class AppContext:
    config_path: str | None
    node: str | None
    state_dir: str
    verbose: int

    @cached_property
    def err(self) -> Console:
        from rich.console import Console

        return Console(stderr=True)

    @property
    def config_file(self) -> str:
        from shoal.fs.config_source import default_config_path

        return self.config_path or default_config_path()

    def node_name(self) -> str:
        return (self.node or socket.gethostname()).lower()

    def node_config(self) -> NodeConfig:
        from shoal.fs.config_source import load_node_config

        return load_node_config(self.config_file, self.node_name())

    def db_path(self) -> str:
        from shoal.state.db import DB_NAME

        return os.path.join(self.state_dir, DB_NAME)

    def open_db(self, *, readonly: bool = False) -> StateDB:
        from shoal.state.db import StateDB, ensure_state_dir

        if readonly:
            return StateDB.open(self.db_path(), readonly=True)
        ensure_state_dir(self.state_dir)
        return StateDB.open(self.db_path())


def setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    handler = logging.StreamHandler()
    handler.setFormatter(SafeFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=level, handlers=[handler])
