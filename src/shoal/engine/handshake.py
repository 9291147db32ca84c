"""Both sides of the handshake (design.md section 3) on top of proto/ and net/.

Owns: deciding who a peer is and which groups it may sync: the binding of a name to its configured
address (a peer claiming a host's name must connect from an address that host's entry stands for),
certificate pinning (a ``fingerprint`` line, a pin an admin set with ``shoal trust``, else trust on first
use from the bound address, stored in the state database), the node-key signature and the group-key
MACs over the transcript, ``nossl`` and ``only-from`` per group. Every refusal is one log line naming
the peer, its address and the reason.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import dataclass
from typing import TypeVar

from shoal.engine.replica import Replica
from shoal.errors import AuthError
from shoal.net.resolve import comes_from
from shoal.net.transport import Channel, PeerTimeout, address_allowed
from shoal.proto import auth
from shoal.proto import messages as m
from shoal.proto.errors import RemoteProtocolError

log = logging.getLogger(__name__)

HANDSHAKE_TIMEOUT_S = 15.0


@dataclass(frozen=True)
class Authenticated:
    peer: str
    groups: list[str]
    peer_db_id: str
    peer_offers: bool  #: the peer lets us pull its changes
    fingerprint: str


async def _check_pin(replica: Replica, peer: str, fp: str, address: str) -> bool:
    """True if ``fp`` may be trusted for ``peer`` (False: refuse). Does not pin (that follows the proof)."""
    configured = replica.pinned_in_config(peer)
    if configured is not None:
        if configured != fp:
            log.warning(
                "refused %s at %s: certificate fingerprint %s does not match the one in the config (%s)",
                peer,
                address,
                fp,
                configured,
            )
            return False
        return True
    pinned = await replica.db(lambda db: db.pin(peer))
    if pinned is not None and pinned != fp:
        log.warning(
            "refused %s at %s: certificate fingerprint %s does not match the pinned %s; if the node was "
            "reinstalled, run 'shoal trust --reset %s'",
            peer,
            address,
            fp,
            pinned,
            peer,
        )
        return False
    return True


async def _pin(replica: Replica, peer: str, fp: str, address: str) -> None:
    pinned = await replica.db(lambda db: db.pin(peer))
    if pinned is None and replica.pinned_in_config(peer) is None:
        how = f"first contact from {address}"
        await replica.db(lambda db: db.set_pin(peer, fp, time.time_ns(), how))
        log.info(
            "pinned %s's certificate fingerprint %s (first contact, from %s; 'shoal trust --list' shows "
            "every pin, compare it with 'shoal id' on %s)",
            peer,
            fp,
            address,
            peer,
        )


def _check_macs(replica: Replica, groups: list[str], macs: dict[str, bytes], data: bytes, role: str) -> str | None:
    for g in groups:
        mac = macs.get(g)
        if mac is None or not auth.mac_ok(replica.group_keys[g], data, role, g, mac):
            return g
    return None


_M = TypeVar("_M", bound=m.Message)


def _expect(msg: m.Message, kind: type[_M], who: str) -> _M:
    """The state machine lets only ``kind`` or Bye through here: a Bye ends the handshake."""
    if not isinstance(msg, kind):
        raise RemoteProtocolError(f"{who} ended the handshake with {type(msg).__name__} instead of {kind.__name__}")
    return msg


async def client_handshake(replica: Replica, ch: Channel, peer: str, *, offer: bool = True) -> Authenticated:
    """Authenticate to ``peer`` over ``ch``; AuthError (with the reason) if either side refuses."""
    my_fp = auth.fingerprint(replica.cert_der)
    wanted = [g.name for g in replica.groups_with(peer)]
    nonce = secrets.token_bytes(32)
    db_id = await replica.db(lambda db: db.db_id())
    await ch.send(m.Hello(m.PROTOCOL_VERSION, replica.cfg.node, nonce, replica.cert_der, wanted, db_id, offer))
    hello = await ch.recv(HANDSHAKE_TIMEOUT_S)
    if isinstance(hello, m.Refused):
        raise AuthError(f"{peer} refused us: {hello.reason}")
    hello = _expect(hello, m.Hello, peer)
    their_fp = auth.fingerprint(hello.cert)
    if hello.node != peer:
        raise AuthError(f"{ch.peer_address} answered as '{hello.node}', expected '{peer}'")
    if ch.tls and (ch.tls_peer_cert is None or auth.fingerprint(ch.tls_peer_cert) != their_fp):
        raise AuthError(
            f"{peer} at {ch.peer_address}: the TLS certificate is not the one the peer presents "
            "(a relay in the middle?)"
        )
    if not await _check_pin(replica, peer, their_fp, ch.peer_address):
        raise AuthError(f"{peer} at {ch.peer_address}: certificate fingerprint {their_fp} is not the trusted one")
    groups = sorted(set(hello.groups) & set(wanted))
    if not groups:
        raise AuthError(f"{peer} shares no group with us")
    data = auth.transcript(nonce, hello.nonce, my_fp, their_fp, groups)
    macs = {g: auth.group_mac(replica.group_keys[g], data, "client", g) for g in groups}
    await ch.send(m.Proof(auth.sign(replica.key, data, "client"), macs))
    proof = await ch.recv(HANDSHAKE_TIMEOUT_S)
    if isinstance(proof, m.Refused):
        raise AuthError(f"{peer} refused us: {proof.reason}")
    proof = _expect(proof, m.Proof, peer)
    try:
        auth.verify(hello.cert, proof.signature, data, "server")
    except RemoteProtocolError as e:
        raise AuthError(f"{peer} at {ch.peer_address}: {e}") from None
    bad = _check_macs(replica, groups, proof.macs, data, "server")
    if bad is not None:
        raise AuthError(f"{peer} at {ch.peer_address} failed the group key proof for '{bad}' (different key?)")
    welcome = await ch.recv(HANDSHAKE_TIMEOUT_S)
    if not isinstance(welcome, m.Welcome):
        raise AuthError(f"{peer} did not welcome us")
    await _pin(replica, peer, their_fp, ch.peer_address)
    log.info("authenticated %s at %s (groups %s)", peer, ch.peer_address, ", ".join(groups))
    return Authenticated(peer, groups, hello.db_id, hello.offer, their_fp)


async def server_handshake(replica: Replica, ch: Channel) -> Authenticated | None:
    """Authenticate the peer that connected; None (after telling it why and logging it) if refused.
    The whole handshake has HANDSHAKE_TIMEOUT_S, however slowly the peer trickles its bytes in."""
    try:
        async with asyncio.timeout(HANDSHAKE_TIMEOUT_S):
            return await _server_handshake(replica, ch)
    except TimeoutError:
        raise PeerTimeout(f"{ch.peer_address} did not finish the handshake within {HANDSHAKE_TIMEOUT_S:.0f}s") from None


async def _server_handshake(replica: Replica, ch: Channel) -> Authenticated | None:
    async def refuse(reason: str, detail: str) -> None:
        log.warning("refused %s: %s", detail, reason)
        await ch.send(m.Refused(reason))

    hello = _expect(await ch.recv(HANDSHAKE_TIMEOUT_S), m.Hello, ch.peer_address)
    peer = hello.node
    who = f"{peer} at {ch.peer_address}"
    if hello.version != m.PROTOCOL_VERSION:
        await refuse(f"protocol version {hello.version} is not supported (this node speaks {m.PROTOCOL_VERSION})", who)
        return None
    mine = {g.name for g in replica.groups_with(peer)}
    if not mine:
        await refuse("not a host of any group of this node", who)
        return None
    if not ch.tls and not replica.cfg.nossl_matches(peer, replica.cfg.node):
        await refuse("plain connections are not allowed for this host (no matching nossl)", who)
        return None
    # A name is bound to where its host entry says the node is: the group key is shared by every host,
    # slaves included, so without this any member could speak for a host nobody has pinned yet.
    configured = replica.addresses_of(peer)
    if not await comes_from(ch.peer_address, configured):
        await refuse(f"{peer} connects from {', '.join(configured)} (its host entry), not from this address", who)
        return None
    their_fp = auth.fingerprint(hello.cert)
    if not await _check_pin(replica, peer, their_fp, ch.peer_address):
        await ch.send(m.Refused("certificate fingerprint does not match the trusted one"))
        return None
    groups = sorted(
        g
        for g in set(hello.groups) & mine
        if not replica.group(g).only_from or address_allowed(ch.peer_address, replica.group(g).only_from)
    )
    if not groups:
        await refuse("no shared group allows this address", who)
        return None
    nonce = secrets.token_bytes(32)
    db_id = await replica.db(lambda db: db.db_id())
    await ch.send(m.Hello(m.PROTOCOL_VERSION, replica.cfg.node, nonce, replica.cert_der, groups, db_id, True))
    proof = _expect(await ch.recv(HANDSHAKE_TIMEOUT_S), m.Proof, who)
    my_fp = auth.fingerprint(replica.cert_der)
    data = auth.transcript(hello.nonce, nonce, their_fp, my_fp, groups)
    try:
        auth.verify(hello.cert, proof.signature, data, "client")
    except RemoteProtocolError as e:
        await refuse(str(e), who)
        return None
    bad = _check_macs(replica, groups, proof.macs, data, "client")
    if bad is not None:
        await refuse(f"wrong group key for group '{bad}'", who)
        return None
    macs = {g: auth.group_mac(replica.group_keys[g], data, "server", g) for g in groups}
    await ch.send(m.Proof(auth.sign(replica.key, data, "server"), macs))
    await ch.send(m.Welcome(groups))
    await _pin(replica, peer, their_fp, ch.peer_address)
    log.info("authenticated %s from %s (groups %s)", peer, ch.peer_address, ", ".join(groups))
    return Authenticated(peer, groups, hello.db_id, hello.offer, their_fp)
