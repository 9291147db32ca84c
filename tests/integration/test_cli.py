"""The real ``shoal`` command on temporary trees: keygen, init/id, config check, check, ls, demo."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from tests.integration.conftest import Shoal


def write_cluster(tmp: Path, body_extra: str = "") -> tuple[Path, Path]:
    data = tmp / "data"
    data.mkdir()
    cfg = tmp / "shoal.cfg"
    cfg.write_text(f"""# test cluster
group web {{
    host alpha@127.0.0.1:31001 beta@127.0.0.1:31002 (gamma@127.0.0.1:31003);
    key web.key;
    include {data};
    exclude *.swp {data}/cache;
    auto younger;
    {body_extra}
}}
""")
    return cfg, data


def test_keygen(shoal: Shoal, tmp_path: Path) -> None:
    key = tmp_path / "k.key"
    assert shoal("keygen", str(key)).rc == 0
    content = key.read_text()
    assert re.fullmatch(r"[A-Za-z0-9._]{64}\n", content)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    again = shoal("keygen", str(key))
    assert again.rc == 1 and "refusing to overwrite" in again.err
    assert key.read_text() == content


def test_init_and_id(shoal: Shoal, tmp_path: Path) -> None:
    r = shoal("-N", "alpha", "init")
    assert r.rc == 0 and "node        alpha" in r.out
    state = tmp_path / "state"
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    assert stat.S_IMODE((state / "node.key").stat().st_mode) == 0o600
    cert = x509.load_pem_x509_certificate((state / "node.crt").read_bytes())
    fp = hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()
    pretty = ":".join(fp[i : i + 2] for i in range(0, 64, 2))
    assert f"fingerprint {pretty}" in r.out
    ident = shoal("id")
    assert ident.rc == 0 and ident.out == r.out
    again = shoal("-N", "alpha", "init")  # idempotent: keeps the identity
    assert again.rc == 0 and pretty in again.out and "already initialized" in again.out


def test_id_without_init(shoal: Shoal) -> None:
    r = shoal("id")
    assert r.rc == 1 and "run 'shoal init'" in r.err


def test_config_check_ok(shoal: Shoal, tmp_path: Path) -> None:
    cfg, data = write_cluster(tmp_path)
    assert shoal("keygen", str(tmp_path / "web.key")).rc == 0
    r = shoal("-c", str(cfg), "-N", "beta", "config", "check")
    assert r.rc == 0, r.err
    assert "group web: master, auto younger" in r.out
    assert f"roots     {data}" in r.out
    assert re.search(r"peers\s+alpha\s+127\.0\.0\.1:31001\s+tls, left", r.out)
    assert re.search(r"gamma\s+127\.0\.0\.1:31003\s+tls, slave, right", r.out)
    assert "ok: 1 group(s), 2 peer(s)" in r.out
    slave = shoal("-c", str(cfg), "-N", "gamma", "config", "check")
    assert "group web: slave (receive-only)" in slave.out


def test_config_check_errors(shoal: Shoal, tmp_path: Path) -> None:
    cfg, _ = write_cluster(tmp_path, "backup-generations lots;")
    r = shoal("-c", str(cfg), "-N", "alpha", "config", "check")
    assert r.rc == 1
    assert r.err.strip() == (
        f"shoal: {cfg}:8:24: expected a count after 'backup-generations' (a whole number from 0 to 1000), found 'lots'"
    )
    cfg.write_text(cfg.read_text().replace("backup-generations lots;", ""))
    r = shoal("-c", str(cfg), "-N", "alpha", "config", "check")
    assert r.rc == 1 and f"cannot read key file {tmp_path}/web.key: No such file or directory" in r.err
    r = shoal("-c", str(cfg), "-N", "omega", "config", "check")
    assert r.rc == 1 and "This host (omega) is not a member of any configured group." in r.err
    r = shoal("-c", str(tmp_path / "nope.cfg"), "config", "check")
    assert r.rc == 1 and "cannot read config file" in r.err


def test_check_and_ls(shoal: Shoal, tmp_path: Path) -> None:
    cfg, data = write_cluster(tmp_path)
    shoal("keygen", str(tmp_path / "web.key"))
    (data / "index.html").write_text("<h1>hi</h1>")
    (data / "notes.swp").write_text("x")
    (data / "sub").mkdir()
    (data / "sub" / "ü name").write_text("unicode")
    os.symlink("index.html", data / "home")
    base = ("-c", str(cfg), "-N", "alpha")
    r = shoal(*base, "check")
    assert r.rc == 0, r.err
    assert "5 new" in r.out
    listing = json.loads(shoal(*base, "ls", "--json").out)
    by_path = {e["path"]: e for e in listing}
    assert set(by_path) == {str(data), f"{data}/index.html", f"{data}/sub", f"{data}/sub/ü name", f"{data}/home"}
    entry = by_path[f"{data}/index.html"]
    assert entry["kind"] == "file" and entry["size"] == 11 and entry["user"] == "root"
    assert entry["vector"]["alpha"] > 0
    assert by_path[f"{data}/home"]["target"] == "index.html"

    (data / "index.html").write_text("<h1>changed</h1>")
    (data / "sub" / "ü name").unlink()
    r = shoal(*base, "check")
    assert "1 changed" in r.out and "1 deleted" in r.out
    after = {e["path"]: e for e in json.loads(shoal(*base, "ls", "--json").out)}
    assert after[f"{data}/index.html"]["hash"] != entry["hash"]
    assert after[f"{data}/sub/ü name"]["deleted"] is True
    plain = shoal(*base, "ls").out
    assert f"{data}/home -> index.html" in plain and "ü name" not in plain
    assert "deleted" in shoal(*base, "ls", "--all").out
    noop = shoal(*base, "check")
    assert "0 new, 0 changed, 0 metadata, 0 type changes, 0 deleted" in noop.out


def test_newer_database_is_refused(shoal: Shoal, tmp_path: Path) -> None:
    cfg, _ = write_cluster(tmp_path)
    shoal("keygen", str(tmp_path / "web.key"))
    assert shoal("-c", str(cfg), "-N", "alpha", "check").rc == 0
    conn = sqlite3.connect(tmp_path / "state" / "state.db")
    conn.execute("PRAGMA user_version = 42")
    conn.close()
    r = shoal("-c", str(cfg), "-N", "alpha", "ls")
    assert r.rc == 1 and "schema version 42, newer than this shoal understands" in r.err


def test_demo(shoal: Shoal) -> None:
    r = shoal("demo", timeout=120)
    assert r.rc == 0, r.out + r.err
    root = re.search(r"cluster laid out in (\S+)", r.out)
    assert root is not None
    assert re.search(r"'shoal sync' on alpha took \d+ ms", r.out)
    for node in ("beta", "gamma"):
        for rel in ("site/index.html", "site/css/main.css", "site/home.html"):
            assert re.search(rf"{node}\s+{rel}\s+ok", r.out), (node, rel)
        assert re.search(rf"{node}\s+\*\.swp and cache/ stayed on alpha \(excluded\)", r.out)
    assert "conflict detected on %data%/site/index.html" in r.out
    assert "alpha  keeps <h1>alpha's edit</h1>" in r.out and "beta   keeps <h1>beta's edit</h1>" in r.out
    assert "DEMO FAILED" not in r.out
    assert not os.path.exists(root.group(1))  # cleaned up, daemons stopped
