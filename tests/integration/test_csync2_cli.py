"""Scenario scripts for ``shoal-csync2``, written from csync2 2.0's documented behaviour: real daemons
(``-ii``) on 127.2.x.y addresses, one shared ``-D`` directory, ``prefix`` data directories, real TLS."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.testing.compat_cluster import BIN, CompatCluster

N1, N2 = "127.2.1.1", "127.2.1.2"


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[CompatCluster]:
    c = CompatCluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture
def live(pair: CompatCluster) -> CompatCluster:
    for name in pair.names:
        pair.start(name)
    return pair


def tree(root: Path) -> dict[str, tuple[str, bytes | str | None, int]]:
    """Everything below ``root``: kind, content or target, permission bits."""
    out: dict[str, tuple[str, bytes | str | None, int]] = {}
    for here, dirs, files in os.walk(root):
        for name in dirs + files:
            p = Path(here, name)
            rel = str(p.relative_to(root))
            st = p.lstat()
            if p.is_symlink():
                out[rel] = ("link", os.readlink(p), 0)
            elif p.is_dir():
                out[rel] = ("dir", None, st.st_mode & 0o7777)
            else:
                out[rel] = ("file", p.read_bytes(), st.st_mode & 0o7777)
    return out


def test_help_lock_and_keys(pair: CompatCluster) -> None:
    r = pair.run(None)
    assert r.rc == 1 and b"Usage: shoal-csync2" in r.out and b"-TT" in r.out
    as_csync2 = pair.base / "csync2"  # installed or symlinked under csync2's name, it is the same tool
    as_csync2.symlink_to(BIN)
    p = subprocess.run([str(as_csync2)], capture_output=True, env=pair.env, timeout=60, check=False)
    assert p.returncode == 1 and b"Usage: shoal-csync2" in p.stdout
    r = pair.run(N1, "-x", "-T")
    assert r.rc == 1 and "only one mode" in r.err
    key = pair.base / "new.key"
    assert pair.run(None, "-k", str(key)).rc == 0
    assert len(key.read_text().strip()) == 64 and key.stat().st_mode & 0o777 == 0o600
    again = pair.run(None, "-k", str(key))
    assert again.rc == 1 and "refusing to overwrite" in again.err
    (pair.etc / "csync2.lock").write_text("")
    r = pair.run(N1, "-x")
    assert r.rc == 1 and "csync2.lock exists" in r.err
    (pair.etc / "csync2.lock").unlink()
    r = pair.run("127.9.9.9", "-x")
    assert r.rc == 1 and "This host (127.9.9.9) is not a member of any configured group." in r.err


def test_bootstrap_then_push_both_ways(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "etc").mkdir()
    (d1 / "etc" / "app.conf").write_text("port 80\n")
    (d1 / "www").mkdir()
    for i in range(20):
        (d1 / "www" / f"page{i}.html").write_text(f"<p>{i}</p>\n")
    shutil.rmtree(d2)
    shutil.copytree(d1, d2, symlinks=True)  # already in sync, as 'csync2 -cIr /' expects

    for node in live.names:
        assert live.run(node, "-cIr", "/").rc == 0
        r = live.run(node, "-M")
        assert (r.rc, r.out) == (2, b""), r.err
    r = live.run(N1, "-T")
    assert (r.rc, r.out) == (2, b""), r.err

    # n1: a change, and a new file whose parent directories the peer lacks
    (d1 / "etc" / "app.conf").write_text("port 8080\n")
    (d1 / "new" / "deep" / "er").mkdir(parents=True)
    (d1 / "new" / "deep" / "er" / "f.txt").write_text("deep\n")
    r = live.run(N1, "-x")
    assert r.rc == 0, r.err
    assert (d2 / "etc" / "app.conf").read_text() == "port 8080\n"
    assert (d2 / "new" / "deep" / "er" / "f.txt").read_text() == "deep\n"
    assert live.run(N1, "-M").rc == 2

    # n2: an edit and deletions (a file and a whole directory), pushed the other way
    (d2 / "www" / "page3.html").write_text("changed on n2\n")
    (d2 / "www" / "page4.html").unlink()
    shutil.rmtree(d2 / "new")
    assert live.run(N1, "-x").rc == 0  # push-only: n1's update takes nothing from n2
    assert (d1 / "www" / "page3.html").read_text() == "<p>3</p>\n" and (d1 / "new").exists()
    r = live.run(N2, "-x")
    assert r.rc == 0, r.err
    assert (d1 / "www" / "page3.html").read_text() == "changed on n2\n"
    assert not (d1 / "www" / "page4.html").exists() and not (d1 / "new").exists()
    assert tree(d1) == tree(d2)
    for me, peer in ((N1, N2), (N2, N1)):
        r = live.run(me, "-T", me, peer)
        assert (r.rc, r.out) == (2, b""), (me, r.out, r.err)


def test_T_lines_exit_codes_and_TT_diff(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "same").write_text("same\n")
    (d2 / "same").write_text("same\n")
    os.utime(d2 / "same", ns=(os.stat(d1 / "same").st_atime_ns, os.stat(d1 / "same").st_mtime_ns))
    (d1 / "differs").write_text("one\ntwo\n")
    (d2 / "differs").write_text("one\nthree\n")
    (d1 / "only-here").write_text("x\n")
    (d2 / "only-there").write_text("y\n")
    os.utime(d2, ns=(os.stat(d1).st_atime_ns, os.stat(d1).st_mtime_ns))
    for node in live.names:
        assert live.run(node, "-cr", "/").rc == 0
    r = live.run(N1, "-T")
    assert r.rc == 0, r.err
    assert (
        r.out
        == (
            f"X\t{N1}\t{N2}\t%root%/differs\nL\t{N1}\t{N2}\t%root%/only-here\nR\t{N1}\t{N2}\t%root%/only-there\n"
        ).encode()
    )
    r = live.run(N1, "-T", N1, N2, str(d1 / "same"))
    assert (r.rc, r.out) == (2, b"")
    r = live.run(N1, "-T", str(d1 / "differs"))
    assert (r.rc, r.out) == (0, f"X\t{N1}\t{N2}\t%root%/differs\n".encode())
    r = live.run(N1, "-TT", N1, N2, str(d1 / "differs"))
    assert r.rc == 0
    assert r.text == (f"--- {N2}:%root%/differs\n+++ {N1}:%root%/differs\n@@ -1,2 +1,2 @@\n one\n-three\n+two\n")
    r = live.run(N1, "-T", "127.2.1.7", N2)
    assert r.rc == 1 and "this node is 127.2.1.1" in r.err


def test_conflict_exits_1_until_force_and_update(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "shared.conf").write_text("base\n")
    assert live.run(N1, "-x").rc == 0
    assert (d2 / "shared.conf").read_text() == "base\n"
    (d1 / "shared.conf").write_text("from n1\n")
    (d2 / "shared.conf").write_text("from n2\n")
    assert live.run(N2, "-cr", "/").rc == 0
    r = live.run(N1, "-x")
    assert r.rc == 1 and "%root%/shared.conf is also changed there" in r.err and "Finished with 1 errors." in r.err
    assert (d2 / "shared.conf").read_text() == "from n2\n"
    r = live.run(N1, "-M")
    assert (r.rc, r.out) == (0, f"chary\t{N1}\t{N2}\t%root%/shared.conf\n".encode())
    assert live.run(N1, "-u").rc == 1  # still refused: nothing settled it
    assert live.run(N1, "-f", str(d1 / "shared.conf")).rc == 0
    r = live.run(N1, "-M")
    assert r.out == f"force\t{N1}\t{N2}\t%root%/shared.conf\n".encode()
    r = live.run(N1, "-u")
    assert r.rc == 0, r.err
    assert (d2 / "shared.conf").read_text() == "from n1\n"
    assert live.run(N1, "-M").rc == 2
    kept = list((live.db / f"{N2}.d" / "conflict-store").rglob("shared.conf"))
    assert [p.read_text() for p in kept] == ["from n2\n"]  # the losing version is kept
    r = live.run(N2, "-x")  # n2 now holds n1's version: nothing to push, no conflict
    assert r.rc == 0, r.err


def test_identical_content_on_both_sides_is_no_conflict(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "f").write_text("same\n")
    (d2 / "f").write_text("same\n")
    assert live.run(N2, "-cr", "/").rc == 0
    r = live.run(N1, "-x")
    assert r.rc == 0, r.err


STRANGE = [
    "umlaut-äöü-ß.txt",
    'double"quote',
    "single'quote",
    "back\\slash",
    "trailing space ",
    "colon:pipe|dollar$percent%",
    "Case.txt",
    "case.txt",
    "tab\there",
    "é" * 127 + "x",  # a 255-byte name
]


def test_strange_and_long_names_replicate_and_list(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    for i, name in enumerate(STRANGE):
        (d1 / name).write_text(f"{i}\n")
    # a 4,095-byte path (PATH_MAX less its NUL): both data directories have names of equal length
    long_dir = d1
    while len(str(long_dir).encode()) + 1 + 250 < 4095 - 10:
        long_dir = long_dir / ("d" * 250)
    leaf = "f" * (4095 - len(str(long_dir).encode()) - 1)
    long_dir.mkdir(parents=True)
    (long_dir / leaf).write_text("long\n")
    assert len(str(long_dir / leaf).encode()) == 4095
    r = live.run(N1, "-x")
    assert r.rc == 0, r.err
    assert tree(d1) == tree(d2)
    assert (d2 / "case.txt").read_text() != (d2 / "Case.txt").read_text()

    r = live.run(N1, "-L")
    assert r.rc == 0
    lines = r.out.decode("utf-8", "surrogateescape").splitlines()
    names = [line.split("\t", 1)[1] for line in lines]
    for name in STRANGE:
        assert f"%root%/{name}" in names, name
    st = os.stat(d1 / "case.txt")
    assert f"v1:mtime={st.st_mtime_ns // 10**9}:mode={st.st_mode}:uid={st.st_uid}:gid={st.st_gid}:type=reg:size=2" in [
        line.split("\t", 1)[0] for line in lines if line.endswith("\t%root%/case.txt")
    ]


def test_hints_then_check(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "sub").mkdir()
    (d1 / "sub" / "a").write_text("a\n")
    r = live.run(N1, "-rh", str(d1 / "sub"))
    assert r.rc == 0
    r = live.run(N1, "-H")
    assert (r.rc, r.out) == (0, f"1\t{d1 / 'sub'}\n".encode())
    assert live.run(N1, "-M").rc == 2  # nothing checked yet
    r = live.run(N1, "-c", "-u")
    assert r.rc == 0, r.err
    assert live.run(N1, "-H").rc == 2
    assert (d2 / "sub" / "a").read_text() == "a\n"


def test_reseed_a_peer_with_TUIX(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "keep").write_text("n1's\n")
    (d1 / "missing-there").write_text("m\n")
    (d2 / "keep").write_text("stale copy\n")
    (d2 / "extra").write_text("only on n2\n")
    for node in live.names:
        assert live.run(node, "-cIr", "/").rc == 0
    r = live.run(N1, "-TUIX", N1, N2)
    assert r.rc == 0 and b"R\t" in r.out and b"X\t" in r.out
    r = live.run(N1, "-u")
    assert r.rc == 0, r.err
    assert (d2 / "keep").read_text() == "n1's\n"
    assert (d2 / "missing-there").read_text() == "m\n"
    assert not (d2 / "extra").exists()
    assert live.run(N1, "-T").rc == 2


def test_dry_run_compare_list_mark_and_remove_stale(live: CompatCluster) -> None:
    d1, d2 = live.data(N1), live.data(N2)
    (d1 / "a").write_text("a\n")
    (d1 / "b.swp").write_text("excluded\n")
    r = live.run(N1, "-xd")
    assert r.rc == 0 and f"would update {N2}: %root%/a".encode() in r.out
    assert not (d2 / "a").exists()
    r = live.run(N1, "-o", "-r", str(d1))
    assert r.out == b"%root%\n%root%/a\n"
    assert live.run(N1, "-u").rc == 0
    assert live.run(N1, "-M").rc == 2
    (d2 / "a").write_text("edited on n2 without a check\n")
    assert live.run(N1, "-m", str(d1 / "a")).rc == 0
    assert live.run(N1, "-M").out == f"chary\t{N1}\t{N2}\t%root%/a\n".encode()
    # n2 never checked its edit: re-verifying before it takes n1's re-marked version finds the edit, made
    # on top of the very content n1 re-sent, so the edit stands (nothing is overwritten) and goes back
    r = live.run(N1, "-u")
    assert r.rc == 0, r.err
    assert (d2 / "a").read_text() == "edited on n2 without a check\n"
    assert f"chary\t{N2}\t{N1}\t%root%/a\n".encode() in live.run(N2, "-M").out
    assert live.run(N2, "-u").rc == 0
    assert (d1 / "a").read_text() == "edited on n2 without a check\n"
    # -R: drop entries the config no longer manages
    live.group_extra = "    exclude a;"
    live.write_config()
    assert live.run(N1, "-R").rc == 0
    assert b"%root%/a" not in live.run(N1, "-L").out


def test_iii_serves_one_connection_and_inetd_mode(pair: CompatCluster) -> None:
    d1, d2 = pair.data(N1), pair.data(N2)
    proc = pair.start(N2, "-i")  # -ii plus -i = -iii
    (d1 / "one").write_text("1\n")
    assert pair.run(N1, "-x").rc == 0
    assert proc.wait(20) == 0
    assert (d2 / "one").read_text() == "1\n"

    # inetd: the connection arrives on stdin/stdout
    (d1 / "two").write_text("2\n")
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # the -iii run's port may be in TIME_WAIT
        listener.bind((N2, pair.port))
        listener.listen(1)
        client = subprocess.Popen(
            [str(BIN), "-N", N1, "-D", str(pair.db), "-p", str(pair.port), "-x"],
            env=pair.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        listener.settimeout(20)
        conn, _ = listener.accept()
        with conn:
            server = subprocess.run(
                [str(BIN), "-N", N2, "-D", str(pair.db), "-i"],
                env=pair.env,
                stdin=conn.fileno(),
                stdout=conn.fileno(),
                stderr=subprocess.DEVNULL,
                timeout=30,
                check=False,
            )
        _out, err = client.communicate(timeout=30)
    assert server.returncode == 0
    assert client.returncode == 0, err
    assert (d2 / "two").read_text() == "2\n"


def test_a_csync2_database_in_the_D_directory_is_refused(pair: CompatCluster) -> None:
    import sqlite3

    conn = sqlite3.connect(pair.db / f"{N1}.db3")
    conn.execute("CREATE TABLE file (filename, checktxt)")
    conn.commit()
    conn.close()
    r = pair.run(N1, "-cr", "/")
    assert r.rc == 1 and "not a shoal state database" in r.err


CSYNC2 = shutil.which("csync2") or ("/usr/sbin/csync2" if os.path.exists("/usr/sbin/csync2") else None)


@pytest.mark.skipif(CSYNC2 is None, reason="csync2 is not installed (apt-get install csync2)")
def test_L_and_M_listings_match_real_csync2_byte_for_byte(tmp_path: Path) -> None:
    c = CompatCluster(tmp_path, size=3)
    # csync2 reads the key relative to where it runs: give it an absolute path (shoal accepts both)
    cfg = (c.etc / "csync2.cfg").read_text().replace("key group.key;", f"key {c.etc / 'group.key'};")
    (c.etc / "csync2.cfg").write_text(cfg)
    d1 = c.data(N1)
    (d1 / "dir").mkdir()
    for name in ["a", "-dash", ":colon", "|pipe", "sp ace", "back\\slash", "ü", "Zed", "dir/x", "dir/y.swp"]:
        (d1 / name).write_text(name)
    os.mkfifo(d1 / "fifo")
    os.symlink("/etc/hostname", d1 / "link")
    os.chmod(d1 / "a", 0o600)
    assert c.run(N1, "-cr", "/").rc == 0
    theirs_db = tmp_path / "c2db"
    theirs_db.mkdir()

    def csync2(*args: str) -> subprocess.CompletedProcess[bytes]:
        assert CSYNC2 is not None
        return subprocess.run(
            [CSYNC2, "-N", N1, "-D", str(theirs_db), *args], capture_output=True, env=c.env, timeout=60, check=False
        )

    assert csync2("-cr", "/").returncode == 0
    for mode in ("-L", "-M"):
        ours, theirs = c.run(N1, mode), csync2(mode)
        assert ours.rc == theirs.returncode == 0
        if mode == "-L":
            # csync2 leaves a symlink's target out of its check text under a prefix (so it never sees
            # a re-targeted link there: compat.md section 5); shoal records it
            link = b"v1:mode=41471:uid=0:gid=0:type=lnk:target=/etc/hostname\t%root%/link\n"
            assert link in ours.out
            ours.out = ours.out.replace(link, link.replace(b"/etc/hostname", b""))
        assert ours.out == theirs.stdout, mode
    assert c.run(N1, "-M").out.count(b"\n") == 2 * 13  # every entry, for each of the two peers
    for args in (["-rh", str(d1 / "dir")], ["-h", str(d1 / ":colon"), str(d1 / "a")]):
        assert c.run(N1, *args).rc == 0 and csync2(*args).returncode == 0
    ours_h, theirs_h = c.run(N1, "-H"), csync2("-H")
    assert (ours_h.rc, ours_h.out) == (theirs_h.returncode, theirs_h.stdout) == (0, ours_h.out)
    assert ours_h.out.count(b"\n") == 3


def test_peers_groups_forced_new_entries_and_config_names(tmp_path: Path) -> None:
    c = CompatCluster(tmp_path, subnet=3, size=3)
    n1, n2, n3 = c.names
    # a second config, csync2_web.cfg (-C web): one group with all three, one with n1 and n3 only
    web = (c.etc / "csync2.cfg").read_text().replace("group g {", "group web {")
    web += f"group extra {{ host {n1} {n3}; key group.key; include %root%/extra; }}\n"
    web = web.replace("include %root%;", "include %root%; exclude %root%/extra;")
    (c.etc / "csync2_web.cfg").write_text(web)
    (c.etc / "csync2.cfg").unlink()  # only -C web can work now
    try:
        for name in (n2, n3):
            c.start(name, "-C", "web", "-v")
        d1 = c.data(n1)
        (d1 / "extra").mkdir()
        (d1 / "extra" / "e").write_text("e\n")
        (d1 / "f").write_text("f\n")
        assert c.run(n1, "-x").rc == 1  # no csync2.cfg
        r = c.run(n1, "-C", "web", "-x", "-P", n2)  # update only n2; n3 stays dirty
        assert r.rc == 0, r.err
        assert (c.data(n2) / "f").read_text() == "f\n" and not (c.data(n3) / "f").exists()
        assert not (c.data(n2) / "extra").exists()  # n2 is not in group extra
        rows = c.run(n1, "-C", "web", "-M").out.decode().splitlines()
        assert rows and all(line.split("\t")[2] == n3 for line in rows)
        r = c.run(n1, "-C", "web", "-u", "-G", "extra")  # only group extra's peers: n3
        assert r.rc == 0, r.err
        assert (c.data(n3) / "extra" / "e").read_text() == "e\n"
        assert sorted(p.name for p in c.db.glob("*.db3")) == [f"{n}_web.db3" for n in c.names]
        # -F: what this check finds is forced
        (d1 / "f").write_text("f2\n")
        assert c.run(n1, "-C", "web", "-cF", str(d1 / "f")).rc == 0
        forced = [line for line in c.run(n1, "-C", "web", "-M").out.decode().splitlines() if "%root%/f" in line]
        assert forced == [f"force\t{n1}\t{n2}\t%root%/f", f"force\t{n1}\t{n3}\t%root%/f"]
        assert c.run(n1, "-C", "web", "-u").rc == 0
        assert (c.data(n3) / "f").read_text() == "f2\n"
        # outgoing connections came from n1's own address (-N): the daemons saw it
        assert f"authenticated {n1} from {n1}" in c.log(n2)
    finally:
        c.close()
