"""Who may start a handshake: the listener's caps on connections that have not authenticated yet.

Owns: the arithmetic (pure; the listener counts, this decides) and how addresses group into networks.
Must not: touch sockets or clocks.

Theory of operation. Until a connection has authenticated, all it costs an attacker is a TCP handshake,
so the slots for such connections are the thing to protect. They come in two pools:

- *peer addresses*, the addresses the config names for a host (``host name@addr``, or the name's DNS
  answer): each has a few slots of its own, which no other address can take. A flood from anywhere else,
  however large, leaves a configured peer its way in.
- *strangers*, every other address: a real node may still connect from one (behind NAT, or a host entry
  without an address that resolved elsewhere), so they are served, but from one shared pool, capped per
  address and per network (IPv4 /24, IPv6 /64: what one customer, one LAN or one cloud tenant usually
  holds), so that the pool needs at least three networks to fill.

Strangers also get less time (see ``net.transport``), so even a full pool turns over within seconds.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass

#: Slots of a peer address. A node opens one lasting session to each peer plus the odd one-shot sync
#: or diff; 8 covers a burst of those (and a daemon restarting while its old sessions time out).
MAX_PEER_ADDRESS = 8
#: Slots of one stranger address: the same as a peer's, so that a real node connecting from an address
#: the config does not name is not worse off alone than a configured one.
MAX_STRANGER_ADDRESS = 8
#: Slots of one stranger network (/24, /64): two addresses' worth. A network is what one attacker most
#: often holds; 16 leaves room for a NATed office of nodes, and makes one network a third of the pool.
MAX_STRANGER_NETWORK = 16
#: All strangers together. With the peer addresses apart, this bounds what strangers may cost (sockets,
#: TLS state): 48 connections, each gone within the strangers' deadline.
MAX_STRANGERS = 48

IPV4_NETWORK_BITS = 24
IPV6_NETWORK_BITS = 64


class Verdict(enum.Enum):
    """What the caps say about one more connection; all but ADMIT name the cap that is full."""

    ADMIT = "admit"
    ADDRESS_FULL = "address"  #: this address has its slots in use
    NETWORK_FULL = "network"  #: a stranger's network has its slots in use
    STRANGERS_FULL = "strangers"  #: the strangers' pool is full


@dataclass(frozen=True, slots=True)
class Waiting:
    """Connections not authenticated yet, counted as the caps need them (the new one not included)."""

    from_address: int  #: from the new connection's address
    from_network: int = 0  #: from strangers in its network (peer addresses not counted)
    strangers: int = 0  #: from all strangers


def admit(peer: bool, waiting: Waiting) -> Verdict:
    """Whether one more connection may start a handshake: ``peer`` when it comes from a peer address."""
    if peer:
        return Verdict.ADMIT if waiting.from_address < MAX_PEER_ADDRESS else Verdict.ADDRESS_FULL
    if waiting.from_address >= MAX_STRANGER_ADDRESS:
        return Verdict.ADDRESS_FULL
    if waiting.from_network >= MAX_STRANGER_NETWORK:
        return Verdict.NETWORK_FULL
    if waiting.strangers >= MAX_STRANGERS:
        return Verdict.STRANGERS_FULL
    return Verdict.ADMIT


def canonical_address(address: str) -> str:
    """One spelling per address: an IPv4-mapped IPv6 address (a dual-stack socket's view of an IPv4
    client) as IPv4, IPv6 compressed. Anything else (a unix socket's name) is returned as it is."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def network_of(address: str) -> str:
    """The network an address counts against: its /24 (IPv4, IPv4-mapped too) or /64 (IPv6), e.g.
    ``10.1.2.0/24``; anything that is not an IP address is a network of its own."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if isinstance(ip, ipaddress.IPv4Address):
        return str(ipaddress.IPv4Network((int(ip), IPV4_NETWORK_BITS), strict=False))
    return str(ipaddress.IPv6Network((int(ip), IPV6_NETWORK_BITS), strict=False))
