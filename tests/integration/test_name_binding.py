"""A name is bound to its host entry's address and, once trusted, to one key.

The cluster here runs each node on an address of its own (127.0.2.1-3), the way real servers are: the
daemons and `shoal sync` must dial from their own entry's address (and so pass `only-from`), and a
member holding the group key (gamma, a receive-only slave) cannot speak for a master nobody has pinned
yet: it cannot connect from that master's address.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from shoal.net.identity import create_identity, fingerprint_of, load_identity, load_private_key
from shoal.proto import messages as m
from shoal.testing.cluster import Cluster
from tests.integration.scripted import Keys, connect, run, until_closed

ADDRESSES = {"alpha": "127.0.2.1", "beta": "127.0.2.2", "gamma": "127.0.2.3"}


@pytest.fixture
def net(tmp_path: Path) -> Iterator[Cluster]:
    """alpha and beta masters, gamma a slave, each on its own address; only-from the /29 they share."""
    with Cluster(tmp_path / "c") as c:
        for name, node in c.nodes.items():
            node.address = ADDRESSES[name]
        hosts = " ".join(
            f"{n.name}@{n.address}:{n.port}" if n.name != "gamma" else f"({n.name}@{n.address}:{n.port})"
            for n in c.nodes.values()
        )
        c.config.write_text(
            f"group g {{\n  host {hosts};\n  key {c.key};\n  include %d%;\n  only-from 127.0.2.0/29;\n}}\n"
            f"prefix d {{ {' '.join(f'on {n.name}: {n.data};' for n in c.nodes.values())} }}\n"
        )
        c.start("beta")
        yield c


def test_a_slave_cannot_claim_an_unpinned_master(net: Cluster, tmp_path: Path) -> None:
    """gamma (group key, receive-only) makes itself a certificate for 'alpha', which beta has never
    pinned, and pushes as alpha: refused for its address, nothing written, nothing pinned; the real
    alpha then syncs (it is not locked out) and is the one pinned."""
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir(mode=0o700)
    create_identity(str(forged_dir), "alpha")
    forged_ident = load_identity(str(forged_dir))

    async def attack() -> None:
        keys = await Keys.of(net, "gamma")
        keys.node, keys.cert, keys.key = "alpha", forged_ident.cert_der, load_private_key(forged_ident)
        ch = await connect(net, ADDRESSES["gamma"])
        hello = m.Hello(m.PROTOCOL_VERSION, "alpha", b"\1" * 32, keys.cert, ["g"], "db-x", True)
        await ch.send(hello)
        answer = await ch.recv(10)
        assert isinstance(answer, m.Refused), answer
        assert "127.0.2.1" in answer.reason
        await until_closed(ch)

    run(attack)
    assert "refused alpha at 127.0.2.3" in net.log_text("beta")
    assert not (net.nodes["beta"].data / "planted.txt").exists()
    pins = net.run("beta", "trust", "--list")
    assert pins.returncode == 0 and "alpha" not in pins.stdout, pins.stdout

    probe = net.nodes["alpha"].data / "from-the-real-alpha.txt"
    probe.write_text("hello")
    r = net.sync("alpha", "--peer", "beta")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (net.nodes["beta"].data / probe.name).read_text() == "hello"
    real_fp = fingerprint_of(load_identity(str(net.nodes["alpha"].state)).cert_der)
    pins = net.run("beta", "trust", "--list")
    assert real_fp in pins.stdout.replace(":", "") and "first contact from 127.0.2.1" in pins.stdout, pins.stdout


def test_a_new_key_for_a_pinned_name_is_refused_even_from_its_address(net: Cluster, tmp_path: Path) -> None:
    """With the real alpha pinned, a new key for alpha is refused even from alpha's own address (a
    reinstalled node needs 'shoal trust --reset' first): a pin never moves silently."""
    assert net.sync("alpha", "--peer", "beta").returncode == 0
    forged_dir = tmp_path / "forged"
    forged_dir.mkdir(mode=0o700)
    forged = create_identity(str(forged_dir), "alpha")

    async def attack() -> None:
        ch = await connect(net, ADDRESSES["alpha"])
        await ch.send(m.Hello(m.PROTOCOL_VERSION, "alpha", b"\2" * 32, forged.cert_der, ["g"], "db-x", True))
        answer = await ch.recv(10)
        assert isinstance(answer, m.Refused) and "fingerprint" in answer.reason, answer
        await until_closed(ch)

    run(attack)


def test_a_fingerprint_pinned_by_the_admin_refuses_any_other_key_on_first_contact(net: Cluster) -> None:
    alpha_fp = fingerprint_of(load_identity(str(net.nodes["alpha"].state)).cert_der)
    r = net.run("beta", "trust", "alpha", "ab" * 32)
    assert r.returncode == 0, r.stderr
    again = net.run("beta", "trust", "alpha", alpha_fp)
    assert again.returncode == 1 and "--reset" in again.stderr, again.stdout + again.stderr
    refused = net.sync("alpha", "--peer", "beta")
    assert refused.returncode == 1
    assert "does not match the pinned" in net.log_text("beta")
    assert net.run("beta", "trust", "--reset", "alpha").returncode == 0
    assert net.run("beta", "trust", "alpha", alpha_fp).returncode == 0
    pins = net.run("beta", "trust", "--list")
    assert "shoal trust" in pins.stdout, pins.stdout
    assert net.sync("alpha", "--peer", "beta").returncode == 0


def test_live_daemons_dial_from_their_own_address(net: Cluster) -> None:
    """Every connection passes only-from 127.0.2.0/29: the daemons send from their entry's address."""
    net.stop("beta")
    for name in ("alpha", "beta"):
        net.start(name, watch=True)
    (net.nodes["alpha"].data / "live.txt").write_text("one")
    (net.nodes["beta"].data / "live-back.txt").write_text("two")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not (
        (net.nodes["beta"].data / "live.txt").exists() and (net.nodes["alpha"].data / "live-back.txt").exists()
    ):
        time.sleep(0.05)
    assert (net.nodes["beta"].data / "live.txt").read_text() == "one"
    assert (net.nodes["alpha"].data / "live-back.txt").read_text() == "two"
    for name in ("alpha", "beta"):
        assert "only-from" not in net.log_text(name), net.log_text(name)
