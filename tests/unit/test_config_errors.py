"""Broken configs and the exact error each one gets: file:line:col, what was expected, what was found."""

from __future__ import annotations

import pytest

from shoal.config.parser import parse_text
from shoal.errors import ConfigError

BROKEN = [
    (
        'group g { host a; key k; include ""; }',
        "shoal.cfg:1:34: expected a pattern after 'include', found an empty string",
    ),
    (
        "prefix p { on host*:/data; }",
        "shoal.cfg:1:15: expected 'on HOST: PATH' with a space after ':', found 'host*:/data'",
    ),
    ("group g { key k1 include /x; }", "shoal.cfg:1:18: expected ';' after key path, found keyword 'include'"),
    ("group g { host a b }", "shoal.cfg:1:20: expected ';' after host list, found '}'"),
    ("group g { host a b;", "shoal.cfg:1:20: expected '}' to close group 'g' (opened at 1:9), found end of file"),
    ("grop g { }", "shoal.cfg:1:1: unknown statement 'grop' (did you mean 'group'?)"),
    (
        "group g { hots a; }",
        "shoal.cfg:1:11: expected a group statement such as 'host' or 'include' in group 'g', found 'hots' "
        "(did you mean 'host'?)",
    ),
    ("group g { host; }", "shoal.cfg:1:15: expected a host name after 'host', found ';'"),
    ("group g { host (a; }", "shoal.cfg:1:18: expected ')' to close '(' at 1:16, found ';'"),
    ("group g { host (); }", "shoal.cfg:1:17: expected a host name after '(', found ')'"),
    ("group g { host a@; }", "shoal.cfg:1:18: expected an address after 'a@', found ';'"),
    ("group g { host a@b:0; }", "shoal.cfg:1:18: expected a port from 1 to 65535 in 'b:0'"),
    ("group g { host a@b:99999; }", "shoal.cfg:1:18: expected a port from 1 to 65535 in 'b:99999'"),
    # found by fuzzing: taken for a bare IPv6 address, then rendered as one that did not parse
    ("group g { host a@*::1]:1; }", "shoal.cfg:1:18: expected an IP address or a host name, found '*::1]:1'"),
    ("group g { host a@-x; }", "shoal.cfg:1:18: expected an IP address or a host name, found '-x'"),
    ("group g { host a@[::1; }", "shoal.cfg:1:18: expected [IPv6] or [IPv6]:PORT, found '[::1'"),
    ("group g { include; }", "shoal.cfg:1:18: expected a pattern after 'include', found ';'"),
    (
        "group g { include /a exclude /b; }",
        "shoal.cfg:1:22: expected ';' after the patterns of 'include', found keyword 'exclude'",
    ),
    ("group g { key; }", "shoal.cfg:1:14: expected a key file after 'key', found ';'"),
    ("group g { key a b; }", "shoal.cfg:1:17: expected ';' after key path, found 'b'"),
    ("group g { key a; key b; }", "shoal.cfg:1:18: 'key' given twice in group 'g' (first at shoal.cfg:1:11)"),
    (
        "group g { auto newest; }",
        "shoal.cfg:1:16: unknown auto policy 'newest' (use none, first, younger, older, bigger, smaller, left, right)",
    ),
    (
        "group g { auto younger; auto older; }",
        "shoal.cfg:1:25: 'auto' given twice in group 'g' (first at shoal.cfg:1:11)",
    ),
    ("group g { auto; }", "shoal.cfg:1:15: expected a policy after 'auto', found ';'"),
    (
        "group g { backup-generations many; }",
        "shoal.cfg:1:30: expected a count after 'backup-generations' (a whole number from 0 to 1000), found 'many'",
    ),
    ("group g { backup-directory; }", "shoal.cfg:1:27: expected a directory after 'backup-directory', found ';'"),
    ("group g { action { exec; } }", "shoal.cfg:1:24: expected a command after 'exec', found ';'"),
    ("group g { action { pattern /a } }", "shoal.cfg:1:31: expected ';' after the patterns of 'pattern', found '}'"),
    ("group g { action { logfile a b; } }", "shoal.cfg:1:30: expected ';' after logfile name, found 'b'"),
    (
        "group g { action { logfile a; logfile b; } }",
        "shoal.cfg:1:31: 'logfile' given twice in action (first at shoal.cfg:1:20)",
    ),
    (
        'group g { action { run "x"; } }',
        "shoal.cfg:1:20: expected an action statement (pattern, exec, logfile, do-local, do-local-only), found 'run'",
    ),
    ("group g { action { do-local } }", "shoal.cfg:1:29: expected ';' after 'do-local', found '}'"),
    (
        'group g { action { exec "x";',
        "shoal.cfg:1:29: expected '}' to close action (opened at 1:18), found end of file",
    ),
    ('group g { action exec "x"; }', "shoal.cfg:1:18: expected '{' after 'action', found keyword 'exec'"),
    (
        "group g { interval soon; }",
        "shoal.cfg:1:20: expected a duration such as 500ms, 30s, 10m, 2h or 1d after 'interval', found 'soon'",
    ),
    ("group g { delay 5 ms; }", "shoal.cfg:1:19: expected ';' after the delay, found 'ms'"),
    ("group g { watch maybe; }", "shoal.cfg:1:17: expected 'on' or 'off' after 'watch', found 'maybe'"),
    (
        "group g { only-from 10.0.0.300/8; }",
        "shoal.cfg:1:21: expected an address or CIDR network after 'only-from', found '10.0.0.300/8'",
    ),
    ("group g { fingerprint a abc; }", "shoal.cfg:1:25: expected a SHA-256 fingerprint (64 hex digits), found 'abc'"),
    ("group g { fingerprint a; }", "shoal.cfg:1:24: expected a SHA-256 fingerprint after the host name, found ';'"),
    ("group g { group h { } }", "shoal.cfg:1:11: 'group' is not allowed inside group 'g' (missing '}'?)"),
    ("group g { } group g { }", "shoal.cfg:1:19: group 'g' defined twice (first at shoal.cfg:1:7)"),
    ('group { "unterminated; }', "shoal.cfg:1:9: unterminated quoted string (no closing '\"')"),
    ("prefix p { on a /x; }", "shoal.cfg:1:17: expected ':' after the host pattern of 'on', found '/x'"),
    ("prefix p { on a: x; }", "shoal.cfg:1:18: prefix path must be absolute, found 'x'"),
    ("prefix p { a: /x; }", "shoal.cfg:1:12: expected 'on' or '}' in prefix 'p' (opened at 1:10), found 'a'"),
    ("prefix p { on a: /x }", "shoal.cfg:1:21: expected ';' after prefix path, found '}'"),
    ("prefix p { } prefix p { }", "shoal.cfg:1:21: prefix 'p' defined twice (first at shoal.cfg:1:8)"),
    ("nossl a;", "shoal.cfg:1:8: expected a second host pattern after 'nossl', found ';'"),
    ("nossl a b c;", "shoal.cfg:1:11: expected ';' after the two host patterns of 'nossl', found 'c'"),
    ("ignore uid size;", "shoal.cfg:1:12: unknown 'ignore' word 'size' (use uid, gid or mod)"),
    (
        "lock-timeout soon;",
        "shoal.cfg:1:14: expected seconds after 'lock-timeout' (a whole number from 0 to 86400), found 'soon'",
    ),
    ("port 0;", "shoal.cfg:1:6: expected a port number after 'port' (a whole number from 1 to 65535), found '0'"),
    ("port 80; port 81;", "shoal.cfg:1:10: 'port' given twice at top level (first at shoal.cfg:1:1)"),
    ("database;", "shoal.cfg:1:9: expected a database path or URL after 'database', found ';'"),
    ("tempdir /a /b;", "shoal.cfg:1:12: expected ';' after tempdir path, found '/b'"),
    ("no-cygwin-lowercase now;", "shoal.cfg:1:21: expected ';' after 'no-cygwin-lowercase', found 'now'"),
    ("include /x;", "shoal.cfg:1:1: unknown statement 'include' (this statement belongs inside a group)"),
    ("{ }", "shoal.cfg:1:1: expected a statement such as 'group', found '{'"),
    ("group g ( }", "shoal.cfg:1:9: expected '{' after group name 'g', found '('"),
    ("metrics-listen 127.0.0.1:http;", "shoal.cfg:1:16: expected a port from 1 to 65535 in '127.0.0.1:http'"),
    ("config;", "shoal.cfg:1:7: expected a file name after 'config', found ';'"),
    (
        "group g { host a@b;\n  include /srv;\n  exclude\n}",
        "shoal.cfg:4:1: expected a pattern after 'exclude', found '}'",
    ),
]


def test_table_is_large_enough() -> None:
    assert len(BROKEN) >= 40


@pytest.mark.parametrize(("text", "message"), BROKEN, ids=[str(i) for i in range(len(BROKEN))])
def test_broken_config_message(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_text(text, "shoal.cfg")
    assert str(info.value) == message


@pytest.mark.parametrize("address", ["web_1.example.", "fe80::1%eth0", "10.0.0.1", "[::1]:30866", "db-2:30866"])
def test_addresses_that_are_accepted(address: str) -> None:
    spec = parse_text(f"group g {{ host a@{address}; }}", "shoal.cfg")
    assert spec.groups[0].hosts[0].address == address.split("]", maxsplit=1)[0].strip("[").removesuffix(":30866")
