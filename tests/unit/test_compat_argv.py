"""csync2's command line as shoal-csync2 parses it: clustered flags, modes, modifiers, refusals."""

from __future__ import annotations

import pytest

from shoal.compat.argv import UsageError, parse


@pytest.mark.parametrize(
    ("argv", "mode", "args", "checks"),
    [
        ([], "help", [], {}),
        (["-x"], "check-update", [], {}),
        (["-xv"], "check-update", [], {"verbose": 1}),
        (["-xvv", "-d"], "check-update", [], {"verbose": 2, "dry_run": True}),
        (["-cIr", "/"], "check", ["/"], {"init": True, "recursive": True}),
        (["-c", "-u"], "check", [], {"check_then_update": True}),
        (["-rh", "/a", "/b"], "hint", ["/a", "/b"], {"recursive": True}),
        (["-TUIX", "me", "peer"], "test", ["me", "peer"], {"repeat": 1, "init": True, "removals": True}),
        (["-TT", "me", "peer", "/f"], "test", ["me", "peer", "/f"], {"repeat": 2, "this_peer_only": False}),
        (["-T", "-T"], "test", [], {"repeat": 2}),
        (["-i", "-l"], "serve", [], {"repeat": 1, "syslog": True}),
        (["-ii"], "serve", [], {"repeat": 2}),
        (["-iii"], "serve", [], {"repeat": 3}),
        (["-k", "/etc/k"], "keygen", ["/etc/k"], {}),
        (["-M"], "list-dirty", [], {}),
        (["-L"], "list-files", [], {}),
        (["-H"], "list-hints", [], {}),
        (["-S", "a", "b"], "list-pair", ["a", "b"], {}),
        (["-R"], "remove-stale", [], {}),
        (["-o", "-r", "/srv"], "compare-list", ["/srv"], {"recursive": True}),
        (["-f", "/x"], "force", ["/x"], {}),
        (["-m", "/x"], "mark", ["/x"], {}),
        (["-u", "/x", "-d"], "update", ["/x"], {"dry_run": True}),  # options after arguments
        (["-xF"], "check-update", [], {"force_new": True}),
        (
            ["-N", "Node1", "-p", "30999", "-C", "web2", "-D", "/db", "-G", "a,b", "-P", "P1,p2", "-x"],
            "check-update",
            [],
            {
                "node": "node1",
                "port": 30999,
                "config_name": "web2",
                "database": "/db",
                "groups": ["a", "b"],
                "peers": ["p1", "p2"],
            },
        ),
        (["-B", "-A", "-t", "-s", "/tmp/ts", "-W", "3", "-x"], "check-update", [], {}),
    ],
)
def test_parse(argv: list[str], mode: str, args: list[str], checks: dict[str, object]) -> None:
    inv = parse(argv)
    assert inv.mode == mode
    assert inv.args == args
    for name, value in checks.items():
        assert getattr(inv, name) == value, name


def test_accepted_modifiers_are_kept_for_the_record() -> None:
    inv = parse(["-B", "-A", "-t", "-s", "/tmp/ts", "-W", "3", "-x"])
    assert inv.accepted == ["-B", "-A", "-t", "-s /tmp/ts", "-W 3"]


@pytest.mark.parametrize(
    ("argv", "why"),
    [
        (["-x", "-T"], "only one mode"),
        (["-M", "-L"], "only one mode"),
        (["-k"], "exactly one file"),
        (["-k", "a", "b"], "exactly one file"),
        (["-h"], "at least one file"),
        (["-f"], "at least one file"),
        (["-S", "a"], "two host names"),
        (["-T", "a", "b", "c", "d"], "at most three"),
        (["-iiii"], "at most three times"),
        (["-M", "/x"], "takes no file names"),
        (["-p", "http", "-x"], "port number"),
        (["-p", "70000", "-x"], "port number"),
        (["-C", "Web", "-x"], "config name"),
        (["-W", "x", "-x"], "file descriptor"),
        (["-q"], "not recognized"),
        (["-N"], "requires argument"),
    ],
)
def test_refused(argv: list[str], why: str) -> None:
    with pytest.raises(UsageError, match=why):
        parse(argv)
