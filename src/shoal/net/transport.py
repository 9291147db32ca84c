"""asyncio shells around the sans-IO protocol: framed channels, the dialer, the listener.

Owns: sockets, TLS contexts, timeouts and backpressure. Must not: interpret messages beyond framing.

TLS or not is decided per connection: a dialer uses TLS unless ``nossl`` matches both ends; the listener
peeks at the first byte (a TLS ClientHello starts with 0x16) and the session later refuses a plain
connection that ``nossl`` does not allow. ``only-from`` networks are checked on accept, before any byte
is read; then the caps on connections not authenticated yet (net.admission) and, for an address the
config does not name, short windows for the first byte and for everything up to authentication.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from shoal.errors import ShoalError
from shoal.net.admission import Verdict, Waiting, admit, canonical_address, network_of
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
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(host, port, limit=1 << 22, local_addr=local), timeout_s
            )
        except OSError as e:
            if local is None or e.errno != errno.EADDRNOTAVAIL:
                raise
            # Our own entry's address is not one of this machine's (NAT): the kernel picks one. The peer
            # then sees another address than our entry's, and says so when it refuses us.
            log.warning("cannot send from %s (not an address of this machine); connecting from any", source)
            reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port, limit=1 << 22), timeout_s)
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


#: A real node sends its TLS ClientHello (or, with nossl, its Hello) the moment TCP is up, so a stranger
#: (an address the config does not name; see net.admission) that has sent nothing after 3 s is not one.
#: 3 s still covers one lost and retransmitted first segment (Linux's first retransmission is at 1 s).
STRANGER_FIRST_BYTE_S = 3.0
#: From accept to authenticated, for a stranger: TLS 1.3 is one round trip and the handshake two more
#: plus a database look-up, well under a second on the networks shoal is for. 8 s leaves room for a busy
#: node and a lossy link, and frees a stranger's slot at least every 8 s whatever it trickles in.
STRANGER_DEADLINE_S = 8.0
#: A peer address's slots are its own (nobody else can fill them), so it keeps the longer windows:
#: this for the first byte and for TLS, then the handshake's own timeout.
PEER_FIRST_BYTE_S = CONNECT_TIMEOUT_S
WARN_EVERY_S = 60.0  #: one 'too many' line per address (or network, or pool) per this long
_AUTHENTICATED = (State.OPEN, State.CLOSED)


@dataclass
class _Accepted:
    address: str  #: canonical (net.admission.canonical_address)
    network: str
    peer: bool  #: from an address the config names for a host
    channel: Channel | None = None

    @property
    def authenticated(self) -> bool:
        return self.channel is not None and self.channel.conn.state in _AUTHENTICATED


class Listener:
    """Accepts peers on one address; hands each channel to ``handler`` in a task of its own.

    Before a connection has authenticated it is held to the caps of net.admission (``peer_addresses``,
    the addresses the config names for hosts, have slots of their own) and, from any other address, to
    STRANGER_FIRST_BYTE_S and STRANGER_DEADLINE_S. ``set_peer_addresses`` replaces the set (a reload)."""

    def __init__(
        self,
        host: str,
        port: int,
        tls_ctx: ssl.SSLContext,
        handler: Handler,
        allowed: Callable[[str], bool],
        peer_addresses: Iterable[str] = (),
    ) -> None:
        self.host, self.port = host, port
        self.tls_ctx = tls_ctx
        self.handler = handler
        self.allowed = allowed
        self.set_peer_addresses(peer_addresses)
        self._sock: socket.socket | None = None
        self._accepting: asyncio.Task[None] | None = None
        self._conns: dict[asyncio.Task[None], _Accepted] = {}  #: every connection being served
        self._last_warned: dict[str, float] = {}  # address/network/pool -> when its last 'too many' line was
        self._unwarned: dict[str, int] = {}  # the same -> refusals since then (not logged one by one)

    def set_peer_addresses(self, addresses: Iterable[str]) -> None:
        """The addresses whose connections use the peers' slots (IP strings; any spelling)."""
        self._peer_addresses = frozenset(canonical_address(a) for a in addresses)

    @property
    def peer_addresses(self) -> frozenset[str]:
        return self._peer_addresses

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
            address = canonical_address(addr[0])
            accepted = _Accepted(address, network_of(address), address in self._peer_addresses)
            if not self._admit(accepted):
                conn.close()
                continue
            task = loop.create_task(self.serve_accepted(conn, address, accepted))
            self._conns[task] = accepted
            task.add_done_callback(lambda t: self._conns.pop(t, None))
            # sock_accept does not yield while the backlog holds connections: without this a flood
            # would keep every other task (the sessions, the handshakes it is waiting on) from running
            await asyncio.sleep(0)

    def _admit(self, new: _Accepted) -> bool:
        """Whether one more connection may start a handshake (net.admission decides from the counts of
        connections that have not authenticated yet); a refusal is logged, at most once a minute for
        each address (or network, or the strangers' pool, whichever cap was full)."""
        waiting = [a for a in self._conns.values() if not a.authenticated]
        strangers = [a for a in waiting if not a.peer]
        counts = Waiting(
            from_address=sum(1 for a in waiting if a.address == new.address),
            from_network=sum(1 for a in strangers if a.network == new.network),
            strangers=len(strangers),
        )
        verdict = admit(new.peer, counts)
        if verdict is Verdict.ADMIT:
            return True
        if verdict is Verdict.ADDRESS_FULL:
            key, why = new.address, f"{counts.from_address} from this address"
        elif verdict is Verdict.NETWORK_FULL:
            key, why = new.network, f"{counts.from_network} from its network {new.network}"
        else:
            key, why = "strangers", f"{counts.strangers} from addresses not in the config"
        now = time.monotonic()
        self._unwarned[key] = self._unwarned.get(key, 0) + 1
        if now - self._last_warned.get(key, -1e9) >= WARN_EVERY_S:
            log.warning(
                "refused connection from %s: too many connections still in their handshake (%s, the most "
                "allowed); %d refused since the last such line",
                new.address,
                why,
                self._unwarned.pop(key),
            )
            self._last_warned = {k: t for k, t in self._last_warned.items() if now - t < WARN_EVERY_S}  # stays small
            self._unwarned = {k: n for k, n in self._unwarned.items() if k in self._last_warned}
            self._last_warned[key] = now
        return False

    async def serve_accepted(self, conn: socket.socket, addr: str, accepted: _Accepted | None = None) -> None:
        """Run the handler on a connection accepted here or elsewhere (inetd passes one on stdin). A
        stranger's connection that has not authenticated STRANGER_DEADLINE_S after this started is
        dropped, wherever it is (TLS, the handshake)."""
        conn.setblocking(False)
        with contextlib.suppress(OSError):  # not TCP (a unix socket in a test): nothing to tune
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        peer = accepted.peer if accepted is not None else canonical_address(addr) in self._peer_addresses
        task = asyncio.current_task()
        assert task is not None
        channel: Channel | None = None
        expired = False

        def expire() -> None:
            nonlocal expired
            if channel is None or channel.conn.state not in _AUTHENTICATED:
                expired = True
                task.cancel()

        timer = None if peer else asyncio.get_running_loop().call_later(STRANGER_DEADLINE_S, expire)
        try:
            try:
                channel = await self._open(conn, addr, PEER_FIRST_BYTE_S if peer else STRANGER_FIRST_BYTE_S)
            except PeerTimeout as e:
                # idle probes are common and cheap for the sender: not worth a warning each, from strangers
                log.log(logging.WARNING if peer else logging.INFO, "dropped connection: %s", e)
                conn.close()
                return
            except (OSError, ssl.SSLError) as e:
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
                if timer is not None:
                    timer.cancel()  # the session's end (closing, below) is no longer the deadline's business
                await channel.close()
        except asyncio.CancelledError:
            if not expired or task.uncancel() > 0:
                raise
            log.warning(
                "%s did not finish the handshake within %.0fs of connecting (the limit for an address the "
                "config does not name for a host)",
                addr,
                STRANGER_DEADLINE_S,
            )
            conn.close()  # a channel, if there was one, was closed on the way out of the handler
        finally:
            if timer is not None:
                timer.cancel()

    async def _open(self, conn: socket.socket, addr: str, first_byte_s: float) -> Channel | None:
        loop = asyncio.get_running_loop()
        readable: asyncio.Future[None] = loop.create_future()

        def ready() -> None:
            if not readable.done():
                readable.set_result(None)

        loop.add_reader(conn.fileno(), ready)
        try:
            await asyncio.wait_for(readable, first_byte_s)
        except TimeoutError:
            raise PeerTimeout(f"{addr} sent nothing within {first_byte_s:.0f}s of connecting") from None
        finally:
            loop.remove_reader(conn.fileno())
        first = conn.recv(1, socket.MSG_PEEK)
        if not first:
            return None
        tls = first[0] == TLS_RECORD
        reader = asyncio.StreamReader(limit=1 << 22)
        protocol = asyncio.StreamReaderProtocol(reader)
        try:
            transport, _ = await asyncio.wait_for(
                loop.connect_accepted_socket(lambda: protocol, conn, ssl=self.tls_ctx if tls else None),
                CONNECT_TIMEOUT_S,
            )
        except TimeoutError:
            raise TimeoutError(f"the TLS handshake did not finish within {CONNECT_TIMEOUT_S:.0f}s") from None
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
