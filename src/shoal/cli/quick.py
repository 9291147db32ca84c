"""The ``shoal`` entry point: a sync handed to the running daemon, before click or the engine load.

The usual cron line, ``shoal [-c FILE] [-N NAME] [--state-dir DIR] [-v] sync [--peer P] [--group G]
[--dry-run] [--push-only] [--full] [PATH...]``, on a node whose daemon listens, is one request on the
control socket and a report to print. Doing that with the standard library alone saves the ~50 ms that
importing click costs on every run. This module only recognises that form: any other command or
option, ``--help``, a repeated option, a terminal on stdout (which gets a progress display) or no
daemon listening leaves the whole command line to cli/main.py, which gives every argument its one
meaning (tests/unit/test_quick_sync.py holds the two to the same request).
"""

from __future__ import annotations

import os
import sys

from shoal import DEFAULT_STATE_DIR

TYPE_CHECKING = False  # (not typing's: importing typing is a tenth of this command's start-up)
if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from typing import Any

#: The options that take a value, by name: the global ones before the command (besides -v), then
#: ``sync``'s own (each may be repeated), and its flags.
GLOBAL_OPTIONS = {"-c": "config", "--config": "config", "-N": "node", "--node": "node", "--state-dir": "state_dir"}
SYNC_OPTIONS = {"--peer": "peers", "--group": "groups"}
SYNC_FLAGS = ("--dry-run", "--push-only", "--full")


def _value(args: list[str], i: int, eq: str, value: str) -> tuple[str, int] | None:
    """An option's value, written ``--opt=value`` or as the next word, and where reading goes on."""
    if eq:
        return value, i
    if i >= len(args) or args[i].startswith("-"):
        return None  # missing, or one that looks like an option: click explains
    return args[i], i + 1


def _globals(args: list[str]) -> tuple[dict[str, Any], int] | None:
    """The global options up to the word ``sync``: (their values, the index after it)."""
    values: dict[str, Any] = {"verbose": 0}
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "sync":
            return values, i
        if arg == "--verbose" or (len(arg) > 1 and arg[0] == "-" and set(arg[1:]) == {"v"}):
            values["verbose"] += 1 if arg == "--verbose" else len(arg) - 1  # -v, -vv, ...
            continue
        name, eq, value = arg.partition("=")
        key = GLOBAL_OPTIONS.get(name)
        if key is None or key in values or (eq and not name.startswith("--")):
            return None  # another command or option; a repeated one's precedence is click's to apply
        got = _value(args, i, eq, value)
        if got is None:
            return None
        values[key], i = got
    return None


def _sync(args: list[str]) -> tuple[dict[str, Any], list[str]] | None:
    """``sync``'s options and paths."""
    values: dict[str, Any] = {"peers": [], "groups": []}
    paths: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        i += 1
        if arg == "--":
            return values, paths + args[i:]
        if not arg.startswith("-"):
            paths.append(arg)
            continue
        if arg in SYNC_FLAGS:
            values[arg] = True
            continue
        name, eq, value = arg.partition("=")
        key = SYNC_OPTIONS.get(name)
        if key is None or (eq and not name.startswith("--")):
            return None
        got = _value(args, i, eq, value)
        if got is None:
            return None
        value, i = got
        values[key].append(value)
    return values, paths


def parse(argv: list[str], environ: Mapping[str, str]) -> tuple[str, dict[str, Any], int] | None:
    """``argv`` (without the program name) as (state directory, control request, verbosity) when it is a
    plain ``sync``; None otherwise."""
    head = _globals(argv)
    if head is None:
        return None
    options, rest = head
    tail = _sync(argv[rest:])
    if tail is None:
        return None
    sync, paths = tail
    request = {
        "verb": "sync",
        "paths": absolute(paths),
        "peers": [p.lower() for p in sync["peers"]],
        "groups": sync["groups"],
        "dry_run": "--dry-run" in sync,
        "push_only": "--push-only" in sync,
        "full": "--full" in sync,
    }
    return options.get("state_dir", environ.get("SHOAL_STATE_DIR", DEFAULT_STATE_DIR)), request, options["verbose"]


def absolute(paths: Sequence[str]) -> list[str]:
    """PATH arguments as the daemon, in another working directory, must get them."""
    return [os.path.abspath(p) for p in paths]


def handed_off(argv: list[str]) -> int | None:
    """Run ``argv`` through the daemon if it is a plain ``sync`` and a daemon answers: the exit code; else
    None (nothing was sent, or the daemon was gone before it read the request)."""
    if sys.stdout.isatty():
        return None
    parsed = parse(argv, os.environ)
    if parsed is None:
        return None
    state_dir, request, verbose = parsed
    from shoal.control.protocol import call

    answer = call(state_dir, request)
    if answer is None:
        return None
    from shoal.cli.sync_text import refusal, render

    why = refusal(answer)
    if why is not None:
        print(f"Error: {why}", file=sys.stderr)
        return 1
    return render(answer["report"], verbose)


def main() -> None:
    try:
        rc = handed_off(sys.argv[1:])
    except KeyboardInterrupt:
        print("shoal: aborted", file=sys.stderr)
        sys.exit(130)
    if rc is not None:
        sys.exit(rc)
    from shoal.cli.main import main as full

    full()
