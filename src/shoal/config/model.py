"""The typed configuration model: what a set of config files says, before it is applied to one node.

Owns: immutable values for every statement of the csync2 2.0 language and shoal's extensions. Must not:
read files, or decide which node is "me" (see resolve.py). Source positions ride along for error
messages and never take part in equality, so a printed and re-parsed model compares equal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, NamedTuple

AutoPolicy = Literal["none", "first", "younger", "older", "bigger", "smaller", "left", "right"]
AUTO_POLICIES: tuple[AutoPolicy, ...] = ("none", "first", "younger", "older", "bigger", "smaller", "left", "right")

RuleKind = Literal["include", "exclude", "compare"]
IgnoreWord = Literal["uid", "gid", "mod"]
IGNORE_WORDS: tuple[IgnoreWord, ...] = ("uid", "gid", "mod")
AllowWord = Literal["setuid", "devices"]
ALLOW_WORDS: tuple[AllowWord, ...] = ("setuid", "devices")

DEFAULT_PORT = 30866
DEFAULT_LOCK_TIMEOUT_S = 12
DEFAULT_BACKUP_GENERATIONS = 3


class SourcePos(NamedTuple):
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


NOWHERE = SourcePos("<generated>", 0, 0)


def _pos() -> SourcePos:
    return field(default=NOWHERE, compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class HostSpec:
    """One word of a ``host`` line: ``name``, ``name@address[:port]``, or either inside ``( )``."""

    name: str
    address: str | None = None
    port: int | None = None
    slave: bool = False
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PatternRule:
    kind: RuleKind
    pattern: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ActionSpec:
    patterns: tuple[str, ...] = ()
    execs: tuple[str, ...] = ()
    logfile: str | None = None
    do_local: bool = False
    do_local_only: bool = False
    pos: SourcePos = _pos()
    #: where each of ``execs`` was written (for warnings about its text)
    exec_pos: tuple[SourcePos, ...] = field(default=(), compare=False, repr=False)


@dataclass(frozen=True, slots=True)
class FingerprintPin:
    host: str
    sha256_hex: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class GroupSpec:
    name: str
    hosts: tuple[HostSpec, ...] = ()
    key: str | None = None
    rules: tuple[PatternRule, ...] = ()
    auto: AutoPolicy | None = None
    backup_directory: str | None = None
    backup_generations: int | None = None
    actions: tuple[ActionSpec, ...] = ()
    interval_ms: int | None = None
    watch: bool | None = None
    delay_ms: int | None = None
    only_from: tuple[str, ...] = ()
    fingerprints: tuple[FingerprintPin, ...] = ()
    #: ``allow setuid;``: received setuid/setgid bits are applied (stripped otherwise)
    allow_setuid: bool = False
    #: ``allow devices;``: received device nodes are created (refused otherwise)
    allow_devices: bool = False
    pos: SourcePos = _pos()
    key_pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PrefixEntry:
    host_pattern: str
    path: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class PrefixSpec:
    name: str
    entries: tuple[PrefixEntry, ...] = ()
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class NosslRule:
    from_pattern: str
    to_pattern: str
    pos: SourcePos = _pos()


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """Everything the files said, merged in reading order (includes and fragments expanded)."""

    groups: tuple[GroupSpec, ...] = ()
    prefixes: tuple[PrefixSpec, ...] = ()
    nossl: tuple[NosslRule, ...] = ()
    ignore: tuple[IgnoreWord, ...] = ()
    lock_timeout_s: int | None = None
    database: str | None = None
    tempdir: str | None = None
    port: int | None = None
    default_key: str | None = None
    tls_dir: str | None = None
    metrics_listen: str | None = None
    no_cygwin_lowercase: bool = False
    files: tuple[str, ...] = field(default=(), compare=False)
    default_key_pos: SourcePos = _pos()
