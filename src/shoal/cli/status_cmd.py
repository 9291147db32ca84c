"""``shoal status [--json]``: the running daemon's view (peers, watches, queue), plus what the database
knows (changes each peer has not taken, open conflicts). Without a daemon it says so and shows the
database part. Exit 0 when healthy, 1 when no daemon runs, a peer is down, a conflict is open or a peer's
changes could not be applied here (a full disk, say)."""

from __future__ import annotations

import json
import time
from typing import Any

import click

from shoal.cli.context import AppContext


def _ago(ts: float | None) -> str:
    if ts is None:
        return "never"
    s = max(0.0, time.time() - ts)
    return f"{s:.0f}s ago" if s < 120 else f"{s / 60:.0f}m ago" if s < 7200 else f"{s / 3600:.1f}h ago"


@click.command("status")
@click.option("--json", "as_json", is_flag=True, help="One JSON object, for scripts and monitoring.")
@click.pass_obj
def status(app: AppContext, as_json: bool) -> int:
    """Show the daemon's state, each peer's health and lag, and open conflicts."""
    from shoal.control.protocol import call
    from shoal.engine.pending import pending_view

    answer = call(app.state_dir, {"verb": "status"}, timeout_s=10)
    daemon: dict[str, Any] | None = answer.get("status") if answer else None
    from shoal.engine.pending import PendingView
    from shoal.errors import StateError

    cfg = app.node_config()
    pins: dict[str, str | None] = dict.fromkeys(sorted(cfg.peers()))
    try:
        with app.open_db(readonly=True) as db:
            view = pending_view(db, cfg)
            pins = {p: db.pin(p) for p in pins}
    except StateError:  # nothing recorded yet: every peer lacks nothing we know of
        view = PendingView(cfg.node, {p: [] for p in sorted(cfg.peers())}, [])
    lag = {peer: len(paths) for peer, paths in view.peers.items()}
    now = time.time()
    lag_s = {peer: round(view.lag_seconds(peer, now), 1) for peer in view.peers}
    data = {
        "node": cfg.node,
        "daemon": daemon,
        "lag": lag,
        "lag_seconds": lag_s,
        "fingerprints": pins,
        "conflicts": [{"path": c.path, "peer": c.peer, "detected_ns": c.detected_ns} for c in view.conflicts],
    }
    peers_down = [p for p, h in (daemon or {}).get("peers", {}).items() if h.get("down")]
    not_applied = [p for p, h in (daemon or {}).get("peers", {}).items() if h.get("apply_problems")]
    healthy = daemon is not None and not peers_down and not view.conflicts and not not_applied
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
        return 0 if healthy else 1
    if daemon is None:
        click.echo(f"{cfg.node}: no daemon running (state {app.state_dir}); what the database knows:")
    else:
        click.echo(
            f"{cfg.node}: daemon pid {daemon['pid']} on {daemon['listening']}, up {_ago(daemon['started'])[:-4]}"
        )
        if daemon.get("watching"):
            click.echo(
                f"  watching {daemon['watches']} directories, {daemon['events']} events, queue {daemon['queue']}, "
                f"{daemon['overflows']} overflows, last full scan {_ago(daemon['last_full_scan'])}"
            )
            if daemon.get("live_failures"):
                click.echo(
                    f"  live mode failed {daemon['live_failures']} time(s) and was restarted; "
                    f"last error: {daemon['live_last_error']} (see the daemon's log)"
                )
            if daemon.get("unwatched"):
                click.echo(
                    f"  NOT watched (watch limit; scanned every minute): {', '.join(daemon['unwatched'][:5])}; "
                    f"raise it: {daemon['watch_limit_hint']}"
                )
        else:
            click.echo("  not watching (--no-watch): changes go out with 'shoal sync'")
    for peer in sorted(cfg.peers()):
        h = (daemon or {}).get("peers", {}).get(peer)
        fp = pins.get(peer)
        line = f"  {peer} [{fp[:16] + '...' if fp else 'not pinned yet'}]: {lag[peer]} change(s) not taken yet"
        if lag[peer]:
            line += f" (oldest made {_ago(now - lag_s[peer])})"
        if h is not None:
            state = "DOWN" if h["down"] else "ok"
            line += f"; {state}, last success {_ago(h['last_ok'])}, sent {h['files_out']} / received {h['files_in']}"
            if h["last_error"]:
                line += f"; last error: {h['last_error']}"
        click.echo(line)
        for problem in (h or {}).get("apply_problems", []):
            click.echo(f"    not applied (retried): {problem}")
    for c in view.conflicts:
        click.echo(f"  conflict: {c.path} with {c.peer} (see 'shoal conflicts')")
    return 0 if healthy else 1
