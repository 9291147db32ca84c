"""One daemon per state directory: a second one is refused while the first lives, and does not take
over (or, leaving, remove) the first one's control socket; a daemon killed outright leaves nothing
that stops the next start."""

from __future__ import annotations

import json
from pathlib import Path

from shoal.testing.cluster import Cluster, free_port


def test_a_second_daemon_is_refused_and_the_first_keeps_its_socket(tmp_path: Path) -> None:
    with Cluster(tmp_path / "c", names=("alpha", "beta")) as c:
        c.start("alpha")
        first = c.nodes["alpha"].proc
        assert first is not None
        # another port, so nothing but the state directory is shared
        second = c.run("alpha", "daemon", "--no-watch", "--listen", f"127.0.0.1:{free_port()}", timeout=30)
        assert second.returncode != 0
        assert f"another shoal daemon (pid {first.pid}) runs for the state directory" in second.stderr
        assert c.controllable("alpha"), "the refused daemon removed the first one's control socket"
        status = c.run("alpha", "status", "--json", timeout=30)
        assert status.returncode == 0, status.stderr
        assert json.loads(status.stdout)["daemon"]["pid"] == first.pid

        c.kill("alpha")  # no clean-up at all: the lock goes with the process, the socket file stays
        assert (c.nodes["alpha"].state / "control.sock").exists()
        c.start("alpha")
        again = c.nodes["alpha"].proc
        assert again is not None and again.pid != first.pid
        assert json.loads(c.run("alpha", "status", "--json", timeout=30).stdout)["daemon"]["pid"] == again.pid
