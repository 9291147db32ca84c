"""Print a configuration model back as config text that parses to the same model.

Owns: quoting rules and the canonical layout. Must not: drop anything the model holds (the round-trip
property test holds it to that).
"""

from __future__ import annotations

from shoal.config.model import ConfigSpec, GroupSpec, HostSpec
from shoal.config.parser import ACTION_KEYWORDS, GROUP_KEYWORDS, TOP_KEYWORDS
from shoal.config.tokens import CSYNC2_KEYWORDS, WORD_BREAKS

_RESERVED = CSYNC2_KEYWORDS | set(TOP_KEYWORDS) | set(GROUP_KEYWORDS) | set(ACTION_KEYWORDS)


def quote(value: str) -> str:
    """Bare when the tokenizer would read it back as the same single value, quoted otherwise."""
    if '"' in value:
        raise ValueError(f"a config value cannot hold a double quote: {value!r}")
    bare = value and not value.endswith(":") and value not in _RESERVED and not any(c in WORD_BREAKS for c in value)
    return value if bare else f'"{value}"'


def _duration(ms: int) -> str:
    return f"{ms}ms"


def _host(h: HostSpec) -> str:
    text = quote(h.name)
    if h.address is not None:
        addr = f"[{h.address}]" if ":" in h.address else h.address
        text += "@" + quote(addr if h.port is None else f"{addr}:{h.port}")
    return f"({text})" if h.slave else text


def _group(g: GroupSpec) -> list[str]:
    out = [f"group {quote(g.name)} {{"]
    for h in g.hosts:
        out.append(f"    host {_host(h)};")
    if g.key is not None:
        out.append(f"    key {quote(g.key)};")
    for r in g.rules:
        out.append(f"    {r.kind} {quote(r.pattern)};")
    singles: list[tuple[str, str | None]] = [
        ("auto", g.auto),
        ("backup-directory", None if g.backup_directory is None else quote(g.backup_directory)),
        ("backup-generations", None if g.backup_generations is None else str(g.backup_generations)),
    ]
    out += [f"    {keyword} {value};" for keyword, value in singles if value is not None]
    for a in g.actions:
        out.append("    action {")
        if a.patterns:
            out.append("        pattern " + " ".join(quote(p) for p in a.patterns) + ";")
        if a.execs:
            out.append("        exec " + " ".join(quote(e) for e in a.execs) + ";")
        if a.logfile is not None:
            out.append(f"        logfile {quote(a.logfile)};")
        if a.do_local_only:
            out.append("        do-local-only;")
        elif a.do_local:
            out.append("        do-local;")
        out.append("    }")
    extensions: list[tuple[str, str | None]] = [
        ("interval", None if g.interval_ms is None else _duration(g.interval_ms)),
        ("watch", None if g.watch is None else ("on" if g.watch else "off")),
        ("delay", None if g.delay_ms is None else _duration(g.delay_ms)),
    ]
    out += [f"    {keyword} {value};" for keyword, value in extensions if value is not None]
    if g.only_from:
        out.append("    only-from " + " ".join(g.only_from) + ";")
    for fp in g.fingerprints:
        out.append(f"    fingerprint {quote(fp.host)} {fp.sha256_hex};")
    allowed = [word for word, on in (("setuid", g.allow_setuid), ("devices", g.allow_devices)) if on]
    if allowed:
        out.append("    allow " + " ".join(allowed) + ";")
    out.append("}")
    return out


def render(cfg: ConfigSpec) -> str:
    """The whole model as one config file (includes and fragments already merged into it)."""
    out: list[str] = []
    settings: list[tuple[str, str | int | None]] = [
        ("port", cfg.port),
        ("key", cfg.default_key),
        ("tls-dir", cfg.tls_dir),
        ("metrics-listen", cfg.metrics_listen),
        ("database", cfg.database),
        ("tempdir", cfg.tempdir),
        ("lock-timeout", cfg.lock_timeout_s),
    ]
    for keyword, value in settings:
        if value is not None:
            out.append(f"{keyword} {value if isinstance(value, int) else quote(value)};")
    if cfg.no_cygwin_lowercase:
        out.append("no-cygwin-lowercase;")
    if cfg.ignore:
        out.append("ignore " + " ".join(cfg.ignore) + ";")
    for n in cfg.nossl:
        out.append(f"nossl {quote(n.from_pattern)} {quote(n.to_pattern)};")
    for p in cfg.prefixes:
        out.append(f"prefix {quote(p.name)} {{")
        for e in p.entries:
            out.append(f"    on {quote(e.host_pattern)}: {quote(e.path)};")
        out.append("}")
    for g in cfg.groups:
        out.extend(_group(g))
    return "\n".join(out) + "\n"
