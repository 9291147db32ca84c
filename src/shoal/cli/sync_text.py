"""What ``shoal sync`` prints for a sync report, and its exit code.

It works on the report's JSON form (what the daemon answers; ``dataclasses.asdict`` of a ``SyncReport``
for work done in-process), and imports nothing beyond the standard library, so that a sync handed to the
daemon prints its result without loading click or the engine (see cli/quick.py).
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False  # (not typing's: importing typing is a tenth of this command's start-up)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

#: The scan counts that mean something was recorded (``ScanResult.recorded``).
RECORDED = ("new", "changed", "metadata", "type_changed", "deleted")


def size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"


def _print_out(line: str) -> None:
    print(line, flush=True)


def _print_err(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


#: A session's lists, in the order printed: (field, the line for each entry, the reason it gives for not
#: converging or None); first what happened here, then what the peer reported.
_HERE = (
    ("would_change", "  would apply: {x}", None),
    ("resolved", "  conflict settled: {x}", None),
    ("conflicts", "  conflict: {x} (changed here and on {peer}; both versions kept)", "conflict on {x} with {peer}"),
    ("problems", "  problem: {x}", "{x}"),
)
_THERE = (
    (
        "peer_conflicts",
        "  conflict on {peer}: {x} (changed there and here; both versions kept)",
        "conflict on {x} at {peer}",
    ),
    ("peer_problems", "  problem on {peer}: {x}", "{peer}: {x}"),
)


def _entries(
    sess: dict[str, Any],
    peer: str,
    table: tuple[tuple[str, str, str | None], ...],
    out: Callable[[str], None],
    reasons: list[str],
) -> None:
    for key, line, reason in table:
        for x in sess[key]:
            out(line.format(x=x, peer=peer))
            if reason is not None:
                reasons.append(reason.format(x=x, peer=peer))


def render(
    report: dict[str, Any],
    verbose: int = 0,
    out: Callable[[str], None] = _print_out,
    err: Callable[[str], None] = _print_err,
) -> int:
    """Print ``report``; 0 when everything converged, else 1 (after saying why, on ``err``)."""
    scan = report.get("scan")
    if scan is not None and (any(scan[k] for k in RECORDED) or verbose):
        new, changed, metadata, deleted = scan["new"], scan["changed"], scan["metadata"], scan["deleted"]
        out(f"local: {new} new, {changed} changed, {metadata} metadata, {deleted} deleted")
    reasons: list[str] = []
    for sess in report.get("sessions", []):
        peer = sess["peer"]
        if sess.get("error"):
            out(f"{peer}: failed: {sess['error']}")
            reasons.append(f"{peer}: {sess['error']}")
            continue
        out(
            f"{peer}: received {sess['files_in']} files ({size(sess['bytes_in'])}), {sess['deleted_in']} "
            f"deletions; sent {sess['files_out']} files ({size(sess['bytes_out'])})"
        )
        _entries(sess, peer, _HERE, out, reasons)
        if sess["superseded"]:  # not a problem: the new versions are the next sync's
            out(f"  {sess['superseded']} file(s) changed on {peer} while being sent; not taken this time")
        _entries(sess, peer, _THERE, out, reasons)
    for what in report.get("open_conflicts", []):
        out(f"open conflict: {what} (see 'shoal conflicts'; settle with 'shoal resolve')")
        reasons.append(f"open conflict: {what}")
    for name, why in sorted(report.get("unreachable", {}).items()):
        out(f"{name}: unreachable: {why}")
    if reasons:
        err(f"not converged: {len(reasons)} problem(s)")
        return 1
    return 0


def refusal(answer: dict[str, Any]) -> str | None:
    """Why a daemon's answer to a sync request holds no report, or None when it holds one."""
    if "error" in answer:
        return f"the daemon refused: {answer['error']}"
    if "report" not in answer:
        return "the daemon closed the connection without an answer (see its log)"
    return None
