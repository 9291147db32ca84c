"""The per-group ``allow setuid|devices;`` extension and the warnings of ``shoal config check``
(config/lint.py): an exec string whose ``%%`` stands inside single quotes."""

from __future__ import annotations

import pytest

from shoal.config.lint import placeholder_in_quotes, warnings
from shoal.config.model import SourcePos
from shoal.config.parser import parse_text
from shoal.config.printer import render
from shoal.errors import ConfigError


@pytest.mark.parametrize(
    ("body", "setuid", "devices"),
    [
        ("", False, False),
        ("allow setuid;", True, False),
        ("allow devices;", False, True),
        ("allow setuid devices;", True, True),
        ("allow devices setuid;", True, True),
        ("allow setuid; allow devices;", True, True),
        ("allow setuid setuid;", True, False),
        ('allow "devices";', False, True),
    ],
)
def test_allow_words(body: str, setuid: bool, devices: bool) -> None:
    cfg = parse_text(f"group g {{ host a; key k; include /x; {body} }}", "shoal.cfg")
    g = cfg.groups[0]
    assert (g.allow_setuid, g.allow_devices) == (setuid, devices)
    assert parse_text(render(cfg), "again.cfg") == cfg  # the printer keeps it


def test_allow_is_per_group() -> None:
    cfg = parse_text("group a { host x; allow setuid; } group b { host x; allow devices; }", "shoal.cfg")
    assert [(g.allow_setuid, g.allow_devices) for g in cfg.groups] == [(True, False), (False, True)]


def test_allow_stays_a_pattern_inside_lists() -> None:
    cfg = parse_text("group g { host a; include allow /x; }", "shoal.cfg")
    assert [r.pattern for r in cfg.groups[0].rules] == ["allow", "/x"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("group g { allow; }", "shoal.cfg:1:16: expected 'setuid' or 'devices' after 'allow', found ';'"),
        ("group g { allow suid; }", "shoal.cfg:1:17: unknown 'allow' word 'suid' (use setuid or devices)"),
        (
            "group g { allow setuid devices uid; }",
            "shoal.cfg:1:32: unknown 'allow' word 'uid' (use setuid or devices)",
        ),
        ("group g { allow setuid }", "shoal.cfg:1:24: expected ';' after 'allow' words, found '}'"),
        (
            "group g { allow setuid include /x; }",
            "shoal.cfg:1:24: expected ';' after 'allow' words, found keyword 'include'",
        ),
        (
            "allow setuid;",
            "shoal.cfg:1:1: unknown statement 'allow' (this statement belongs inside a group)",
        ),
        (
            "group g { alow setuid; }",
            "shoal.cfg:1:11: expected a group statement such as 'host' or 'include' in group 'g', found 'alow' "
            "(did you mean 'allow'?)",
        ),
    ],
)
def test_allow_errors(text: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_text(text, "shoal.cfg")
    assert str(err.value) == message


@pytest.mark.parametrize(
    ("command", "quoted"),
    [
        ("logger -t csync2 %%", False),
        ("logger '%%'", True),
        ("logger 'changed: %%'", True),
        ("logger 'changed:' %%", False),
        ("sh -c 'reload %%' x", True),
        ("echo \\'%%", False),  # an escaped quote opens nothing
        ("echo \\\\'%%'", True),  # an escaped backslash, then a real quote
        ("echo '%' %%", False),
        ("echo 'no placeholder'", False),
        ("echo 'unterminated %%", True),
    ],
)
def test_placeholder_in_quotes(command: str, quoted: bool) -> None:
    assert placeholder_in_quotes(command) is quoted


def test_warnings_name_the_exec_string() -> None:
    text = """group web {
    host a;
    action {
        pattern /srv/*.conf;
        exec "/usr/sbin/apachectl graceful" "logger '%%'";
    }
    action { exec "ok %%"; }
    action { exec 'x'; }
}
group other { host a; action { exec "touch '/run/%%.stamp'"; } }
"""
    cfg = parse_text(text, "/etc/shoal.cfg")
    assert cfg.groups[0].actions[0].exec_pos[1] == SourcePos("/etc/shoal.cfg", 5, 45)
    found = warnings(cfg.groups)
    assert [w.split(": warning: ")[0] for w in found] == ["/etc/shoal.cfg:5:45", "/etc/shoal.cfg:10:37"]
    assert "in group 'web', exec \"logger '%%'\": %% stands inside '...' quotes" in found[0]
    assert "write %% bare" in found[0]


def test_no_warnings_for_a_plain_config() -> None:
    cfg = parse_text('group g { host a; action { exec "logger -t csync2 %%"; } }', "shoal.cfg")
    assert warnings(cfg.groups) == []
