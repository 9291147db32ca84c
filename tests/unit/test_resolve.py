"""Applying a config to one node: membership, keys, prefixes, peers, defaults."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, NodeConfig, Peer, resolve
from shoal.errors import ConfigError
from shoal.fs.config_source import load_node_config, probe_key
from shoal.model.patterns import Rule

GOOD_KEY = "A" * 64


def good_probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, GOOD_KEY)


def node_view(text: str, node: str, probe=good_probe) -> NodeConfig:  # type: ignore[no-untyped-def]
    return resolve(parse_text(text, "/etc/csync2.cfg"), node, probe)


def errors_of(text: str, node: str, probe=good_probe) -> str:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        node_view(text, node, probe)
    return str(info.value)


def test_node_in_no_group_uses_csync2_wording() -> None:
    msg = errors_of("group g { host a b; key k; include /x; }", "zed")
    assert msg.startswith("This host (zed) is not a member of any configured group.")
    assert "Hosts in the config: a, b." in msg


def test_node_name_is_case_insensitive() -> None:
    assert node_view("group g { host Alpha beta; key k; include /x; }", "ALPHA").node == "alpha"


def test_peers_ports_left_right_and_slaves() -> None:
    cfg = node_view("port 31000; group g { host a@10.0.0.1 b (c@10.0.0.3:32000) d; key k; include /x; }", "b")
    (g,) = cfg.groups
    assert g.peers == (
        Peer("a", "10.0.0.1", 31000, slave=False, left=True),
        Peer("c", "10.0.0.3", 32000, slave=True, left=False),
        Peer("d", "d", 31000, slave=False, left=False),
    )
    assert not g.slave


def test_slave_node_and_defaults() -> None:
    (g,) = node_view("group g { host a (b); key k; include /x; }", "b").groups
    assert g.slave
    assert (g.auto, g.backup_generations, g.watch) == ("none", 3, True)
    assert g.peers[0].port == 30866


def test_groups_without_this_node_are_ignored() -> None:
    cfg = node_view("group g1 { host a b; key k; include /x; } group g2 { host c d; key missing; include /y; }", "a")
    assert [g.name for g in cfg.groups] == ["g1"]


def test_missing_key_file() -> None:
    def probe(path: str) -> KeyFacts:
        return KeyFacts(path, "No such file or directory")

    assert (
        errors_of("group g {\n host a;\n key /etc/k;\n include /x; }", "a", probe)
        == "/etc/csync2.cfg:3:6: cannot read key file /etc/k: No such file or directory"
    )


def test_short_key_and_world_readable_key_are_both_reported() -> None:
    def probe(path: str) -> KeyFacts:
        return KeyFacts(path, None, 0o644, "tooshort")

    msg = errors_of("group g { host a; key k; include /x; }", "a", probe)
    assert msg.splitlines() == [
        "/etc/csync2.cfg:1:23: key file /etc/k is readable by group or others (mode 0644); run: chmod 600 /etc/k",
        "/etc/csync2.cfg:1:23: key in file /etc/k is too short (8 characters, at least 32; "
        "make one with 'shoal keygen FILE')",
    ]


def test_key_with_bad_character() -> None:
    def probe(path: str) -> KeyFacts:
        return KeyFacts(path, None, 0o600, "A" * 40 + "!")

    assert "holds a character not allowed in keys: '!'" in errors_of(
        "group g { host a; key k; include /x; }", "a", probe
    )


def test_relative_key_is_relative_to_the_config_file() -> None:
    (g,) = node_view("group g { host a; key keys/k.key; include /x; }", "a").groups
    assert g.key_path == "/etc/keys/k.key"


def test_group_without_key_uses_default_key_or_fails() -> None:
    (g,) = node_view("key /etc/shoal/cluster.key; group g { host a; include /x; }", "a").groups
    assert g.key_path == "/etc/shoal/cluster.key"
    assert errors_of("group g { host a; include /x; }", "a") == (
        "/etc/csync2.cfg:1:7: group 'g' has no key (add 'key FILE;' to the group, or a default 'key FILE;' "
        "at top level)"
    )


def test_prefixes_expand_for_this_node_first_match_wins() -> None:
    text = """group g { host a b c; key k; include %home%/bob /srv; exclude %home%/bob/tmp; }
              prefix home { on a: /export/home; on [b-e]: /home; on *: /nope; }"""
    (ga,) = node_view(text, "a").groups
    (gc,) = node_view(text, "c").groups
    assert ga.rules[0] == Rule("include", "/export/home/bob")
    assert gc.rules == (Rule("include", "/home/bob"), Rule("include", "/srv"), Rule("exclude", "/home/bob/tmp"))
    assert gc.roots == ("/home/bob", "/srv")


def test_prefix_undefined_or_without_path_for_this_node() -> None:
    assert (
        errors_of("group g { host a b; key k; include %nope%/x; }", "a")
        == "/etc/csync2.cfg:1:36: prefix 'nope' is used but never defined"
    )
    text = "group g { host a b; key k; include %p%/x; } prefix p { on b: /data; }"
    assert errors_of(text, "a") == "/etc/csync2.cfg:1:36: prefix 'p' has no path for this host (a)"
    assert node_view(text, "b").groups[0].rules[0].pattern == "/data/x"


def test_duplicate_host_and_unknown_fingerprint_host() -> None:
    msg = errors_of("group g { host a b a; key k; include /x; fingerprint zz " + "0" * 64 + "; }", "a")
    assert msg.splitlines() == [
        "/etc/csync2.cfg:1:20: host 'a' listed twice in group 'g' (first at /etc/csync2.cfg:1:16)",
        "/etc/csync2.cfg:1:42: fingerprint for 'zz', which is not a host of group 'g'",
    ]


def test_nossl_matches_both_ends() -> None:
    cfg = node_view("nossl a-* *-sync; group g { host a-1 b-sync c; key k; include /x; }", "a-1")
    assert not cfg.uses_tls("b-sync")
    assert cfg.uses_tls("c")


def test_real_key_files(tmp_path: Path) -> None:
    key = tmp_path / "group.key"
    key.write_text(GOOD_KEY + "\n")
    key.chmod(0o600)
    cfg_file = tmp_path / "shoal.cfg"
    cfg_file.write_text("group g { host a; key group.key; include /srv; }\n")
    assert load_node_config(str(cfg_file), "a").groups[0].key_path == str(key)
    key.chmod(0o640)
    with pytest.raises(ConfigError, match="readable by group or others"):
        load_node_config(str(cfg_file), "a")
    os.unlink(key)
    assert probe_key(str(key)).error == "No such file or directory"
    os.symlink("/etc/passwd", key)
    assert probe_key(str(key)).error is not None  # key files are never read through a symlink
