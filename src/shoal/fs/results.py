"""What a scan found: plain values, importable without the scanner (the CLI renders them cheaply)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Problem:
    path: str
    message: str


@dataclass
class ScanResult:
    new: int = 0
    changed: int = 0
    metadata: int = 0
    type_changed: int = 0
    deleted: int = 0
    unchanged: int = 0
    forgotten: int = 0
    hashed_files: int = 0
    hashed_bytes: int = 0
    seconds: float = 0.0
    problems: list[Problem] = field(default_factory=list)
    changed_paths: list[str] = field(default_factory=list)
    busy: list[str] = field(default_factory=list)  #: real paths skipped: a peer's change was being applied
    busy_dirs: list[str] = field(default_factory=list)  #: directories skipped so (to look at alone, later)
    incomplete: list[str] = field(default_factory=list)  #: real paths that could not be read whole (see problems)

    @property
    def recorded(self) -> int:
        return self.new + self.changed + self.metadata + self.type_changed + self.deleted
