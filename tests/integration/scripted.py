"""Scripted peers for the tests that talk to a real daemon (beta) over the wire: connect from an address
of their own, authenticate with a node's real (or forged) keys, and send whatever the test scripts."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import AsyncIterator, Callable

import blake3
from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.engine.replica import Replica
from shoal.fs.config_source import load_node_config
from shoal.net.transport import Channel, dial
from shoal.proto import auth
from shoal.proto import messages as m
from shoal.testing.cluster import Cluster

ATTACKER = "127.0.0.9"  # a source address of its own, so the per-address cap never meets the real peers


class Keys:
    """What a node holds: its key, its certificate, the group key (any of them may be forged)."""

    def __init__(self, node: str, key: ed25519.Ed25519PrivateKey, cert: bytes, group_key: bytes) -> None:
        self.node, self.key, self.cert, self.group_key = node, key, cert, group_key

    @classmethod
    async def of(cls, c: Cluster, node: str) -> Keys:
        replica = await Replica.open(load_node_config(str(c.config), node), str(c.nodes[node].state))
        try:
            return cls(node, replica.key, replica.cert_der, replica.group_keys["g"])
        finally:
            await replica.close()


async def connect(c: Cluster, source: str = ATTACKER) -> Channel:
    """A connection to beta from ``source``: a name is only accepted from its host entry's address, so
    a script that plays a configured node (real or forged keys) connects from that node's address."""
    beta = c.nodes["beta"]
    return await dial(beta.address, beta.port, tls=True, source=source)


async def handshake(ch: Channel, keys: Keys, *, nonce: bytes | None = None) -> tuple[m.Hello, m.Proof, m.Message]:
    """The client side of the handshake with whatever ``keys`` hold; returns what was sent and the answer
    to the proof (Welcome's predecessor Proof, or Refused)."""
    hello = m.Hello(m.PROTOCOL_VERSION, keys.node, nonce or os.urandom(32), keys.cert, ["g"], "db-x", True)
    await ch.send(hello)
    theirs = await ch.recv(10)
    assert isinstance(theirs, m.Hello), theirs
    data = auth.transcript(hello.nonce, theirs.nonce, auth.fingerprint(keys.cert), auth.fingerprint(theirs.cert), ["g"])
    proof = m.Proof(auth.sign(keys.key, data, "client"), {"g": auth.group_mac(keys.group_key, data, "client", "g")})
    await ch.send(proof)
    return hello, proof, await ch.recv(10)


@contextlib.asynccontextmanager
async def session(c: Cluster, node: str) -> AsyncIterator[Channel]:
    """An authenticated session with beta as ``node`` (real keys), past the Welcome."""
    ch = await connect(c, c.nodes[node].address)
    try:
        _, _, answer = await handshake(ch, await Keys.of(c, node))
        assert isinstance(answer, m.Proof), answer
        assert isinstance(await ch.recv(10), m.Welcome)
        yield ch
    finally:
        await ch.close()


async def until_closed(ch: Channel, timeout_s: float = 10) -> None:
    """Read until beta drops the connection (it must, within the time)."""
    with contextlib.suppress(Exception):
        async with asyncio.timeout(timeout_s):
            while True:
                await ch.recv(timeout_s)
    assert ch.reader.at_eof() or ch.writer.is_closing(), "beta kept the connection open"


def run(coro: Callable[[], object]) -> None:
    asyncio.run(asyncio.wait_for(coro(), 60))  # type: ignore[arg-type]


def record(path: str, data: bytes, node: str = "alpha", size: int | None = None) -> m.WireRecord:
    return m.WireRecord(
        path, 0, len(data) if size is None else size, 0o644, 0, 0, "root", "root", 1_700_000_000_000_000_000,
        blake3.blake3(data).digest(), None, 0, [(node, 3_000_000_000)], None, False, 1,
    )  # fmt: skip
