"""The config layer's window on the disk: reading config files and fragments, probing key files.

Owns: file access for config/. Must not: interpret config text.
"""

from __future__ import annotations

import os
import stat

from shoal.config.model import DEFAULT_PORT, ConfigSpec
from shoal.config.parser import load
from shoal.config.resolve import KeyFacts, NodeConfig, resolve

DEFAULT_CONFIG_PATHS = ("/etc/shoal/shoal.cfg", "/etc/csync2.cfg")


class DiskReader:
    """SourceReader over the real filesystem."""

    def read_text(self, path: str) -> str:
        with open(path, encoding="utf-8", errors="surrogateescape") as f:
            return f.read()

    def list_fragments(self, directory: str) -> list[str]:
        names = sorted(n for n in os.listdir(directory) if n.endswith(".cfg") and not n.startswith("."))
        return [os.path.join(directory, n) for n in names if os.path.isfile(os.path.join(directory, n))]


def probe_key(path: str) -> KeyFacts:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as e:
        return KeyFacts(path, e.strerror or str(e))
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            return KeyFacts(path, "not a regular file")
        with os.fdopen(fd, "rb", closefd=False) as f:
            first = f.readline(1024).decode("ascii", "replace").rstrip("\r\n")
        return KeyFacts(path, None, stat.S_IMODE(st.st_mode), first)
    finally:
        os.close(fd)


def default_config_path() -> str:
    for p in DEFAULT_CONFIG_PATHS:
        if os.path.exists(p):
            return p
    return DEFAULT_CONFIG_PATHS[0]


def load_config(path: str) -> ConfigSpec:
    return load(path, DiskReader())


def load_node_config(path: str, node: str, default_port: int = DEFAULT_PORT) -> NodeConfig:
    """Parse ``path`` (with includes and fragments) and apply it to ``node``; ConfigError on any problem."""
    return resolve(load_config(path), node, probe_key, default_port)
