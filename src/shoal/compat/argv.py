"""csync2 2.0's command line, parsed (pure): which mode, which modifiers, which arguments.

Owns: turning argv into an :class:`Invocation`, and the usage errors. Must not: read files or talk
to peers. Options cluster and may come after the arguments, as with GNU getopt (``-cIr /``,
``-TUIX me peer``, ``-x -v``).
"""

from __future__ import annotations

import getopt
from dataclasses import dataclass, field

from shoal.errors import ShoalError

#: option letters; a colon marks the ones that take a value
OPTSTRING = "W:s:Ftp:G:P:C:D:N:HBAIXULlSTMRvhcuoimfxrdk"

#: letter -> mode name, for the letters that select what the run does
MODES = {
    "h": "hint",
    "c": "check",
    "u": "update",
    "x": "check-update",
    "o": "compare-list",
    "f": "force",
    "m": "mark",
    "H": "list-hints",
    "L": "list-files",
    "M": "list-dirty",
    "S": "list-pair",
    "T": "test",
    "R": "remove-stale",
    "i": "serve",
    "k": "keygen",
}


class UsageError(ShoalError):
    """A command line csync2 would refuse: the caller prints the help text and exits 1."""


@dataclass
class Invocation:
    mode: str = "help"
    args: list[str] = field(default_factory=list)
    #: ``-T`` twice: unified diffs; ``-i`` 1-3 times: inetd, daemon, daemon for one connection
    repeat: int = 0
    recursive: bool = False
    dry_run: bool = False
    verbose: int = 0
    syslog: bool = False
    init: bool = False  #: -I
    removals: bool = False  #: -X
    this_peer_only: bool = False  #: -U
    force_new: bool = False  #: -F
    node: str | None = None
    port: int | None = None
    config_name: str | None = None
    database: str | None = None
    groups: list[str] | None = None
    peers: list[str] | None = None
    #: accepted for compatibility, with no effect here: -B, -A, -t, -s FILE, -W FD
    accepted: list[str] = field(default_factory=list)
    #: -c and -u together: check (hints or the paths given), then update
    check_then_update: bool = False


def _names(value: str) -> list[str]:
    return [v.strip().lower() for v in value.split(",") if v.strip()]


def parse(argv: list[str]) -> Invocation:
    """Parse csync2's options; UsageError for anything it would not accept."""
    try:
        opts, args = getopt.gnu_getopt(argv, OPTSTRING)
    except getopt.GetoptError as e:
        raise UsageError(str(e)) from None
    inv = Invocation(args=list(args))
    modes: list[str] = []
    for flag, value in opts:
        letter = flag[1]
        if letter in MODES:
            if letter in "Ti" and modes and modes[-1] == letter:
                inv.repeat += 1
                continue
            modes.append(letter)
            inv.repeat = 1 if letter in "Ti" else 0
        elif letter == "r":
            inv.recursive = True
        elif letter == "d":
            inv.dry_run = True
        elif letter == "v":
            inv.verbose += 1
        elif letter == "l":
            inv.syslog = True
        elif letter == "I":
            inv.init = True
        elif letter == "X":
            inv.removals = True
        elif letter == "U":
            inv.this_peer_only = True
        elif letter == "F":
            inv.force_new = True
        elif letter == "N":
            inv.node = value.lower()
        elif letter == "p":
            if not value.isdigit() or not 0 < int(value) < 65536:
                raise UsageError(f"-p wants a port number, not {value!r}")
            inv.port = int(value)
        elif letter == "C":
            if not value or not all(c.isdigit() or "a" <= c <= "z" for c in value):
                raise UsageError(f"-C wants a config name of [a-z0-9], not {value!r}")
            inv.config_name = value
        elif letter == "D":
            inv.database = value
        elif letter == "G":
            inv.groups = [v.strip() for v in value.split(",") if v.strip()]
        elif letter == "P":
            inv.peers = _names(value)
        elif letter == "W":
            if not value.isdigit():
                raise UsageError(f"-W wants a file descriptor number, not {value!r}")
            inv.accepted.append(f"-W {value}")
        else:  # B, A, t, s
            inv.accepted.append(f"-{letter}" + (f" {value}" if value else ""))
    if sorted(set(modes)) == ["c", "u"]:
        inv.mode, inv.check_then_update = "check", True
    elif len(set(modes)) > 1:
        raise UsageError("only one mode may be given (-" + " -".join(dict.fromkeys(modes)) + ")")
    elif modes:
        inv.mode = MODES[modes[0]]
    if inv.mode == "keygen" and len(inv.args) != 1:
        raise UsageError("-k wants exactly one file name")
    if inv.mode in ("hint", "force", "mark", "compare-list") and not inv.args:
        raise UsageError(f"-{modes[0]} wants at least one file name")
    if inv.mode == "list-pair" and len(inv.args) != 2:
        raise UsageError("-S wants two host names: this node and a peer")
    if inv.mode == "test" and len(inv.args) > 3:
        raise UsageError("-T takes at most three arguments: [MYNAME PEER] [FILE]")
    if inv.mode == "serve" and inv.repeat > 3:
        raise UsageError("-i may be given at most three times")
    if inv.mode in ("list-hints", "list-files", "list-dirty", "remove-stale", "serve") and inv.args:
        raise UsageError(f"-{modes[0]} takes no file names")
    return inv
