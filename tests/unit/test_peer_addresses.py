"""The daemon gives its listener the addresses the config names for peers (engine.daemon)."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from shoal.config.parser import parse_text
from shoal.config.resolve import KeyFacts, resolve
from shoal.engine.daemon import _follow_peer_addresses
from shoal.net.transport import Listener


def listener() -> Listener:
    async def handler(_: object) -> None:
        return None

    return Listener("127.0.0.1", 0, ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER), handler, lambda _: True)


def config(hosts: str):  # type: ignore[no-untyped-def]
    text = f"group g {{ host me@192.0.2.1 {hosts}; key k; include /x; }}"
    return resolve(parse_text(text, "/etc/shoal.cfg"), "me", lambda p: KeyFacts(p, None, 0o600, "A" * 64))


@pytest.mark.asyncio
async def test_ip_literals_at_once_and_names_once_resolved() -> None:
    lst = listener()
    task = _follow_peer_addresses(lst, config("a@10.0.0.2 localhost c@no-such-host.invalid"))
    assert lst.peer_addresses == {"10.0.0.2"}
    assert task is not None
    await asyncio.wait_for(task, 15)
    # localhost resolves; a name that does not adds nothing; this node's own address is not a peer's
    assert {"10.0.0.2", "127.0.0.1"} <= lst.peer_addresses
    assert "192.0.2.1" not in lst.peer_addresses
    assert all(a in {"10.0.0.2", "127.0.0.1", "::1"} for a in lst.peer_addresses), lst.peer_addresses


@pytest.mark.asyncio
async def test_literals_only_need_no_task_and_a_reload_replaces_the_set() -> None:
    lst = listener()
    assert _follow_peer_addresses(lst, config("a@10.0.0.2 b@10.0.0.3")) is None
    assert lst.peer_addresses == {"10.0.0.2", "10.0.0.3"}
    assert _follow_peer_addresses(lst, config("a@10.0.0.4")) is None
    assert lst.peer_addresses == {"10.0.0.4"}
