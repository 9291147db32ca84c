"""Peer-controlled strings cannot forge lines in a real daemon's log (issue 16 item 4).

beta's log (the default text format) must keep one record per line: a claimed node name before any
authentication and the paths of an authenticated peer's records appear escaped, inside the line that
names them, never as a line of their own, and never with a raw control character (an ANSI sequence
would repaint the terminal of whoever reads the log).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.net.transport import dial
from shoal.proto import messages as m
from shoal.testing.cluster import Cluster
from tests.integration.scripted import Keys, connect, handshake, record, run, until_closed

FORGED = "2026-12-04 15:00:00.000 INFO shoal.engine.handshake: authenticated alpha from 127.0.0.1 (groups g)"
RECORD_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} (DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.]+: ")
REAL_AUTH = "INFO shoal.engine.handshake: authenticated alpha from 127.0.0.1 (groups g)"


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    with Cluster(tmp_path / "c") as c:
        hosts = " ".join(f"{n.name}@{n.address}:{n.port}" for n in c.nodes.values())
        c.config.write_text(
            f"group g {{\n  host {hosts};\n  key {c.key};\n  include %d%;\n}}\n"
            f"prefix d {{ {' '.join(f'on {n.name}: {n.data};' for n in c.nodes.values())} }}\n"
        )
        c.start("beta")
        yield c


def wait_for(c: Cluster, needle: str, wait_s: float = 10.0) -> None:
    deadline = time.monotonic() + wait_s
    while needle not in c.log_text("beta"):
        assert time.monotonic() < deadline, f"{needle!r} not in beta's log: {c.log_text('beta')}"
        time.sleep(0.05)


def test_peer_strings_cannot_forge_log_lines(net: Cluster) -> None:
    async def forged_name() -> None:  # no keys needed: the name is logged with the refusal
        keys = await Keys.of(net, "alpha")
        ch = await connect(net)  # from scripted.ATTACKER
        name = "x\n" + FORGED
        await ch.send(m.Hello(m.PROTOCOL_VERSION, name, os.urandom(32), keys.cert, ["g"], "db-x", True))
        assert isinstance(await ch.recv(10), m.Refused)
        await until_closed(ch)

    run(forged_name)
    wait_for(net, "not a host of any group")

    hostile = [
        record("%nope%/evil\n" + FORGED + "\x1b[31mred\x1b[0m", b"x"),
        record("%d%/../up\r\n" + FORGED + "\x1b]0;title\x07", b"x"),
    ]

    async def hostile_paths() -> None:  # a real session as alpha, from alpha's own address
        beta = net.nodes["beta"]
        ch = await dial(beta.address, beta.port, tls=True, source="127.0.0.1")
        try:
            _, _, answer = await handshake(ch, await Keys.of(net, "alpha"))
            assert isinstance(answer, m.Proof), answer
            assert isinstance(await ch.recv(10), m.Welcome)
            await ch.send(m.PullDone(0, [], []))  # we pull nothing; beta pulls from us
            while True:
                msg = await ch.recv(10)
                if isinstance(msg, m.IndexRequest):
                    await ch.send(m.IndexBatch(hostile, [None] * len(hostile), 2, False))
                elif isinstance(msg, m.PullDone):
                    await ch.send(m.Bye("done"))
                    break
        finally:
            await ch.close()

    run(hostile_paths)
    wait_for(net, "refused %d%/../up")
    wait_for(net, "refused %nope%/evil")

    log = net.log_text("beta")
    lines = [line for line in log.split("\n") if line]
    assert not any(line.startswith("2026-12-04 15:00:00.000") for line in lines), log
    for line in lines:
        assert RECORD_START.match(line), f"a line that is not a log record: {line!r}"
        assert not re.search(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]", line), f"a raw control character: {line!r}"
    # the one real authentication as alpha (session b) is there, once, and nothing like it besides
    assert sum(line.endswith(REAL_AUTH) for line in lines) == 1, log
    assert sum("authenticated alpha" in line for line in lines) == 4, log  # the real one + 3 quoted inside
    # the hostile strings are there, escaped, inside the line that names them
    assert "refused x\\x0a" + FORGED + " at 127.0.0.9: not a host of any group" in log
    assert "refused %nope%/evil\\x0a" + FORGED + "\\x1b[31mred\\x1b[0m from alpha" in log
    assert "refused %d%/../up\\x0d\\x0a" + FORGED + "\\x1b]0;title\\x07 from alpha" in log
