"""The early ``sync`` hand-off (cli/quick.py) against the full command line: for every argument list it
takes, the daemon must get the same request the click command would send, from the same state
directory and with the same verbosity; everything else it must leave to click."""

from __future__ import annotations

import os
from typing import Any

import pytest

import shoal.control.protocol
from shoal.cli import quick, sync_cmd
from shoal.cli.main import cli

REPORT: dict[str, Any] = {"scan": None, "sessions": [], "unreachable": {}, "open_conflicts": []}

TAKEN = [
    ["sync"],
    ["-c", "/etc/x.cfg", "-N", "Alpha", "--state-dir", "/tmp/st", "sync"],
    ["--config=/x.cfg", "--node=a", "--state-dir=/s", "-vv", "sync", "--peer", "Beta", "--peer=gamma"],
    ["-v", "--verbose", "sync", "/srv/a", "--group", "g1", "rel/b", "--group=g2", "--dry-run"],
    ["sync", "--push-only", "--full", "--push-only", "./x/../y", "--", "--not-an-option", "-"],
    ["-vvv", "sync", "--dry-run", "--", "/a"],
]

DECLINED = [
    ["sync", "--standalone"],
    ["sync", "-h"],
    ["sync", "--help"],
    ["--help"],
    ["check"],
    [],
    ["-c", "a.cfg", "-c", "b.cfg", "sync"],  # repeated: precedence is click's
    ["sync", "--peer"],
    ["sync", "--peer", "--dry-run"],
    ["-cfoo.cfg", "sync"],
    ["-c=foo.cfg", "sync"],
    ["sync", "-"],
    ["sync", "--dry-run=1"],
    ["sync", "--bogus"],
    ["--bogus", "sync"],
    ["-x", "sync"],
    ["--version"],
    ["sync", "-v"],  # -v belongs before the command
]


def _through_click(argv: list[str], monkeypatch: pytest.MonkeyPatch) -> tuple[str, dict[str, Any], int]:
    seen: list[Any] = []

    def call(state_dir: str, request: dict[str, Any], timeout_s: float = 0) -> dict[str, Any]:
        seen.append((state_dir, request))
        return {"report": REPORT}

    def render(report: dict[str, Any], verbose: int = 0) -> int:
        seen.append(verbose)
        return 0

    monkeypatch.setattr(shoal.control.protocol, "call", call)
    monkeypatch.setattr(sync_cmd, "render", render)
    assert cli.main(args=list(argv), prog_name="shoal", standalone_mode=False) == 0
    (state_dir, request), verbose = seen
    return state_dir, request, verbose


@pytest.mark.parametrize("env_dir", [None, "/env/state"])
@pytest.mark.parametrize("argv", TAKEN, ids=" ".join)
def test_the_hand_off_sends_what_the_full_command_line_would(
    argv: list[str], env_dir: str | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    if env_dir is None:
        monkeypatch.delenv("SHOAL_STATE_DIR", raising=False)
    else:
        monkeypatch.setenv("SHOAL_STATE_DIR", env_dir)
    ours = quick.parse(argv, os.environ)
    assert ours is not None
    assert ours == _through_click(argv, monkeypatch)


def test_relative_paths_are_made_absolute_for_the_daemon(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    monkeypatch.chdir(tmp_path)
    parsed = quick.parse(["sync", "sub/f", "./g", "/abs/h"], {})
    assert parsed is not None
    assert parsed[1]["paths"] == [str(tmp_path / "sub/f"), str(tmp_path / "g"), "/abs/h"]


@pytest.mark.parametrize("argv", DECLINED, ids=lambda a: " ".join(a) or "(none)")
def test_anything_else_is_left_to_the_full_command_line(argv: list[str]) -> None:
    assert quick.parse(argv, {}) is None


def test_an_answer_without_a_report_is_an_error_not_a_crash() -> None:
    from shoal.cli.sync_text import refusal

    assert refusal({"report": REPORT}) is None
    assert refusal({"error": "busy"}) == "the daemon refused: busy"
    assert "without an answer" in (refusal({}) or "")


@pytest.mark.parametrize("reply", [b"", b'{"report": {"scan"'])
def test_a_daemon_that_goes_away_mid_request_is_no_answer(tmp_path: Any, reply: bytes) -> None:
    """A real socket whose other end reads the request, then closes after ``reply`` (nothing, or a cut
    answer): the caller gets {} and says so, rather than a traceback."""
    import socket
    import threading

    from shoal.cli.sync_text import refusal
    from shoal.control.protocol import call, socket_path

    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(socket_path(str(tmp_path)))
    server.listen(1)

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.recv(1 << 16)
            conn.sendall(reply)

    t = threading.Thread(target=serve)
    t.start()
    try:
        answer = call(str(tmp_path), {"verb": "sync"}, timeout_s=5)
    finally:
        t.join(5)
        server.close()
    assert answer == {}
    assert "without an answer" in (refusal(answer) or "")


def test_the_report_text_and_exit_code() -> None:
    """What cron mails: every list of a session in order, the reasons for not converging, exit 1."""
    from shoal.cli.sync_text import render

    sess: dict[str, Any] = {
        "peer": "beta",
        "files_in": 2,
        "bytes_in": 3 << 20,
        "files_out": 1,
        "bytes_out": 10,
        "deleted_in": 1,
        "would_change": ["/w"],
        "resolved": ["/r: auto younger"],
        "conflicts": ["/c"],
        "problems": ["p1"],
        "superseded": 2,
        "peer_conflicts": ["/pc"],
        "peer_problems": ["pp"],
        "error": None,
    }
    report = {
        "scan": {"new": 1, "changed": 0, "metadata": 0, "type_changed": 0, "deleted": 0},
        "sessions": [sess, {"peer": "gamma", "error": "refused"}],
        "unreachable": {"delta": "timed out"},
        "open_conflicts": ["/old with beta"],
    }
    out: list[str] = []
    err: list[str] = []
    assert render(report, 0, out.append, err.append) == 1
    assert out == [
        "local: 1 new, 0 changed, 0 metadata, 0 deleted",
        "beta: received 2 files (3.0 MiB), 1 deletions; sent 1 files (10 B)",
        "  would apply: /w",
        "  conflict settled: /r: auto younger",
        "  conflict: /c (changed here and on beta; both versions kept)",
        "  problem: p1",
        "  2 file(s) changed on beta while being sent; not taken this time",
        "  conflict on beta: /pc (changed there and here; both versions kept)",
        "  problem on beta: pp",
        "gamma: failed: refused",
        "open conflict: /old with beta (see 'shoal conflicts'; settle with 'shoal resolve')",
        "delta: unreachable: timed out",
    ]
    assert err == ["not converged: 6 problem(s)"]  # conflict, problem, peer's two, gamma, the open one
    quiet = {"scan": {**report["scan"], "new": 0}, "sessions": [], "unreachable": {}, "open_conflicts": []}
    out.clear()
    assert render(quiet, 0, out.append, err.append) == 0 and out == []
    assert render(quiet, 1, out.append, err.append) == 0 and out == ["local: 0 new, 0 changed, 0 metadata, 0 deleted"]
