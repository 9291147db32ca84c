"""shoal's managed set equals csync2's on the same tree and config (needs Debian's csync2 installed)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import resolve
from shoal.fs.config_source import probe_key
from shoal.fs.keyfile import write_key_file
from shoal.fs.scan import Scanner
from shoal.state.db import StateDB

CSYNC2 = shutil.which("csync2") or ("/usr/sbin/csync2" if os.path.exists("/usr/sbin/csync2") else None)
pytestmark = pytest.mark.skipif(CSYNC2 is None, reason="csync2 is not installed (apt-get install csync2)")

ME = "127.2.1.1"

RULESETS = {
    "plain": "include {t};",
    "excludes": "include {t}; exclude *.swp .* *.log {t}/cache;",
    "nested-include": "include {t}; exclude {t}/keep; include {t}/keep/x;",
    "globs": "include {t}/*/conf {t}/srv/**/*.html; exclude {t}/srv/a*;",
    "basename-include": "include {t}; exclude *.conf *.html; include x.conf;",
    "brackets": "include {t}/host[12] {t}/w?w; exclude {t}/host1/[!a]*;",
    "last-wins": "include {t}/srv; exclude {t}/srv; include {t}/srv/b;",
    "prefix": "include %r%/srv %r%/etc; exclude %r%/srv/b/*.html;",
}


def build_tree(t: Path) -> None:
    dirs = [
        "a/conf",
        "b/conf/deep",
        "srv/a1",
        "srv/b/c",
        "cache",
        ".hid",
        "keep/x/y",
        "keep/z",
        "host1",
        "host2",
        "host3",
        "www",
        "wxw",
        "etc/nginx",
        "a/conf/.git",
    ]
    for d in dirs:
        (t / d).mkdir(parents=True, exist_ok=True)
    files = [
        "a/conf/x.conf",
        "a/conf/.git/HEAD",
        "b/conf/deep/y.conf",
        "srv/a1/index.html",
        "srv/b/c/page.html",
        "srv/b/index.html",
        "srv/b/x.swp",
        "cache/tmp.bin",
        ".hid/secret",
        "keep/x/y/f",
        "keep/z/g",
        "host1/alpha",
        "host1/beta",
        "host2/gamma",
        "host3/delta",
        "www/i.html",
        "wxw/j.html",
        "etc/nginx/nginx.conf",
        "top.log",
        "README",
        "x.conf",
    ]
    for f in files:
        (t / f).write_text(f)
    os.symlink("srv", t / "srv-link")  # a symlink to a directory is managed, never followed
    os.symlink("../a", t / "b" / "to-a")


def csync2_managed(tmp: Path, cfg_text: str, tree: Path) -> set[str]:
    etc, db = tmp / "cs-etc", tmp / "cs-db"
    etc.mkdir()
    db.mkdir()
    (etc / "csync2.cfg").write_text(cfg_text)
    env = {**os.environ, "CSYNC2_SYSTEM_DIR": str(etc)}
    base = [CSYNC2 or "csync2", "-N", ME, "-D", str(db)]
    subprocess.run([*base, "-cIr", "/"], env=env, check=True, timeout=60, capture_output=True, stdin=subprocess.DEVNULL)
    out = subprocess.run(
        [*base, "-L"], env=env, timeout=60, capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL
    )
    assert out.returncode in (0, 2), out.stderr
    names = {line.split("\t", 1)[1] for line in out.stdout.splitlines() if "\t" in line}
    return {str(tree) + n[3:] if n.startswith("%r%") else n for n in names}  # csync2 prints prefix-encoded


def shoal_managed(tmp: Path, cfg_text: str) -> set[str]:
    cfg = resolve(parse_text(cfg_text, str(tmp / "cs-etc" / "csync2.cfg")), ME, probe_key)
    with StateDB.open(str(tmp / "shoal.db")) as db:
        res = Scanner(db, cfg).scan()
        assert res.problems == []
        prefixes = dict(cfg.prefixes)
        out = set()
        for r in db.all_records():
            path = r.path
            for name, real in prefixes.items():
                path = path.replace(f"%{name}%", real, 1) if path.startswith(f"%{name}%") else path
            out.add(path)
        return out


@pytest.mark.parametrize("name", sorted(RULESETS))
def test_same_managed_set_as_csync2(tmp_path: Path, name: str) -> None:
    tree = tmp_path / "tree"
    tree.mkdir()
    build_tree(tree)
    key = tmp_path / "group.key"
    write_key_file(str(key))
    rules = RULESETS[name].format(t=tree)
    cfg_text = (
        f"nossl * *;\ngroup g {{\n  host {ME} 127.2.1.2;\n  key {key};\n  {rules}\n}}\n"
        f"prefix r {{ on {ME}: {tree}; }}\n"
    )
    theirs = csync2_managed(tmp_path, cfg_text, tree)
    ours = shoal_managed(tmp_path, cfg_text)
    assert theirs, "csync2 managed nothing: the comparison would be empty"
    assert ours == theirs
