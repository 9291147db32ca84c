"""This node as the sync engine sees it: config, identity, group keys, and the state database.

Owns: the database's writer thread (every DB call of the engine goes through ``db()``, so the one
connection is only ever used from that thread), and what the node shares with each peer.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from cryptography.hazmat.primitives.asymmetric import ed25519

from shoal.config.resolve import GroupView, NodeConfig
from shoal.engine.actions import ActionRunner
from shoal.errors import ConfigError
from shoal.fs.scan import Scanner
from shoal.fs.walk import WalkHelper
from shoal.model.paths import PathMap
from shoal.model.patterns import Matcher
from shoal.net.identity import Identity, load_identity, load_private_key
from shoal.state.db import DB_NAME, StateDB, ensure_state_dir
from shoal.transfer import delta

if TYPE_CHECKING:
    from shoal.engine.exchange import Exchange

T = TypeVar("T")

FORWARD_QUIET_S = 0.25  #: records taken from a peer are poked about once batches pause this long...
FORWARD_MAX_S = 1.0  #: ... or at the latest this long after the first of them


class InlineCache:
    """Small files recently read for an index page, by (path, content hash): when several peers pull the
    same pages at once (the usual case after a change), each file is read once. Bounded in bytes."""

    def __init__(self, max_bytes: int = 64 << 20) -> None:
        self._data: OrderedDict[tuple[str, bytes], bytes] = OrderedDict()
        self._bytes = 0
        self._max = max_bytes
        self._lock = threading.Lock()  # pages for several peers are read in worker threads at once

    def get(self, path: str, content_hash: bytes) -> bytes | None:
        with self._lock:
            return self._data.get((path, content_hash))

    def put(self, path: str, content_hash: bytes, data: bytes) -> None:
        key = (path, content_hash)
        with self._lock:
            if key in self._data:
                return
            self._data[key] = data
            self._bytes += len(data)
            while self._bytes > self._max and self._data:
                _, old = self._data.popitem(last=False)
                self._bytes -= len(old)


class ChunkCache:
    """Chunk maps of recently served large files, by content hash (several peers usually ask for the
    same new version within seconds). Bounded by entry count; a map of a 64 MiB file is ~1,000 entries."""

    def __init__(self, entries: int = 64) -> None:
        self._maps: OrderedDict[bytes, list[delta.Chunk]] = OrderedDict()
        self._entries = entries

    def get(self, content_hash: bytes) -> list[delta.Chunk] | None:
        found = self._maps.get(content_hash)
        if found is not None:
            self._maps.move_to_end(content_hash)
        return found

    def put(self, content_hash: bytes, chunks: list[delta.Chunk]) -> None:
        self._maps[content_hash] = chunks
        self._maps.move_to_end(content_hash)
        while len(self._maps) > self._entries:
            self._maps.popitem(last=False)


@dataclass
class Replica:
    cfg: NodeConfig
    state_dir: str
    ident: Identity
    key: ed25519.Ed25519PrivateKey
    cert_der: bytes
    group_keys: dict[str, bytes]
    pmap: PathMap
    db_file: str = ""  #: the state database (default: ``state.db`` in the state dir)
    #: outgoing connections come from this local address: this node's own host entry's address when it
    #: names one (peers check that a name connects from its entry's address), or csync2's ``-N`` address
    source_address: str | None = None

    def __post_init__(self) -> None:
        if not self.db_file:
            self.db_file = os.path.join(self.state_dir, DB_NAME)
        self._exec = ThreadPoolExecutor(1, thread_name_prefix="shoal-db")
        self._db: StateDB | None = None
        self.chunk_cache = ChunkCache()
        #: one session at a time decides and applies a batch, so every decision sees the records the
        #: previous batch stored (two peers offering the same path must not both replace it)
        self.apply_lock = asyncio.Lock()
        self.actions = ActionRunner(self.cfg, self.pmap)
        #: one sync (scan + sessions we start) at a time: live batches and 'shoal sync' requests queue
        self.sync_lock = asyncio.Lock()
        #: real paths whose apply is in progress (on disk, record not stored yet); scans skip them
        self.applying: set[str] = set()
        self.batch_done = asyncio.Event()  #: set when a batch's paths leave ``applying`` (live mode clears it)
        #: open sessions that stay (server sessions, live links), in the order they opened: poked when our
        #: records change (a dict as an ordered set)
        self.sessions: dict[Exchange, None] = {}
        self.stopping = asyncio.Event()  #: the daemon stops: lasting sessions end
        self.inline_cache = InlineCache()
        #: the other process that walks half of a large tree: this one runs threads, so it may not fork
        self.walk_helper = WalkHelper()
        #: per peer, the last records of its that could not be applied here (a full disk, a busy path);
        #: cleared once a batch from it applies whole. Shown by 'shoal status'.
        self.apply_problems: dict[str, list[str]] = {}
        # Records taken from peers, waiting to be poked about (``notify_forwarded``).
        self._forward_from: set[str] = set()
        self._forward_first: float | None = None
        self._forward_timer: asyncio.TimerHandle | None = None

    def notify_changed(self) -> None:
        """Our records changed here: every peer hears of it now."""
        self._poke(set())

    def notify_forwarded(self, source: str) -> None:
        """Records taken from the peer ``source`` changed ours: the other peers hear of them once
        batches stop arriving for ``FORWARD_QUIET_S`` (at most ``FORWARD_MAX_S`` after the first).

        Forwarding is for peers that cannot reach the node a change comes from. The others usually
        have it from that node by then; poked at once, each would pull the same records from every
        node that received them, and apply or merge each of them again, in a burst competing with the
        direct transfer for the CPU and the apply lock (seen in a burst of 2,000 files: a receiver
        applied its neighbour's forwarded page of 1,000 records, 0.35 s, just before the burst's last
        records from their source)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        self._forward_from.add(source)
        if self._forward_first is None:
            self._forward_first = now
        if self._forward_timer is not None:
            self._forward_timer.cancel()
        due = min(now + FORWARD_QUIET_S, self._forward_first + FORWARD_MAX_S)
        self._forward_timer = loop.call_at(due, self._forward)

    def _forward(self) -> None:
        sources, self._forward_from = self._forward_from, set()
        self._forward_first = self._forward_timer = None
        # A single source has them already; records of several sources may be news to each of them.
        self._poke(sources if len(sources) == 1 else set())

    def _poke(self, skip: set[str]) -> None:
        """One lasting session per peer (the oldest) pokes it, except peers in ``skip``. Two nodes that
        opened links to each other at the same moment hold two sessions; poking both would make the
        peer pull everything twice."""
        poked = set(skip)
        for s in self.sessions:
            if s.auth.peer not in poked:
                poked.add(s.auth.peer)
                s.local_changed.set()

    async def last_seq(self) -> int:
        """Our last sequence number, as this process last read or wrote it: without waiting behind a scan
        on the database thread (a poke about the scan that just ended must go out now, not after the
        next one)."""
        if self._db is not None:
            return self._db.seq_seen
        return await self.db(lambda db: db.last_seq())

    def linked(self) -> set[str]:
        """Peers with a lasting session open right now."""
        return {s.auth.peer for s in self.sessions}

    def scanner(self, db: StateDB) -> Scanner:
        """A scanner that leaves alone what a peer's batch is applying right now."""
        return Scanner(db, self.cfg, busy=self.applying.__contains__, walk_helper=self.walk_helper)

    @staticmethod
    def _read_keys(cfg: NodeConfig) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for g in cfg.groups:
            try:
                with open(g.key_path, "rb") as f:
                    keys[g.name] = f.readline().strip()
            except OSError as e:
                raise ConfigError(f"cannot read key file {g.key_path}: {e.strerror}") from None
        return keys

    def reconfigure(self, cfg: NodeConfig) -> None:
        """Take a new config (SIGHUP): sessions already running keep what they started with; everything
        that starts later sees the new groups, hosts, patterns and keys. ConfigError leaves all as it was."""
        keys = self._read_keys(cfg)
        self.cfg, self.group_keys, self.pmap = cfg, keys, PathMap(dict(cfg.prefixes))
        self.actions = ActionRunner(cfg, self.pmap)

    @classmethod
    async def open(
        cls, cfg: NodeConfig, state_dir: str, *, db_file: str = "", source_address: str | None = None
    ) -> Replica:
        ensure_state_dir(state_dir)
        ident = load_identity(state_dir)
        keys = cls._read_keys(cfg)
        replica = cls(
            cfg,
            state_dir,
            ident,
            load_private_key(ident),
            ident.cert_der,
            keys,
            PathMap(dict(cfg.prefixes)),
            db_file,
            source_address or own_address(cfg),
        )
        await replica.db(lambda db: db.last_seq())
        return replica

    async def db(self, fn: Callable[[StateDB], T]) -> T:
        """Run ``fn(db)`` on the writer thread."""

        def call() -> T:
            if self._db is None:
                self._db = StateDB.open(self.db_file, busy_timeout_s=float(self.cfg.lock_timeout_s))
            return fn(self._db)

        return await asyncio.get_running_loop().run_in_executor(self._exec, call)

    async def close(self) -> None:
        if self._forward_timer is not None:
            self._forward_timer.cancel()
        await self.actions.drain()

        def shut(_: StateDB) -> None:
            if self._db is not None:
                self._db.close()
                self._db = None

        if self._db is not None:
            await self.db(shut)
        self._exec.shutdown(wait=True)
        self.walk_helper.close()

    # -- what is shared with whom -------------------------------------------------------------------

    def groups_with(self, peer: str) -> list[GroupView]:
        return [g for g in self.cfg.groups if any(p.name == peer for p in g.peers)]

    def group(self, name: str) -> GroupView:
        return next(g for g in self.cfg.groups if g.name == name)

    def matcher_for(self, groups: list[str]) -> Matcher:
        return Matcher([(g.name, g.rules) for g in self.cfg.groups if g.name in groups])

    def peer_is_slave(self, peer: str, groups: list[str]) -> bool:
        """A slave's changes are never taken: true when the peer is receive-only in every shared group."""
        return all(any(p.name == peer and p.slave for p in self.group(g).peers) for g in groups)

    def addresses_of(self, peer: str) -> list[str]:
        """Where ``peer``'s host entries say it is (``NAME@ADDR``, else the name itself), every group's."""
        return sorted({p.address for g in self.groups_with(peer) for p in g.peers if p.name == peer})

    def pinned_in_config(self, peer: str) -> str | None:
        for g in self.groups_with(peer):
            for host, fp in g.fingerprints:
                if host == peer:
                    return fp
        return None


def own_address(cfg: NodeConfig) -> str | None:
    """The address this node's host entry gives it (``NAME@ADDR``), if it gives one."""
    return None if cfg.listen_address in ("", "0.0.0.0", "::") else cfg.listen_address  # noqa: S104
