"""What a sync did: plain values, importable without the engine. They travel as JSON
(``dataclasses.asdict``), which is what cli/sync_text.py prints."""

from __future__ import annotations

from dataclasses import dataclass, field

from shoal.fs.results import ScanResult


@dataclass
class SessionReport:
    peer: str
    files_in: int = 0
    bytes_in: int = 0
    files_out: int = 0
    bytes_out: int = 0
    deleted_in: int = 0
    conflicts: list[str] = field(default_factory=list)  #: open conflicts (auto none)
    resolved: list[str] = field(default_factory=list)  #: conflicts settled here: "PATH: how"
    problems: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    superseded: int = 0  #: versions the peer replaced while we asked for them (the newer ones follow)
    would_change: list[str] = field(default_factory=list)  #: dry run: what pulling would change here
    error: str | None = None
    #: what the peer reported when it took our changes
    peer_applied: int = 0
    peer_conflicts: list[str] = field(default_factory=list)
    peer_problems: list[str] = field(default_factory=list)


@dataclass
class SyncReport:
    scan: ScanResult | None = None
    sessions: list[SessionReport] = field(default_factory=list)
    unreachable: dict[str, str] = field(default_factory=dict)
    open_conflicts: list[str] = field(default_factory=list)  #: "PATH with PEER", found by earlier runs

    @property
    def converged(self) -> bool:
        return not self.open_conflicts and all(
            s.error is None and not s.conflicts and not s.problems and not s.peer_problems and not s.peer_conflicts
            for s in self.sessions
        )
