"""Coalescing change notifications into scan batches: pure, with the clock passed in.

- Each path is pending once, however many events it gets (per-path coalescing).
- A batch is due ``delay`` after the first event it holds (not after the last: a file written all the
  time still goes out), and never later than ``max_wait`` after it, whatever else happens (a sync
  still running when the batch was due postpones it; ``max_wait`` bounds how long).
- Escalation: when more than ``escalate_at`` paths are pending in one directory, they become that
  directory (one subtree scan instead of thousands of single paths); past ``flood_at`` pending paths
  in all, the batch becomes a scan of everything.
- A pending directory covers everything below it; a directory added *alone* (``add_alone``: to look at
  its own entry later, not its contents) covers nothing.
- Held changes (``hold``: paths something else is busy with) are not part of any batch until
  ``release``, or ``hold_max_s`` after the first of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Aggregator:
    delay_s: float = 0.02
    max_wait_s: float = 1.0
    escalate_at: int = 256
    flood_at: int = 50_000
    hold_max_s: float = 1.0
    _paths: dict[str, None] = field(default_factory=dict)  # insertion-ordered set
    _alone: dict[str, None] = field(default_factory=dict)  # directories to look at without their contents
    _per_dir: dict[str, int] = field(default_factory=dict)
    _first: float | None = None
    _everything: bool = False
    _held: dict[str, None] = field(default_factory=dict)
    _held_alone: dict[str, None] = field(default_factory=dict)
    _held_since: float | None = None

    def add(self, paths: list[str] | None, now: float) -> None:
        """Note changed real paths; ``None`` = everything (a queue overflow)."""
        if self._first is None:
            self._first = now
        if paths is None:
            self._everything = True
            self._paths.clear()
            self._per_dir.clear()
            return
        if self._everything:
            return
        for p in paths:
            if p in self._paths or self._covered(p):
                continue
            self._paths[p] = None
            parent = p.rpartition("/")[0] or "/"
            n = self._per_dir.get(parent, 0) + 1
            self._per_dir[parent] = n
            if n > self.escalate_at:
                self._collapse(parent)
        if len(self._paths) > self.flood_at:
            self._everything = True
            self._paths.clear()
            self._per_dir.clear()

    def add_alone(self, directories: list[str], now: float) -> None:
        """Note directories whose own entry (mode, owner, mtime) needs a look, not what lies below."""
        if self._first is None:
            self._first = now
        if self._everything:
            return
        for d in directories:
            if d not in self._paths and not self._covered(d):
                self._alone[d] = None

    def hold(self, paths: list[str], directories: list[str], now: float) -> None:
        """Note changes (``directories``: alone) that must wait until what keeps them busy is done."""
        if not paths and not directories:
            return
        self._held.update(dict.fromkeys(paths))
        self._held_alone.update(dict.fromkeys(directories))
        if self._held_since is None:
            self._held_since = now

    def held_until(self) -> float | None:
        """When held changes join the pending ones at the latest (None: none are held)."""
        return None if self._held_since is None else self._held_since + self.hold_max_s

    def release(self, now: float, *, early: bool = False) -> None:
        """Held changes become pending: at once if ``early`` (what kept them is done), else once
        ``hold_max_s`` has passed since the first of them."""
        until = self.held_until()
        if until is None or not (early or now >= until):
            return
        paths, directories = list(self._held), list(self._held_alone)
        self._held.clear()
        self._held_alone.clear()
        self._held_since = None
        if paths:
            self.add(paths, now)
        if directories:
            self.add_alone(directories, now)

    def _covered(self, p: str) -> bool:
        while True:
            p = p.rpartition("/")[0]
            if not p:
                return False
            if p in self._paths:
                return True

    def _collapse(self, directory: str) -> None:
        prefix = directory + "/"
        for p in [p for p in self._paths if p.startswith(prefix)]:
            del self._paths[p]
        self._per_dir = {d: n for d, n in self._per_dir.items() if not (d == directory or d.startswith(prefix))}
        self._paths[directory] = None
        grand = directory.rpartition("/")[0] or "/"
        self._per_dir[grand] = self._per_dir.get(grand, 0) + 1

    @property
    def pending(self) -> int:
        held = len(self._held) + len(self._held_alone)
        return len(self._paths) + len(self._alone) + held + (1 if self._everything else 0)

    def due_at(self) -> float | None:
        """When the pending batch is due (None: nothing pending)."""
        if self._first is None:
            return None
        return self._first + min(self.delay_s, self.max_wait_s)

    def overdue(self, now: float) -> bool:
        """Past ``max_wait``: must go out even if the owner would rather wait."""
        return self._first is not None and now >= self._first + self.max_wait_s

    def take_alone(self) -> list[str]:
        """The directories added alone (before ``take``: a scan of everything covers them too)."""
        out = [] if self._everything else list(self._alone)
        self._alone.clear()
        return out

    def take(self) -> list[str] | None:
        """The batch (``None`` = scan everything), resetting the aggregator (``take_alone`` first)."""
        out = None if self._everything else list(self._paths)
        self._alone.clear()
        self._paths.clear()
        self._per_dir.clear()
        self._first = None
        self._everything = False
        return out
