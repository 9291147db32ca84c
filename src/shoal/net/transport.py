"""asyncio shells around the sans-IO protocol: framed channels, the dialer, the listener.

Owns: sockets, TLS contexts, timeouts and backpressure. Must not: interpret messages beyond framing.

TLS or not is decided per connection: a dialer uses TLS unless ``nossl`` matches both ends; the listener
peeks at the first byte (a TLS ClientHello starts with 0x16) and the session later refuses a plain
connection that ``nossl`` does not allow. ``only-from`` networks are checked on accept, before any byte
is read.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from shoal.errors import ShoalError
from shoal.proto import messages as m
from shoal.proto.errors import RemoteProtocolError
from shoal.proto.session import Connection, Role, State

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0
TLS_RECORD = 0x16


class PeerClosed(ShoalError):
    """The peer closed the connection (or it broke)."""


class PeerTimeout(ShoalError):
    """The peer sent nothing within the read timeout."""


class PeerUnreachable(ShoalError):
    """No TCP connection could be made (refused, no route, timed out)."""


def server_context(cert_path: str, key_path: str) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


def client_context() -> ssl.SSLContext:
    # The server's certificate is self-signed and checked by fingerprint (pinning) after the handshake.
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


@dataclass
class Channel:
    """Messages over one connection. ``send`` may be called from several tasks; ``recv`` from one."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    conn: Connection
    peer_address: str
    tls_peer_cert: bytes | None  #: the peer's TLS certificate (DER) when we are the TLS client
    tls: bool
    read_timeout_s: float = READ_TIMEOUT_S
    bytes_in: int = 0
    bytes_out: int = 0

    def __post_init__(self) -> None:
        self._drain_lock = asyncio.Lock()

    async def send(self, msg: m.Message) -> None:
        if self.conn.state is State.CLOSED:  # the peer said Bye first
            raise PeerClosed(f"{self.peer_address} ended the session")
        data = self.conn.send(msg)
        self.bytes_out += len(data)
        self.writer.write(data)
        async with self._drain_lock:
            try:
                await self.writer.drain()
            except (ConnectionError, OSError) as e:
                raise PeerClosed(f"connection to {self.peer_address} lost: {e}") from None

    async def recv(self, timeout_s: float | None = None) -> m.Message:
        while True:
            msg = self.conn.next_event()
            if msg is not None:
                return msg
            try:
                data = await asyncio.wait_for(self.reader.read(1 << 18), timeout_s or self.read_timeout_s)
            except TimeoutError:
                raise PeerTimeout(
                    f"{self.peer_address} sent nothing for {timeout_s or self.read_timeout_s:.0f}s"
                ) from None
            except (ConnectionError, OSError, ssl.SSLError) as e:
                raise PeerClosed(f"connection to {self.peer_address} lost: {e}") from None
            if not data:
                raise PeerClosed(f"{self.peer_address} closed the connection")
            self.bytes_in += len(data)
            self.conn.receive_data(data)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.writer.wait_closed(), 2.0)


async def dial(
    host: str, port: int, tls: bool, *, timeout_s: float = CONNECT_TIMEOUT_S, source: str | None = None
) -> Channel:
    """Connect to a peer (from local address ``source`` if given). PeerUnreachable when no TCP connection
    can be made; PeerClosed when the peer accepts and then drops us (an only-from list, a TLS failure):
    that is a refusal, not an outage."""
    local = (source, 0) if source else None
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(host, port, limit=1 << 22, local_addr=local), timeout_s
        )
    except (OSError, TimeoutError) as e:
        raise PeerUnreachable(f"cannot connect to {host}:{port}: {e or 'timed out'}") from None
    cert = None
    if tls:
        try:
            await asyncio.wait_for(writer.start_tls(client_context(), server_hostname=""), timeout_s)
        except (OSError, TimeoutError, ssl.SSLError) as e:
            writer.close()
            raise PeerClosed(
                f"{host}:{port} dropped the connection during the TLS handshake "
                f"(not in its only-from networks?): {e or 'closed'}"
            ) from None
        ssl_obj = writer.get_extra_info("ssl_object")
        cert = ssl_obj.getpeercert(binary_form=True) if ssl_obj is not None else None
    return Channel(reader, writer, Connection(Role.CLIENT), f"{host}:{port}", cert, tls)


def address_allowed(address: str, networks: Sequence[str]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(n) for n in networks)


Handler = Callable[[Channel], Awaitable[None]]


MAX_UNAUTHENTICATED_PER_ADDRESS = 8  #: connections from one address still in TLS or the handshake
MAX_UNAUTHENTICATED = 64  #: the same, from all addresses together


@dataclass
class _Accepted:
    address: str
    channel: Channel | None = None

    @property
    def authenticated(self) -> bool:
        return self.channel is not None and self.channel.conn.state in (State.OPEN, State.CLOSED)


class Listener:
    """Accepts peers on one address; hands each channel to ``handler`` in a task of its own."""

    def __init__(
        self, host: str, port: int, tls_ctx: ssl.SSLContext, handler: Handler, allowed: Callable[[str], bool]
    ) -> None:
        self.host, self.port = host, port
        self.tls_ctx = tls_ctx
        self.handler = handler
        self.allowed = allowed
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._conns: dict[asyncio.Task[None], _Accepted] = {}  #: every connection being served
        self._last_warned: dict[str, float] = {}  # address -> when its last 'too many' line was logged
        self._unwarned: dict[str, int] = {}  # address -> refusals since then (not logged one by one)

    async def start(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self._accepting = asyncio.get_running_loop().create_task(self._accept_loop())

    @property
    def bound_port(self) -> int:
        assert self._sock is not None
        return int(self._sock.getsockname()[1])

    async def _accept_loop(self) -> None:
        loop = asyncio.get_running_loop()
        assert self._sock is not None
        while True:
            conn, addr = await loop.sock_accept(self._sock)
            if not self.allowed(addr[0]):
                log.warning("refused connection from %s: not in any group's only-from networks", addr[0])
                conn.close()
                continue
            # Small messages go out at once. asyncio only sets this on sockets whose ``proto`` says TCP,
            # which an accepted socket's does not: without it every request/answer turn waited ~40 ms
            # for a delayed ACK (Nagle).
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if not self._admit(addr[0]):
                conn.close()
                continue
            accepted = _Accepted(addr[0])
            task = loop.create_task(self.serve_accepted(conn, addr[0], accepted))
            self._conns[task] = accepted
            task.add_done_callback(lambda t: self._conns.pop(t, None))

    def _admit(self, address: str) -> bool:
        """Whether one more connection from ``address`` may start a handshake. Connections that have
        not authenticated yet are capped per address and in all, so that a flood of idle or trickling
        connections cannot crowd out real peers (each one is dropped after the handshake timeout)."""
        waiting = [a.address for a in self._conns.values() if not a.authenticated]
        mine = sum(1 for a in waiting if a == address)
        if mine < MAX_UNAUTHENTICATED_PER_ADDRESS and len(waiting) < MAX_UNAUTHENTICATED:
            return True
        now = time.monotonic()
        self._unwarned[address] = self._unwarned.get(address, 0) + 1
        if now - self._last_warned.get(address, -1e9) >= 60:
            log.warning(
                "refused connection from %s: too many connections still in their handshake (%d from this "
                "address, %d in all); %d refused since the last such line",
                address,
                mine,
                len(waiting),
                self._unwarned.pop(address),
            )
            self._last_warned = {a: t for a, t in self._last_warned.items() if now - t < 60}  # stays small
            self._unwarned = {a: n for a, n in self._unwarned.items() if a in self._last_warned}
            self._last_warned[address] = now
        return False

    async def serve_accepted(self, conn: socket.socket, addr: str, accepted: _Accepted | None = None) -> None:
        """Run the handler on a connection accepted here or elsewhere (inetd passes one on stdin)."""
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # not TCP (a unix socket in a test): nothing to tune
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            channel = await self._open(conn, addr)
        except (TimeoutError, OSError, ssl.SSLError) as e:
            log.warning("connection from %s failed before the session: %s", addr, e)
            conn.close()
            return
        if channel is None:
            conn.close()
            return
        if accepted is not None:
            accepted.channel = channel
        try:
            await self.handler(channel)
        finally:
            await channel.close()

    async def _open(self, conn: socket.socket, addr: str) -> Channel | None:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(conn.fileno(), ready)
        try:
            await asyncio.wait_for(readable, CONNECT_TIMEOUT_S)
        finally:
            loop.remove_reader(conn.fileno())
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return None
        tls = first[0] == TLS_RECORD
        reader = asyncio.StreamReader(limit=1 << 22)
        protocol = asyncio.StreamReaderProtocol(reader)
        transport, _ = await asyncio.wait_for(
            loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.tls_ctx if tls else None), CONNECT_TIMEOUT_S
        )
        writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        return Channel(reader, writer, Connection(Role.SERVER), addr, None, tls=tls)

    async def stop_accepting(self) -> None:
        if self._accepting is not None:
            self._accepting.cancel()
            with contextlib.suppress(BaseException):
                await self._accepting
            self._accepting = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def close(self) -> None:
        await self.stop_accepting()
        for t in list(self._conns):
            t.cancel()
        for t in list(self._conns):
            with contextlib.suppress(BaseException):
                await t


__all__ = ["Channel", "Listener", "PeerClosed", "PeerTimeout", "RemoteProtocolError", "dial"]
