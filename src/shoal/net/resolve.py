"""Which IP addresses a configured host address stands for: the binding of a node's name to where it
connects from (design.md section 3; csync2 checks a peer's HELLO against its IP the same way).

Owns: resolving a host's configured address (an IP literal, or a name looked up with the system
resolver, bounded in time) and remembering the answer for a while. Must not: decide whether a peer is
trusted (engine/handshake.py does, with this answer).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time

from shoal.net.admission import canonical_address

RESOLVE_TIMEOUT_S = 3.0  #: a resolver that does not answer in time: the name stands for nothing
REMEMBERED_S = 60.0  #: how long an answer is reused (a renumbered peer is followed within a minute)

_answers: dict[str, tuple[float, frozenset[str]]] = {}


def is_ip(address: str) -> bool:
    try:
        ipaddress.ip_address(address)
    except ValueError:
        return False
    return True


async def addresses_of(host: str) -> frozenset[str]:
    """The IP addresses ``host`` (an IP literal or a name) stands for, in canonical form; empty when a
    name does not resolve (in time)."""
    if is_ip(host):
        return frozenset({canonical_address(host)})
    now = time.monotonic()
    known = _answers.get(host)
    if known is not None and now - known[0] < REMEMBERED_S:
        return known[1]
    try:
        infos = await asyncio.wait_for(
            asyncio.get_running_loop().getaddrinfo(host, None, type=socket.SOCK_STREAM), RESOLVE_TIMEOUT_S
        )
        found = frozenset(canonical_address(str(info[4][0])) for info in infos)
    except (OSError, TimeoutError, UnicodeError):
        found = frozenset()
    if len(_answers) > 1024:  # the hosts of one config: stays small unless names churn
        _answers.clear()
    _answers[host] = (now, found)
    return found


async def comes_from(address: str, hosts: list[str]) -> bool:
    """Whether a connection from ``address`` comes from one of ``hosts`` (a node's configured
    addresses: usually one)."""
    me = canonical_address(address)
    for host in hosts:
        if me in await addresses_of(host):
            return True
    return False
