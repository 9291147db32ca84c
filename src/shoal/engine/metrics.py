"""Prometheus metrics: the daemon's status as text exposition format 0.0.4 on an optional address.

Owns: rendering (pure, ``render``) and a minimal HTTP endpoint (``GET /metrics``). Enabled by the config
line ``metrics-listen ADDR:PORT;`` or ``shoal daemon --metrics-listen ADDR:PORT``. Nothing secret is
exposed: names of peers and counters only.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def render(status: dict[str, Any], lag: dict[str, int], conflicts: int) -> str:
    out: list[str] = []

    def metric(name: str, kind: str, doc: str, samples: list[tuple[dict[str, str], float]]) -> None:
        out.append(f"# HELP shoal_{name} {doc}")
        out.append(f"# TYPE shoal_{name} {kind}")
        for labels, value in samples:
            text = ",".join(f'{k}="{_label(v)}"' for k, v in sorted(labels.items()))
            out.append(f"shoal_{name}{{{text}}} {value:g}" if text else f"shoal_{name} {value:g}")

    peers: dict[str, Any] = status.get("peers", {})
    metric("up", "gauge", "The daemon runs.", [({"node": str(status.get("node", ""))}, 1)])
    metric(
        "peer_up",
        "gauge",
        "1 unless the last contact with the peer failed.",
        [({"peer": p}, 0 if h.get("down") else 1) for p, h in sorted(peers.items())],
    )
    metric(
        "peer_lag_records",
        "gauge",
        "Our changes the peer has not acknowledged yet.",
        [({"peer": p}, n) for p, n in sorted(lag.items())],
    )
    for key, name, doc in (
        ("files_out", "peer_files_sent_total", "Files sent to the peer."),
        ("files_in", "peer_files_received_total", "Files received from the peer."),
        ("bytes_out", "peer_bytes_sent_total", "File bytes sent to the peer."),
        ("bytes_in", "peer_bytes_received_total", "File bytes received from the peer."),
    ):
        metric(name, "counter", doc, [({"peer": p}, h.get(key, 0)) for p, h in sorted(peers.items())])
    metric(
        "peer_last_success_timestamp_seconds",
        "gauge",
        "Last completed session with the peer.",
        [({"peer": p}, h["last_ok"]) for p, h in sorted(peers.items()) if h.get("last_ok")],
    )
    metric("watches", "gauge", "inotify watches (one per managed directory).", [({}, status.get("watches", 0))])
    metric(
        "unwatched_subtrees",
        "gauge",
        "Subtrees past the inotify watch limit (scanned periodically).",
        [({}, len(status.get("unwatched", [])))],
    )
    metric("inotify_events_total", "counter", "inotify events read.", [({}, status.get("events", 0))])
    metric(
        "inotify_overflows_total",
        "counter",
        "inotify queue overflows (each triggers a rescan).",
        [({}, status.get("overflows", 0))],
    )
    metric("queue_paths", "gauge", "Changed paths waiting for the next batch.", [({}, status.get("queue", 0))])
    metric(
        "syncs_total",
        "counter",
        "Syncs the daemon started, by reason.",
        [({"reason": r}, n) for r, n in sorted(status.get("batches", {}).items())],
    )
    metric(
        "full_scans_total",
        "counter",
        "Full scans (start-up, scheduled verify, overflow).",
        [({}, status.get("full_scans", 0))],
    )
    if status.get("last_full_scan"):
        metric(
            "last_full_scan_timestamp_seconds", "gauge", "End of the last full scan.", [({}, status["last_full_scan"])]
        )
    metric("open_conflicts", "gauge", "Conflicts waiting for 'shoal resolve'.", [({}, conflicts)])
    metric("sessions", "gauge", "Peer sessions in progress.", [({}, status.get("sessions", 0))])
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, address: str, collect: Callable[[], Awaitable[str]]) -> None:
        host, _, port = address.rpartition(":")
        self.host, self.port = host.strip("[]") or "127.0.0.1", int(port)
        self.collect = collect
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        """Listen; a failure is logged and the daemon goes on without metrics (syncing matters more)."""
        try:
            self._server = await asyncio.start_server(self._handle, self.host, self.port)
        except OSError as e:
            log.error("cannot serve metrics on %s:%d: %s; running without them", self.host, self.port, e.strerror)
            return
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while await asyncio.wait_for(reader.readline(), 5) not in (b"\r\n", b"\n", b""):
                continue  # headers: not needed
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1] in (b"/metrics", b"/"):
                body = (await self.collect()).encode()
                head = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain; version=0.0.4; charset=utf-8\r\n"
            else:
                body, head = b"not found\n", b"HTTP/1.0 404 Not Found\r\nContent-Type: text/plain\r\n"
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            with contextlib.suppress(ConnectionError):
                await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()
