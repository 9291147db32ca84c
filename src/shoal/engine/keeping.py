"""Keeping the versions a peer's batch replaces: which ones, and copying them before the apply.

Owns: the rule (a conflict's loser always; any overwrite or deletion by a peer when the group keeps
csync2 backups) and the copies with their ``kept_versions`` rows. Must not: decide conflicts
(model/reconcile.py) or write managed paths (fs/apply.py); the copies themselves are fs/keep.py's.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from shoal.config.resolve import GroupView
from shoal.fs import keep
from shoal.fs.apply import disk_matches
from shoal.model.reconcile import Action, Decision
from shoal.model.records import Kind, Record
from shoal.state.db import KeptVersion

log = logging.getLogger(__name__)


def needs_copy(rec: Record, local: Record, decision: Decision, group: GroupView) -> bool:
    """Whether our ``local`` version must be copied away before ``decision`` replaces it with ``rec``."""
    if local.deleted or local.kind not in (Kind.FILE, Kind.SYMLINK):
        return False
    if decision.action is not Action.APPLY or (rec.same_content(local) and not decision.backup):
        return False
    return decision.backup or (group.backup_directory is not None and group.backup_generations > 1)


@dataclass
class Kept:
    not_kept: dict[str, str] = field(default_factory=dict)  #: real path -> why it could not be kept
    rows: list[KeptVersion] = field(default_factory=list)  #: conflict losers, for ``kept_versions``


def keep_copies(
    wanted: list[tuple[str, Record, Decision]],
    group_of: Callable[[str], GroupView],
    state_dir: str,
    me: str,
    peer: str,
) -> Kept:
    """Copy each (real path, our version, decision) away; blocking file I/O (run it off the event loop).
    A version that could not be copied must not be replaced: it is listed in ``not_kept``."""
    out = Kept()
    for real, local, decision in wanted:
        if not disk_matches(real, local):
            continue  # changed here since the last scan: the apply refuses it anyway
        g = group_of(real)
        try:
            if g.backup_directory is not None and g.backup_generations > 1:
                where = keep.backup_generations(real, g.backup_directory, g.backup_generations)
            else:
                where = keep.store(real, state_dir)
        except keep.KeepError as e:
            out.not_kept[real] = f"{e}; not replaced"
            continue
        if decision.backup:
            author = max(local.vector, key=lambda e: (e[1], e[0]))[0] if local.vector else me
            out.rows.append(
                KeptVersion(
                    local.path,
                    real,
                    author,
                    peer,
                    decision.reason,
                    time.time_ns(),
                    int(local.kind),
                    local.hash,
                    local.size_bytes,
                    where,
                )
            )
            log.warning("kept %s's version of %s at %s (%s)", author, real, where, decision.reason)
    return out
