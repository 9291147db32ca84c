"""Warnings about configs that parse but probably do not mean what they say (``shoal config check``).

Owns: the checks, as pure functions of the parsed model. Must not: read files, or fail a config (an
error belongs in parser.py or resolve.py; a warning leaves the config usable).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from shoal.config.model import NOWHERE, ActionSpec, SourcePos


def placeholder_in_quotes(command: str) -> bool:
    """Does a ``%%`` of ``command`` stand inside single quotes? Actions put the changed paths in place of
    ``%%`` already shell-quoted; inside '...' those quotes close and reopen it, so a path with a space
    splits into words and one with a quote runs as shell text. (A config value cannot hold a double
    quote, so single quotes are the only shell quoting an exec string can have.)"""
    quoted = False
    i = 0
    while i < len(command):
        c = command[i]
        if quoted:
            if c == "'":
                quoted = False
            elif command.startswith("%%", i):
                return True
        elif c == "\\":
            i += 1  # the next character is literal
        elif c == "'":
            quoted = True
        i += 1
    return False


def _exec_warnings(group: str, action: ActionSpec) -> list[tuple[SourcePos, str]]:
    out = []
    for k, command in enumerate(action.execs):
        if placeholder_in_quotes(command):
            pos = action.exec_pos[k] if k < len(action.exec_pos) else action.pos
            out.append(
                (
                    pos,
                    f"in group '{group}', exec {command!r}: %% stands inside '...' quotes, but it is replaced "
                    "by paths that are already shell-quoted, so those quotes undo theirs (a path with a space "
                    "or a quote breaks the command or runs as shell text); write %% bare",
                )
            )
    return out


class _HasActions(Protocol):
    @property
    def name(self) -> str: ...

    @property
    def actions(self) -> tuple[ActionSpec, ...]: ...


def warnings(groups: Iterable[_HasActions]) -> list[str]:
    """``file:line:col: warning: ...`` for each doubtful statement of ``groups`` (parsed or resolved)."""
    found: list[tuple[SourcePos, str]] = []
    for g in groups:
        for a in g.actions:
            found += _exec_warnings(g.name, a)
    return [f"{pos}: warning: {text}" if pos != NOWHERE else f"warning: {text}" for pos, text in found]
