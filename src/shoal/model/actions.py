"""Which ``action`` commands a set of changed paths triggers: a pure plan, table-tested.

csync2 semantics (csync2-compat.md sections 1 and 4): an action's ``pattern``s are pathname patterns
(leading-directory match; ``*`` stays within one component unless the pattern holds ``**``); an action
without patterns fires for every changed path of its group. On the receiving node every action fires
except ``do-local-only`` ones; on the node where the change was made only ``do-local`` and
``do-local-only`` ones do. Commands are deduplicated by (command, logfile): each runs once per batch
with ``%%`` replaced by all the changed real paths it matched, shell-quoted, in order.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from shoal.config.model import ActionSpec
from shoal.model.fnmatch import compile_glob


@dataclass(frozen=True, slots=True)
class Job:
    command: str  #: ready for /bin/sh -c
    logfile: str | None
    paths: tuple[str, ...]


def _compiled(pattern: str) -> re.Pattern[str]:
    pattern = pattern.rstrip("/") or "/"
    return compile_glob(pattern, pathname="**" not in pattern, leading_dir=True)


def matches(action: ActionSpec, path: str) -> bool:
    return not action.patterns or any(_compiled(p).match(path) for p in action.patterns)


def plan(actions: Iterable[ActionSpec], changed: Sequence[str], *, local: bool) -> list[Job]:
    """The jobs to run for ``changed`` real paths; ``local``: the changes were made on this node."""
    grouped: dict[tuple[str, str | None], set[str]] = {}
    for action in actions:
        runs_here = (action.do_local or action.do_local_only) if local else not action.do_local_only
        if not runs_here:
            continue
        hit = [p for p in changed if matches(action, p)]
        if not hit:
            continue
        for template in action.execs:
            grouped.setdefault((template, action.logfile), set()).update(hit)
    jobs = []
    for (template, logfile), hit_set in grouped.items():
        paths = tuple(p for p in dict.fromkeys(changed) if p in hit_set)  # in the order they changed
        jobs.append(Job(template.replace("%%", " ".join(shlex.quote(p) for p in paths)), logfile, paths))
    return jobs
