"""Apply a parsed configuration to one node: which groups it is in, its peers, its paths.

Owns: the semantic checks (membership, keys, prefixes, hosts) and the defaults. Must not: read files;
facts about key files come in through a ``key_probe`` callable, so this stays pure and table-testable.
All problems found are reported together, each with its file:line:col.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from dataclasses import dataclass, replace

from shoal.config.model import (
    DEFAULT_BACKUP_GENERATIONS,
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_PORT,
    ActionSpec,
    AutoPolicy,
    ConfigSpec,
    GroupSpec,
    IgnoreWord,
    NosslRule,
    PrefixSpec,
    SourcePos,
)
from shoal.errors import ConfigError
from shoal.model.fnmatch import fnmatch
from shoal.model.patterns import Matcher, Rule

MIN_KEY_CHARS = 32
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._")


@dataclass(frozen=True, slots=True)
class KeyFacts:
    """What the disk says about a key file (filled in by fs/, checked here)."""

    path: str
    error: str | None  #: why it could not be read, or None
    mode: int = 0
    first_line: str = ""


KeyProbe = Callable[[str], KeyFacts]


@dataclass(frozen=True, slots=True)
class Peer:
    name: str
    address: str
    port: int
    slave: bool
    left: bool  #: listed before this node in the group's host lines (``auto left|right``)


@dataclass(frozen=True, slots=True)
class GroupView:
    """One group as this node sees it."""

    name: str
    slave: bool  #: this node is receive-only in the group
    peers: tuple[Peer, ...]
    key_path: str
    rules: tuple[Rule, ...]
    auto: AutoPolicy
    backup_directory: str | None
    backup_generations: int
    actions: tuple[ActionSpec, ...]
    interval_ms: int | None
    watch: bool
    delay_ms: int | None
    only_from: tuple[str, ...]
    fingerprints: tuple[tuple[str, str], ...]
    roots: tuple[str, ...]
    hosts: tuple[str, ...] = ()  #: every host of the group, this node too, in config order
    slaves: frozenset[str] = frozenset()  #: the receive-only hosts (this node too, if it is one)
    allow_setuid: bool = False  #: received setuid/setgid bits are applied (``allow setuid;``)
    allow_devices: bool = False  #: received device nodes are created (``allow devices;``)


@dataclass(frozen=True, slots=True)
class NodeConfig:
    node: str
    groups: tuple[GroupView, ...]
    prefixes: tuple[tuple[str, str], ...]  #: (name, this node's path) for every prefix defined here
    nossl: tuple[NosslRule, ...]
    ignore: tuple[IgnoreWord, ...]
    lock_timeout_s: int
    database: str | None
    tempdir: str | None
    port: int
    tls_dir: str | None
    metrics_listen: str | None
    files: tuple[str, ...]
    listen_address: str = "0.0.0.0"  # noqa: S104 (all interfaces unless this node's host entry names one)
    listen_port: int = DEFAULT_PORT

    def matcher(self) -> Matcher:
        return Matcher([(g.name, g.rules) for g in self.groups])

    def peers(self) -> dict[str, Peer]:
        out: dict[str, Peer] = {}
        for g in self.groups:
            for p in g.peers:
                out.setdefault(p.name, p)
        return out

    def roots(self) -> list[str]:
        return self.matcher().roots()

    def nossl_matches(self, from_node: str, to_node: str) -> bool:
        """csync2's ``nossl FROM TO``: a connection from FROM to TO may be plain TCP."""
        return any(fnmatch(r.from_pattern, from_node) and fnmatch(r.to_pattern, to_node) for r in self.nossl)

    def uses_tls(self, peer: str) -> bool:
        """Whether this node dials ``peer`` with TLS."""
        return not self.nossl_matches(self.node, peer)


def prefix_paths(prefixes: tuple[PrefixSpec, ...], node: str) -> dict[str, str]:
    """This node's path for each prefix: the first ``on`` pattern that matches the node name wins."""
    out: dict[str, str] = {}
    for p in prefixes:
        for e in p.entries:
            if fnmatch(e.host_pattern, node):
                out[p.name] = e.path
                break
    return out


def _expand(
    pattern: str, pos: SourcePos, prefixes: dict[str, str], defined: set[str], node: str, errors: list[str]
) -> str:
    if not pattern.startswith("%"):
        return pattern
    end = pattern.find("%", 1)
    if end < 0:
        errors.append(f"{pos}: unterminated prefix name in pattern '{pattern}'")
        return pattern
    name = pattern[1:end]
    if name not in defined:
        errors.append(f"{pos}: prefix '{name}' is used but never defined")
        return pattern
    if name not in prefixes:
        errors.append(f"{pos}: prefix '{name}' has no path for this host ({node})")
        return pattern
    base = prefixes[name]
    rest = pattern[end + 1 :]
    return (base.rstrip("/") + rest) or "/"


def _check_key(path: str, pos: SourcePos, probe: KeyProbe, errors: list[str]) -> None:
    facts = probe(path)
    if facts.error is not None:
        errors.append(f"{pos}: cannot read key file {path}: {facts.error}")
        return
    if facts.mode & 0o077:
        errors.append(
            f"{pos}: key file {path} is readable by group or others (mode {facts.mode & 0o777:04o}); "
            f"run: chmod 600 {path}"
        )
    bad = next((c for c in facts.first_line if c not in _KEY_CHARS), None)
    if bad is not None:
        errors.append(f"{pos}: key file {path} holds a character not allowed in keys: {bad!r}")
    elif len(facts.first_line) < MIN_KEY_CHARS:
        errors.append(
            f"{pos}: key in file {path} is too short ({len(facts.first_line)} characters, "
            f"at least {MIN_KEY_CHARS}; make one with 'shoal keygen FILE')"
        )


def _group_view(
    g: GroupSpec,
    cfg: ConfigSpec,
    node: str,
    prefixes: dict[str, str],
    defined: set[str],
    probe: KeyProbe,
    errors: list[str],
    fallback_port: int = DEFAULT_PORT,
) -> GroupView | None:
    me = [h for h in g.hosts if h.name == node]
    if not me:
        return None
    seen: dict[str, SourcePos] = {}
    for h in g.hosts:
        if h.name in seen:
            errors.append(f"{h.pos}: host '{h.name}' listed twice in group '{g.name}' (first at {seen[h.name]})")
        seen[h.name] = h.pos
    my_index = g.hosts.index(me[0])
    default_port = cfg.port or fallback_port
    peers = tuple(
        Peer(h.name, h.address or h.name, h.port or default_port, h.slave, i < my_index)
        for i, h in enumerate(g.hosts)
        if h.name != node
    )
    if g.key is not None:
        key, key_pos = g.key, g.key_pos
    elif cfg.default_key is not None:
        key, key_pos = cfg.default_key, cfg.default_key_pos
    else:
        errors.append(
            f"{g.pos}: group '{g.name}' has no key (add 'key FILE;' to the group, "
            f"or a default 'key FILE;' at top level)"
        )
        key, key_pos = "", g.pos
    key_path = key if key.startswith("/") or not key else posixpath.join(posixpath.dirname(key_pos.file), key)
    if key_path:
        _check_key(key_path, key_pos, probe, errors)
    rules = tuple(Rule(r.kind, _expand(r.pattern, r.pos, prefixes, defined, node, errors)) for r in g.rules)
    actions = tuple(
        replace(a, patterns=tuple(_expand(p, a.pos, prefixes, defined, node, errors) for p in a.patterns))
        for a in g.actions
    )
    hosts = {h.name for h in g.hosts}
    for fp in g.fingerprints:
        if fp.host not in hosts:
            errors.append(f"{fp.pos}: fingerprint for '{fp.host}', which is not a host of group '{g.name}'")
    backup_dir = g.backup_directory
    if backup_dir is not None:
        backup_dir = _expand(backup_dir, g.pos, prefixes, defined, node, errors)
    matcher = Matcher([(g.name, rules)])
    return GroupView(
        name=g.name,
        slave=me[0].slave,
        peers=peers,
        key_path=key_path,
        rules=rules,
        auto=g.auto or "none",
        backup_directory=backup_dir,
        backup_generations=DEFAULT_BACKUP_GENERATIONS if g.backup_generations is None else g.backup_generations,
        actions=actions,
        interval_ms=g.interval_ms,
        watch=True if g.watch is None else g.watch,
        delay_ms=g.delay_ms,
        only_from=g.only_from,
        fingerprints=tuple((fp.host, fp.sha256_hex) for fp in g.fingerprints),
        roots=tuple(matcher.roots()),
        hosts=tuple(h.name for h in g.hosts),
        slaves=frozenset(h.name for h in g.hosts if h.slave),
        allow_setuid=g.allow_setuid,
        allow_devices=g.allow_devices,
    )


def resolve(cfg: ConfigSpec, node: str, key_probe: KeyProbe, default_port: int = DEFAULT_PORT) -> NodeConfig:
    """The node's view of ``cfg``; raise ConfigError listing every problem found. ``default_port`` is the
    port of hosts the config gives none (``shoal-csync2`` uses csync2's)."""
    node = node.lower()
    errors: list[str] = []
    prefixes = prefix_paths(cfg.prefixes, node)
    defined = {p.name for p in cfg.prefixes}
    groups = []
    for g in cfg.groups:
        view = _group_view(g, cfg, node, prefixes, defined, key_probe, errors, default_port)
        if view is not None:
            groups.append(view)
    if not groups:
        known = sorted({h.name for g in cfg.groups for h in g.hosts})
        hint = f" Hosts in the config: {', '.join(known)}." if known else " The config has no hosts."
        errors.insert(
            0, f"This host ({node}) is not a member of any configured group.{hint} Set this node's name with -N NAME."
        )
    if errors:
        raise ConfigError("\n".join(errors))
    me = next(h for g in cfg.groups for h in g.hosts if h.name == node)
    return NodeConfig(
        listen_address=me.address or "0.0.0.0",  # noqa: S104
        listen_port=me.port or cfg.port or default_port,
        node=node,
        groups=tuple(groups),
        prefixes=tuple(sorted(prefixes.items())),
        nossl=cfg.nossl,
        ignore=cfg.ignore,
        lock_timeout_s=DEFAULT_LOCK_TIMEOUT_S if cfg.lock_timeout_s is None else cfg.lock_timeout_s,
        database=cfg.database,
        tempdir=cfg.tempdir,
        port=cfg.port or default_port,
        tls_dir=cfg.tls_dir,
        metrics_listen=cfg.metrics_listen,
        files=cfg.files,
    )
