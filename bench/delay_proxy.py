"""A userspace TCP proxy that adds a fixed one-way delay and counts bytes (tc netem is not available).

Each direction reads what arrives and hands it on ``delay_s`` later, in order, so a round trip through
the proxy costs 2 x delay_s more than the direct path; bandwidth is not limited. The upstream side can
bind a source address (csync2 checks that a peer connects from the address its name resolves to).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from dataclasses import dataclass, field


@dataclass
class Route:
    listen: tuple[str, int]
    upstream: tuple[str, int]
    source: str | None = None  #: bind upstream connections to this address


@dataclass
class DelayProxy:
    routes: list[Route]
    delay_s: float = 0.0
    bytes_up: int = 0  #: client -> server
    bytes_down: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _servers: list[asyncio.Server] = field(default_factory=list)

    def start(self) -> None:
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop

            async def boot() -> None:
                for r in self.routes:
                    self._servers.append(
                        await asyncio.start_server(
                            lambda rd, wr, r=r: self._serve(rd, wr, r), r.listen[0], r.listen[1], reuse_address=True
                        )
                    )
                ready.set()

            loop.run_until_complete(boot())
            loop.run_forever()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        ready.wait(10)

    def stop(self) -> None:
        if self._loop is not None:
            for s in self._servers:
                self._loop.call_soon_threadsafe(s.close)
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, route: Route) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(
                route.upstream[0], route.upstream[1], local_addr=(route.source, 0) if route.source else None
            )
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_w, True), self._pump(up_r, writer, False))

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, up: bool) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def deliver() -> None:
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                writer.write(data)
                with contextlib.suppress(ConnectionError):
                    await writer.drain()
            with contextlib.suppress(Exception):
                writer.write_eof()

        sender = asyncio.create_task(deliver())
        try:
            while data := await reader.read(1 << 16):
                if up:
                    self.bytes_up += len(data)
                else:
                    self.bytes_down += len(data)
                queue.put_nowait((time.monotonic() + self.delay_s, data))
        except ConnectionError:
            pass
        queue.put_nowait((0.0, b""))
        await sender
