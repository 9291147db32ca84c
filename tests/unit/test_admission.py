"""The listener's caps before authentication (net.admission): one table for ``admit``, one for networks."""

from __future__ import annotations

import pytest

from shoal.net.admission import (
    MAX_PEER_ADDRESS,
    MAX_STRANGER_ADDRESS,
    MAX_STRANGER_NETWORK,
    MAX_STRANGERS,
    Verdict,
    Waiting,
    admit,
    canonical_address,
    network_of,
)

A, N, S = MAX_STRANGER_ADDRESS, MAX_STRANGER_NETWORK, MAX_STRANGERS


@pytest.mark.parametrize(
    ("peer", "waiting", "verdict"),
    [
        # a peer address: only its own slots count, however full the strangers' caps are
        (True, Waiting(0), Verdict.ADMIT),
        (True, Waiting(MAX_PEER_ADDRESS - 1), Verdict.ADMIT),
        (True, Waiting(MAX_PEER_ADDRESS), Verdict.ADDRESS_FULL),
        (True, Waiting(0, from_network=N, strangers=S), Verdict.ADMIT),
        (True, Waiting(MAX_PEER_ADDRESS, from_network=N, strangers=S), Verdict.ADDRESS_FULL),
        # a stranger: address, then network, then the pool
        (False, Waiting(0), Verdict.ADMIT),
        (False, Waiting(A - 1, N - 1, S - 1), Verdict.ADMIT),
        (False, Waiting(A, 0, 0), Verdict.ADDRESS_FULL),
        (False, Waiting(A, N, S), Verdict.ADDRESS_FULL),
        (False, Waiting(0, N, 0), Verdict.NETWORK_FULL),
        (False, Waiting(1, N, S), Verdict.NETWORK_FULL),
        (False, Waiting(0, 0, S), Verdict.STRANGERS_FULL),
        (False, Waiting(0, N - 1, S), Verdict.STRANGERS_FULL),
        (False, Waiting(0, N - 1, S - 1), Verdict.ADMIT),
    ],
)
def test_admit(peer: bool, waiting: Waiting, verdict: Verdict) -> None:
    assert admit(peer, waiting) is verdict


def test_the_caps_fit_together() -> None:
    # one address cannot fill its network alone, nor one network the pool
    assert MAX_STRANGER_ADDRESS < MAX_STRANGER_NETWORK < MAX_STRANGERS
    assert MAX_STRANGERS >= 3 * MAX_STRANGER_NETWORK


@pytest.mark.parametrize(
    ("address", "canonical", "network"),
    [
        ("10.1.2.3", "10.1.2.3", "10.1.2.0/24"),
        ("10.1.2.255", "10.1.2.255", "10.1.2.0/24"),
        ("10.1.3.0", "10.1.3.0", "10.1.3.0/24"),
        ("127.0.5.12", "127.0.5.12", "127.0.5.0/24"),
        ("::ffff:10.1.2.3", "10.1.2.3", "10.1.2.0/24"),  # a dual-stack socket's IPv4 client
        ("::FFFF:0A01:0203", "10.1.2.3", "10.1.2.0/24"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("2001:0db8:0001:0002:0000:0000:0000:0001", "2001:db8:1:2::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:3::1", "2001:db8:1:3::1", "2001:db8:1:3::/64"),
        ("::1", "::1", "::/64"),
        ("fe80::1%eth0", "fe80::1%eth0", "fe80::/64"),
        ("local", "local", "local"),  # not an IP address (a unix socket): a network of its own
    ],
)
def test_addresses_and_networks(address: str, canonical: str, network: str) -> None:
    assert canonical_address(address) == canonical
    assert network_of(address) == network
