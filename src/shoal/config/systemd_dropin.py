"""The systemd drop-in that opens the hardened unit (``contrib/shoal.service``) to one node's config.

Owns: what the daemon must be able to write (the managed roots, backup directories, the directories
of action logfiles), which of the unit's defaults the config needs relaxed (trees in home directories
or /tmp, device nodes, set-user-ID bits, ports below 1024), and how a path is written in a unit file.
Must not: read the disk; which roots are files comes in through ``is_file``, so this stays pure and
table-testable.

Every path is written with systemd's ``-`` prefix: a root that is missing when the unit starts (an
unmounted disk) is left out of the namespace instead of failing the start with 226/NAMESPACE, and the
daemon reports the missing root itself (see fs/scan.py).
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from shoal.config.resolve import NodeConfig
from shoal.errors import ConfigError
from shoal.model.patterns import minimal_roots

#: ProtectHome=yes hides these; ProtectHome=read-only leaves them readable.
HOME_DIRS = ("/home", "/root", "/run/user")
#: PrivateTmp=yes gives the service its own, empty, copies of these.
TMP_DIRS = ("/tmp", "/var/tmp")
#: Below this a port needs CAP_NET_BIND_SERVICE.
PRIVILEGED_PORTS = 1024

# systemd splits ReadWritePaths= at whitespace and undoes quotes and backslashes; a word holding one of
# these is written in double quotes, with backslash and double quote escaped inside.
_NEEDS_QUOTES = frozenset(" \"'\\")


@dataclass(frozen=True, slots=True)
class Dropin:
    """What the drop-in says, before it is written out."""

    write_paths: tuple[str, ...]  #: absolute, minimal (none below another)
    protect_home: str | None = None  #: "no" or "read-only", or None to keep the unit's "yes"
    private_tmp: bool = True
    devices: bool = False  #: a group replicates device nodes: PrivateDevices=no, CAP_MKNOD
    setuid: bool = False  #: a group replicates set-user/group-ID bits: RestrictSUIDSGID=no
    low_ports: tuple[int, ...] = ()  #: ports below 1024 this node listens on: CAP_NET_BIND_SERVICE


def _under(path: str, dirs: Iterable[str]) -> bool:
    return any(path == d or path.startswith(d + "/") for d in dirs)


def _port(address: str | None) -> int | None:
    """The port of ``ADDR:PORT``, or None when there is none to read."""
    if not address:
        return None
    port = address.rpartition(":")[2]
    return int(port) if port.isdigit() else None


def unit_path(path: str) -> str:
    """``path`` as one word of a systemd path list, with the ``-`` (ignore if missing) prefix.
    ConfigError for what a unit file cannot hold (control characters, a relative path)."""
    if not path.startswith("/"):
        raise ConfigError(f"{path}: not an absolute path; systemd's ReadWritePaths= needs one")
    bad = next((c for c in path if ord(c) < 0x20 or ord(c) == 0x7F), None)
    if bad is not None:
        raise ConfigError(f"{path!r}: holds the control character {bad!r}, which a systemd unit file cannot hold")
    word = "-" + path.replace("%", "%%")  # systemd expands %-specifiers after unquoting
    if not any(c in _NEEDS_QUOTES for c in word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def dropin_for(cfg: NodeConfig, is_file: Callable[[str], bool]) -> Dropin:
    """The drop-in ``cfg`` needs. ``is_file(root)``: the root exists and is not a directory; then its
    parent must be writable, because a file is replaced by a temp file renamed next to it."""
    writes: list[str] = []
    for root in cfg.roots():
        writes.append(posixpath.dirname(root) if is_file(root) else root)
    for g in cfg.groups:
        if g.backup_directory is not None:
            writes.append(g.backup_directory)
        writes.extend(posixpath.dirname(a.logfile) for a in g.actions if a.logfile)
    write_paths = tuple(minimal_roots(p.rstrip("/") or "/" for p in writes))
    reads = [*cfg.files, *(g.key_path for g in cfg.groups if g.key_path)]
    protect_home = (
        "no"
        if any(_under(p, HOME_DIRS) for p in write_paths)
        else "read-only"
        if any(_under(p, HOME_DIRS) for p in reads)
        else None
    )
    ports = {cfg.listen_port, _port(cfg.metrics_listen)}
    return Dropin(
        write_paths=write_paths,
        protect_home=protect_home,
        private_tmp=not any(_under(p, TMP_DIRS) for p in (*write_paths, *reads)),
        # getattr: the per-group "allow devices;" / "allow setuid;" options are newer than this code
        devices=any(getattr(g, "allow_devices", False) for g in cfg.groups),
        setuid=any(getattr(g, "allow_setuid", False) for g in cfg.groups),
        low_ports=tuple(sorted(p for p in ports if p is not None and p < PRIVILEGED_PORTS)),
    )


def render(d: Dropin, header: Iterable[str] = ()) -> str:
    """The drop-in file's text; ``header`` lines become comments above it."""
    lines = [f"# {h}" if h else "#" for h in header]
    lines.append("[Service]")
    if d.write_paths:
        lines.append("ReadWritePaths=" + " ".join(unit_path(p) for p in d.write_paths))
    if d.protect_home is not None:
        lines.append(f"ProtectHome={d.protect_home}")
    if not d.private_tmp:
        lines.append("PrivateTmp=no")
    if d.devices:
        lines.append("PrivateDevices=no")
        lines.append("CapabilityBoundingSet=CAP_MKNOD")
    if d.setuid:
        lines.append("RestrictSUIDSGID=no")
    if d.low_ports:
        # the daemon runs as root, so the bounding set is all it takes (no AmbientCapabilities=)
        lines.append("CapabilityBoundingSet=CAP_NET_BIND_SERVICE")
    return "\n".join(lines) + "\n"
