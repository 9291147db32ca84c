"""``shoal config check`` warns (and still succeeds) where an exec string quotes ``%%``; it shows what each
group lets this node take (setuid bits, device nodes)."""

from __future__ import annotations

from pathlib import Path

from tests.integration.conftest import Shoal
from tests.integration.test_cli import write_cluster


def test_config_check_warns_of_a_quoted_placeholder(shoal: Shoal, tmp_path: Path) -> None:
    cfg, _ = write_cluster(tmp_path, "action {\n        exec \"logger -t shoal '%%'\";\n    }\n    allow setuid;")
    assert shoal("keygen", str(tmp_path / "web.key")).rc == 0
    r = shoal("-c", str(cfg), "-N", "beta", "config", "check")
    assert r.rc == 0, r.err
    assert r.err.strip() == (
        f"{cfg}:9:14: warning: in group 'web', exec \"logger -t shoal '%%'\": %% stands inside '...' quotes, "
        "but it is replaced by paths that are already shell-quoted, so those quotes undo theirs (a path with a "
        "space or a quote breaks the command or runs as shell text); write %% bare"
    )
    assert "ok: 1 group(s), 2 peer(s), 1 warning(s)" in r.out
    assert "receives  setuid/setgid bits applied (allow setuid), device nodes refused" in r.out


def test_config_check_without_warnings(shoal: Shoal, tmp_path: Path) -> None:
    cfg, _ = write_cluster(tmp_path, 'action { exec "logger -t shoal %%"; }')
    assert shoal("keygen", str(tmp_path / "web.key")).rc == 0
    r = shoal("-c", str(cfg), "-N", "beta", "config", "check")
    assert r.rc == 0 and r.err == "", r.err
    assert "ok: 1 group(s), 2 peer(s)\n" in r.out
    assert "receives  setuid/setgid bits stripped, device nodes refused" in r.out
