"""The drop-in for the hardened unit: paths as systemd words, the config's needs, the text."""

from __future__ import annotations

import dataclasses

import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, NodeConfig, resolve
from shoal.config.systemd_dropin import Dropin, dropin_for, render, unit_path
from shoal.errors import ConfigError


def _probe(path: str) -> KeyFacts:
    return KeyFacts(path, None, 0o600, "A" * 64)


def _view(groups: str, top: str = "") -> NodeConfig:
    return resolve(parse_text(f"{top}\n{groups}", "/etc/shoal/shoal.cfg"), "a", _probe)


def _no_files(path: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("path", "word"),
    [
        ("/srv/www", "-/srv/www"),
        ("/", "-/"),
        ("/srv/my site", '"-/srv/my site"'),
        ("/srv/it's", '"-/srv/it\'s"'),
        ("/srv/back\\slash", '"-/srv/back\\\\slash"'),
        ('/srv/q"uote', '"-/srv/q\\"uote"'),
        ("/srv/100%", "-/srv/100%%"),  # not a specifier
        ("/srv/50% off", '"-/srv/50%% off"'),
        ("/srv/café", "-/srv/café"),
    ],
)
def test_unit_path(path: str, word: str) -> None:
    assert unit_path(path) == word


@pytest.mark.parametrize("path", ["srv/www", "/srv/new\nline", "/srv/tab\there", "/srv/\x7f"])
def test_unit_path_refuses_what_a_unit_cannot_hold(path: str) -> None:
    with pytest.raises(ConfigError):
        unit_path(path)


@pytest.mark.parametrize(
    ("dropin", "lines"),
    [
        (Dropin(()), ["[Service]"]),
        (Dropin(("/srv/www",)), ["[Service]", "ReadWritePaths=-/srv/www"]),
        (
            Dropin(("/home/al/my site", "/srv/www"), protect_home="no"),
            ["[Service]", 'ReadWritePaths="-/home/al/my site" -/srv/www', "ProtectHome=no"],
        ),
        (Dropin(("/srv",), protect_home="read-only"), ["[Service]", "ReadWritePaths=-/srv", "ProtectHome=read-only"]),
        (Dropin(("/tmp/t",), private_tmp=False), ["[Service]", "ReadWritePaths=-/tmp/t", "PrivateTmp=no"]),
        (
            Dropin(("/srv",), devices=True),
            ["[Service]", "ReadWritePaths=-/srv", "PrivateDevices=no", "CapabilityBoundingSet=CAP_MKNOD"],
        ),
        (Dropin(("/srv",), setuid=True), ["[Service]", "ReadWritePaths=-/srv", "RestrictSUIDSGID=no"]),
        (
            Dropin(("/srv",), low_ports=(873,)),
            ["[Service]", "ReadWritePaths=-/srv", "CapabilityBoundingSet=CAP_NET_BIND_SERVICE"],
        ),
    ],
)
def test_render(dropin: Dropin, lines: list[str]) -> None:
    assert render(dropin) == "\n".join(lines) + "\n"


def test_render_header_is_comments() -> None:
    assert render(Dropin(("/srv",)), ["made by a test", ""]) == "# made by a test\n#\n[Service]\nReadWritePaths=-/srv\n"


def test_roots_backups_and_logfile_dirs_minimal() -> None:
    cfg = _view(
        """
        group g { host a b; key k; include /srv/www; include /srv/www/sub; include /srv/*/logs;
                  backup-directory /var/backups/shoal; backup-generations 3;
                  action { pattern /srv/www/*; exec "true"; logfile /var/log/shoal/act.log; } }
        group h { host a c; key /etc/shoal/h.key; include /etc/nginx; action { exec "true"; } }
        """
    )
    d = dropin_for(cfg, _no_files)
    assert d.write_paths == ("/etc/nginx", "/srv", "/var/backups/shoal", "/var/log/shoal")
    assert render(d).splitlines()[1:] == ["ReadWritePaths=-/etc/nginx -/srv -/var/backups/shoal -/var/log/shoal"]


def test_a_root_that_is_a_file_opens_its_directory() -> None:
    cfg = _view("group g { host a b; key k; include /etc/hosts; include /etc/ssh/sshd_config.d; }")
    assert dropin_for(cfg, lambda p: p == "/etc/hosts").write_paths == ("/etc",)


@pytest.mark.parametrize(
    ("groups", "protect_home", "private_tmp"),
    [
        ("group g { host a b; key k; include /srv; }", None, True),
        ('group g { host a b; key k; include "/home/al/my site"; }', "no", True),
        ("group g { host a b; key k; include /root/dots; }", "no", True),
        ("group g { host a b; key k; include /run/user/1000/x; }", "no", True),
        ("group g { host a b; key k; include /homes/x; }", None, True),  # not a home directory
        ("group g { host a b; key /home/al/g.key; include /srv; }", "read-only", True),  # read only
        ("group g { host a b; key k; include /srv; backup-directory /home/bak; }", "no", True),
        ("group g { host a b; key k; include /tmp/t; }", None, False),
        ("group g { host a b; key k; include /var/tmp/t; }", None, False),
        ("group g { host a b; key /tmp/g.key; include /srv; }", None, False),
    ],
)
def test_home_and_tmp(groups: str, protect_home: str | None, private_tmp: bool) -> None:
    d = dropin_for(_view(groups), _no_files)
    assert (d.protect_home, d.private_tmp) == (protect_home, private_tmp)


@pytest.mark.parametrize(
    ("top", "low_ports"),
    [
        ("", ()),  # 30866
        ("port 873;", (873,)),
        ("port 873; metrics-listen 127.0.0.1:443;", (443, 873)),
        ("metrics-listen [::1]:80;", (80,)),
        ("metrics-listen 127.0.0.1:9100;", ()),
    ],
)
def test_low_ports(top: str, low_ports: tuple[int, ...]) -> None:
    assert dropin_for(_view("group g { host a b; key k; include /srv; }", top), _no_files).low_ports == low_ports


def test_low_port_from_this_nodes_host_entry() -> None:
    cfg = _view("group g { host a@10.0.0.1:443 b; key k; include /srv; }")
    assert dropin_for(cfg, _no_files).low_ports == (443,)


@dataclasses.dataclass(frozen=True)
class _GroupWith:
    """A group view with the per-group options ``allow devices;`` / ``allow setuid;``."""

    inner: object
    allow_devices: bool = False
    allow_setuid: bool = False

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)


@pytest.mark.parametrize(
    ("devices", "setuid"),
    [(False, False), (True, False), (False, True), (True, True)],
)
def test_devices_and_setuid_from_any_group(devices: bool, setuid: bool) -> None:
    cfg = _view("group g { host a b; key k; include /srv; } group h { host a b; key k; include /opt; }")
    g, h = cfg.groups
    groups = (_GroupWith(g), _GroupWith(h, allow_devices=devices, allow_setuid=setuid))
    d = dropin_for(dataclasses.replace(cfg, groups=groups), _no_files)  # type: ignore[arg-type]
    assert (d.devices, d.setuid) == (devices, setuid)
    assert ("PrivateDevices=no" in render(d)) is devices
    assert ("RestrictSUIDSGID=no" in render(d)) is setuid
