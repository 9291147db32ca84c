"""A node's view of its config as lines of text, for ``shoal config check`` and the demo."""

from __future__ import annotations

from shoal.config.resolve import GroupView, NodeConfig


def _duration(ms: int | None) -> str:
    if ms is None:
        return "-"
    for unit, size in (("d", 86_400_000), ("h", 3_600_000), ("m", 60_000), ("s", 1000)):
        if ms % size == 0:
            return f"{ms // size}{unit}"
    return f"{ms}ms"


def describe_group(cfg: NodeConfig, g: GroupView) -> list[str]:
    role = "slave (receive-only)" if g.slave else "master"
    lines = [f"group {g.name}: {role}, auto {g.auto}, key {g.key_path}"]
    lines.append(f"  roots     {', '.join(g.roots) or '(none: no pathname include)'}")
    for i, p in enumerate(g.peers):
        flags = ["tls" if cfg.uses_tls(p.name) else "NO TLS (nossl)"]
        if p.slave:
            flags.append("slave")
        flags.append("left" if p.left else "right")
        label = "peers" if i == 0 else ""
        lines.append(f"  {label:<9} {p.name:<16} {p.address}:{p.port}  {', '.join(flags)}")
    if not g.peers:
        lines.append("  peers     (none)")
    for r in g.rules:
        lines.append(f"  {r.kind:<9} {r.pattern}")
    if g.backup_directory:
        lines.append(f"  backups   {g.backup_directory} ({g.backup_generations} generations)")
    for a in g.actions:
        where = "local only" if a.do_local_only else "local and remote" if a.do_local else "on receipt"
        lines.append(f"  action    {len(a.execs)} command(s), {len(a.patterns) or 'all'} pattern(s), {where}")
    lines.append(
        f"  schedule  interval {_duration(g.interval_ms)}, watch {'on' if g.watch else 'off'}, "
        f"delay {_duration(g.delay_ms)}"
    )
    if g.only_from:
        lines.append(f"  only-from {' '.join(g.only_from)}")
    setuid = "applied (allow setuid)" if g.allow_setuid else "stripped"
    devices = "created (allow devices)" if g.allow_devices else "refused"
    lines.append(f"  receives  setuid/setgid bits {setuid}, device nodes {devices}")
    return lines
