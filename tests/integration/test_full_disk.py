"""A receiver whose disk fills up: nothing is corrupted or left half-written, status and the log say
what is wrong, and the file arrives by itself once there is space again. Root only (it mounts a
size-limited tmpfs over the receiver's data directory); skipped with the reason otherwise."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.testing.cluster import Cluster
from shoal.testing.waiting import eventually

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to mount a size-limited tmpfs")


@pytest.fixture
def small(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "c", names=("alpha", "beta"))
    data = c.nodes["beta"].data
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m,mode=0755", "shoal-test-full", str(data)], check=True)
    try:
        yield c
    finally:
        c.close()
        subprocess.run(["umount", "-l", str(data)], check=False)


def test_full_disk_on_the_receiver(small: Cluster) -> None:
    c = small
    alpha, beta = c.nodes["alpha"].data, c.nodes["beta"].data
    (alpha / "keep.txt").write_text("precious\n")
    (alpha / "dir").mkdir()
    (alpha / "dir" / "small").write_bytes(os.urandom(100_000))
    c.start("alpha", watch=True)
    c.start("beta", watch=True)
    eventually(lambda: (beta / "dir" / "small").exists() and (beta / "keep.txt").exists(), 30, "the first files")
    small_bytes = (beta / "dir" / "small").read_bytes()

    big = os.urandom(6 << 20)  # more than beta's 4 MiB
    (alpha / "big.bin").write_bytes(big)
    (alpha / "keep.txt").write_text("precious, version 2\n")  # also a replacement of an existing file
    eventually(lambda: "No space left on device" in c.log_text("beta"), 30, "the full disk in beta's log")

    # nothing corrupted, nothing half-written: the old files are whole, the big one is absent, no temp
    # file stays behind (an aborted transfer removes its own)
    assert (beta / "dir" / "small").read_bytes() == small_bytes
    assert (beta / "keep.txt").read_text() in ("precious\n", "precious, version 2\n")
    assert not (beta / "big.bin").exists()
    eventually(lambda: c.temp_files("beta") == [], 10, "the aborted temp file removed")

    # status on beta says what could not be applied, and exits 1
    st = c.run("beta", "status", "--json")
    assert st.returncode == 1, st.stdout + st.stderr
    problems = json.loads(st.stdout)["daemon"]["peers"]["alpha"]["apply_problems"]
    assert any("big.bin" in p and "No space left on device" in p for p in problems), problems
    text = c.run("beta", "status").stdout
    assert "not applied (retried)" in text and "big.bin" in text, text

    # space returns: the file arrives without anyone doing anything, and status is clean again
    subprocess.run(["mount", "-o", "remount,size=32m", str(beta)], check=True)
    took = eventually(lambda: (beta / "big.bin").read_bytes() == big, 60, "big.bin after space returned")
    assert (beta / "keep.txt").read_text() == "precious, version 2\n"
    # (the directory's recorded mtime is put back when the batch ends, a moment after the rename)
    eventually(lambda: c.tree("beta") == c.tree("alpha"), 10, "equal trees, directory mtimes included")
    eventually(lambda: c.run("beta", "status").returncode == 0, 20, "a clean status")
    print(f"arrived {took:.1f} s after space returned")
