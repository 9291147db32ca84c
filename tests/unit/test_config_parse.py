"""The parser on every config of the compat spec, csync2's quirks, includes and config-dir fragments."""

from __future__ import annotations

import pytest

from shoal.config.model import ActionSpec, HostSpec, PatternRule
from shoal.config.parser import parse_text
from shoal.errors import ConfigError

COMPAT_EXAMPLE = """\
nossl *-sync *-sync;
ignore uid gid;
group web {
    host a b (c) d@d-sync;
    key key1;
    include /srv/www %home%/bob;
    exclude *.swp .* /srv/www/cache;
    auto younger;
    backup-directory /var/backups/csync2;
    backup-generations 5;
    action {
        pattern /srv/www/conf/*.conf /srv/www/**/.htaccess;
        exec "/usr/sbin/apachectl graceful" "logger -t csync2 %%";
        logfile "/var/log/csync2_action.log";
        do-local;
    }
}
prefix home { on a: /export/home; on [b-e]: /home; on *: /home; }
"""

NEXUS = """\
lock-timeout 60;
group nexus {
    host nexus1;
    host (nexus2);
    key /etc/csync2/nexus.key;
    include /etc/nexus;
    include /srv/nexus/data;
    exclude *~ .*;
    exclude *.log;
    exclude *.pid;
    backup-directory /var/backups/csync2;
    backup-generations 2;
    auto first;
}
"""

CBSD_FRAGMENT = """\
host node1 node2;
include /usr/jails/jails-data/web1-data;
exclude /usr/jails/jails-data/web1-data/tmp/*;
exclude /usr/jails/jails-data/web1-data/var/log/*/*.log;
action {
    pattern /usr/jails/jails-data/web1-data/usr/local/etc/nginx/*;
    exec "/usr/local/bin/cbsd jexec jname=web1 service nginx reload";
    logfile "/var/log/csync2_web1.log";
    do-local;
}
auto younger;
"""


class DictReader:
    """A SourceReader over a dict of path -> text (directories are path prefixes)."""

    def __init__(self, files: dict[str, str]) -> None:
        self.files = files

    def read_text(self, path: str) -> str:
        try:
            return self.files[path]
        except KeyError:
            raise FileNotFoundError(2, "No such file or directory", path) from None

    def list_fragments(self, directory: str) -> list[str]:
        found = sorted(p for p in self.files if p.startswith(directory.rstrip("/") + "/") and p.endswith(".cfg"))
        if not found:
            raise FileNotFoundError(2, "No such file or directory", directory)
        return found


def test_compat_example() -> None:
    cfg = parse_text(COMPAT_EXAMPLE, "csync2.cfg")
    assert [(n.from_pattern, n.to_pattern) for n in cfg.nossl] == [("*-sync", "*-sync")]
    assert cfg.ignore == ("uid", "gid")
    (g,) = cfg.groups
    assert g.name == "web"
    assert g.hosts == (HostSpec("a"), HostSpec("b"), HostSpec("c", slave=True), HostSpec("d", "d-sync"))
    assert g.key == "key1"
    assert g.rules == (
        PatternRule("include", "/srv/www"),
        PatternRule("include", "%home%/bob"),
        PatternRule("exclude", "*.swp"),
        PatternRule("exclude", ".*"),
        PatternRule("exclude", "/srv/www/cache"),
    )
    assert g.auto == "younger"
    assert (g.backup_directory, g.backup_generations) == ("/var/backups/csync2", 5)
    assert g.actions == (
        ActionSpec(
            patterns=("/srv/www/conf/*.conf", "/srv/www/**/.htaccess"),
            execs=("/usr/sbin/apachectl graceful", "logger -t csync2 %%"),
            logfile="/var/log/csync2_action.log",
            do_local=True,
            do_local_only=False,
        ),
    )
    (p,) = cfg.prefixes
    assert [(e.host_pattern, e.path) for e in p.entries] == [("a", "/export/home"), ("[b-e]", "/home"), ("*", "/home")]


def test_nexus_configs() -> None:
    cfg = parse_text(NEXUS, "csync2.cfg")
    (g,) = cfg.groups
    assert cfg.lock_timeout_s == 60
    assert g.hosts == (HostSpec("nexus1"), HostSpec("nexus2", slave=True))
    assert [r.pattern for r in g.rules if r.kind == "exclude"] == ["*~", ".*", "*.log", "*.pid"]
    assert (g.auto, g.backup_generations) == ("first", 2)


def test_cbsd_fragments_in_config_dir() -> None:
    files = {
        "/etc/shoal/shoal.cfg": "key /etc/shoal/cluster.key;\nconfig-dir groups.d;\n",
        "/etc/shoal/groups.d/web1.cfg": CBSD_FRAGMENT,
        "/etc/shoal/groups.d/db1.cfg": CBSD_FRAGMENT.replace("web1", "db1"),
        "/etc/shoal/groups.d/extra.cfg": "group extra { host node1 node3; key k; include /srv/extra; }\n",
    }
    cfg = parse_text(files["/etc/shoal/shoal.cfg"], "/etc/shoal/shoal.cfg", DictReader(files))
    assert [g.name for g in cfg.groups] == ["db1", "extra", "web1"]  # sorted file order
    web1 = cfg.groups[2]
    assert web1.key is None and cfg.default_key == "/etc/shoal/cluster.key"
    assert web1.auto == "younger"
    assert web1.rules[1] == PatternRule("exclude", "/usr/jails/jails-data/web1-data/tmp/*")
    assert web1.actions[0].do_local
    assert cfg.files == (
        "/etc/shoal/shoal.cfg",
        "/etc/shoal/groups.d/db1.cfg",
        "/etc/shoal/groups.d/extra.cfg",
        "/etc/shoal/groups.d/web1.cfg",
    )


def test_fragment_errors_name_the_fragment_file() -> None:
    files = {
        "/etc/shoal/shoal.cfg": "config-dir /etc/shoal/groups.d;\n",
        "/etc/shoal/groups.d/web1.cfg": "host a b;\ninclude /x\nauto younger;\n",
    }
    with pytest.raises(ConfigError) as info:
        parse_text(files["/etc/shoal/shoal.cfg"], "/etc/shoal/shoal.cfg", DictReader(files))
    assert str(info.value) == (
        "/etc/shoal/groups.d/web1.cfg:3:1: expected ';' after the patterns of 'include', found keyword 'auto'"
    )


def test_quirks() -> None:
    text = """
    group g1 {            # comments run to the end of the line
        host Alpha@10.0.0.1:30900 beta@[fe80::1]:31000 (gamma delta@gw) epsilon@fe80::2;
        key "/etc/keys/with space.key";
        include "/srv/a b" /srv/c:d;
        compare /srv/compare-only;
        action { exec "cp %% /backup/" "echo '100%% done' # not a comment; really"; do-local-only; }
    }
    group { host alpha; key k; include /x; }
    group { host alpha; key k; include /y; }
    prefix p { on host[12]: /data/one; on host*: /data/other; }
    """
    cfg = parse_text(text, "q.cfg")
    g1 = cfg.groups[0]
    assert g1.hosts == (
        HostSpec("alpha", "10.0.0.1", 30900),
        HostSpec("beta", "fe80::1", 31000),
        HostSpec("gamma", slave=True),
        HostSpec("delta", "gw", slave=True),
        HostSpec("epsilon", "fe80::2"),
    )
    assert g1.key == "/etc/keys/with space.key"
    assert [r.pattern for r in g1.rules] == ["/srv/a b", "/srv/c:d", "/srv/compare-only"]
    assert g1.rules[2].kind == "compare"  # csync2's parser turns it into an include; shoal does not
    assert g1.actions[0].execs == ("cp %% /backup/", "echo '100%% done' # not a comment; really")
    assert g1.actions[0].do_local_only and g1.actions[0].do_local
    assert [g.name for g in cfg.groups] == ["g1", "group_1", "group_2"]
    assert [(e.host_pattern, e.path) for e in cfg.prefixes[0].entries] == [
        ("host[12]", "/data/one"),
        ("host*", "/data/other"),
    ]


def test_trailing_slashes_are_dropped_from_patterns() -> None:
    (g,) = parse_text("group g { host a; key k; include /srv/www/ /; exclude cache//; }").groups
    assert [r.pattern for r in g.rules] == ["/srv/www", "/", "cache"]


def test_extension_words_stay_patterns_inside_lists() -> None:
    (g,) = parse_text("group g { host a; key k; include /x; exclude port delay watch; }").groups
    assert [r.pattern for r in g.rules[1:]] == ["port", "delay", "watch"]


def test_extensions() -> None:
    cfg = parse_text(
        """
        port 31000; tls-dir /etc/shoal/tls; metrics-listen 127.0.0.1:9150;
        group g { host a b; key k; include /x; interval 10m; watch off; delay 200ms;
                  only-from 10.0.0.0/8 192.168.1.7; fingerprint B """
        + "AB" * 32
        + """; }
    """
    )
    (g,) = cfg.groups
    assert (cfg.port, cfg.tls_dir, cfg.metrics_listen) == (31000, "/etc/shoal/tls", "127.0.0.1:9150")
    assert (g.interval_ms, g.watch, g.delay_ms) == (600_000, False, 200)
    assert g.only_from == ("10.0.0.0/8", "192.168.1.7/32")
    assert [(f.host, f.sha256_hex) for f in g.fingerprints] == [("b", "ab" * 32)]


def test_database_first_wins_like_csync2() -> None:
    cfg = parse_text("database /a.db; database /b.db;")
    assert cfg.database == "/a.db"


def test_includes_resolve_relative_to_including_file() -> None:
    files = {
        "/etc/csync2.cfg": "config csync2.d/main.cfg;\n",
        "/etc/csync2.d/main.cfg": "group g { host a; key k; include /x; }\n",
    }
    cfg = parse_text(files["/etc/csync2.cfg"], "/etc/csync2.cfg", DictReader(files))
    assert [g.name for g in cfg.groups] == ["g"]


def test_missing_include_is_fatal_with_position() -> None:
    with pytest.raises(ConfigError) as info:
        parse_text("\n  config nothere.cfg;\n", "/etc/csync2.cfg", DictReader({}))
    assert str(info.value) == (
        "/etc/csync2.cfg:2:10: cannot read included config /etc/nothere.cfg: No such file or directory"
    )


def test_include_nesting_is_limited() -> None:
    files = {"/c/loop.cfg": "config loop.cfg;\n"}
    with pytest.raises(ConfigError) as info:
        parse_text(files["/c/loop.cfg"], "/c/loop.cfg", DictReader(files))
    assert "'config' includes nested deeper than 10" in str(info.value)


def test_generated_200_group_config() -> None:
    text = "\n".join(
        f"group g{i} {{ host n{i % 7} n{(i + 1) % 7} (n{(i + 2) % 7}); key k; include /srv/g{i}; "
        f'exclude *.tmp /srv/g{i}/cache; auto younger; action {{ exec "touch /tmp/{i}"; }} }}'
        for i in range(200)
    )
    cfg = parse_text(text)
    assert len(cfg.groups) == 200
    assert cfg.groups[199].rules[0].pattern == "/srv/g199"
