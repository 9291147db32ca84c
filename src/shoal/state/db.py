"""The state database: schema migrations and the batch verbs everything else uses.

Owns: every line of SQL in shoal, the on-disk encoding of records (paths as bytes, vectors as msgpack of
local node ids), and schema versioning on ``PRAGMA user_version``. Must not: hand out cursors or leak SQL
to callers; decide anything about sync.

Concurrency: one writer connection (a ``StateDB`` opened for writing belongs to one thread; the daemon
gives it a thread of its own), any number of read-only connections (WAL readers never block the writer).
A database whose schema is newer than this program is refused, never altered.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar, cast

import msgspec

from shoal.errors import StateError
from shoal.model.records import KINDS, Record, Vector

DB_NAME = "state.db"
_BATCH = 500

#: What the scanner compares to decide whether to look closer: the record's stat signature
#: (model/records.py ``Record.signature``; 0 = read again, -1 = tombstone), by logical path as bytes.
ScanIndex = dict[bytes, int]

_COLUMNS = (
    "path, kind, size, mode, uid, gid, user, grp, mtime_ns, hash, target, rdev, vector, base, "
    "deleted, seq, ctime_ns, inode, recheck, origin"
)
_Row = tuple[
    bytes,
    int,
    int,
    int,
    int,
    int,
    str | None,
    str | None,
    int,
    bytes | None,
    bytes | None,
    int,
    bytes,
    bytes | None,
    int,
    int,
    int,
    int,
    int,
    int | None,
]


_SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "schema")


_MARK_TABLES = ("hints", "forced")


def _migrations() -> list[tuple[int, str, str]]:
    out = []
    for name in os.listdir(_SCHEMA_DIR):
        if name.endswith(".sql") and name[:4].isdigit():
            with open(os.path.join(_SCHEMA_DIR, name), encoding="utf-8") as f:
                out.append((int(name[:4]), name, f.read()))
    return sorted(out)


def latest_schema_version() -> int:
    return _migrations()[-1][0]


def _encode_path(path: str) -> bytes:
    return path.encode("utf-8", "surrogateescape")


def _decode_path(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def ensure_state_dir(path: str) -> None:
    """Create the state directory 0700, or tighten an existing one that others can read."""
    try:
        os.makedirs(path, mode=0o700, exist_ok=True)
        st = os.stat(path)
        if st.st_mode & 0o077:
            os.chmod(path, 0o700)
    except OSError as e:
        raise StateError(f"cannot use state directory {path}: {e.strerror or e}") from None


class StateDB:
    """One connection to a state database. Open with :meth:`open`; close when done."""

    def __init__(self, conn: sqlite3.Connection, path: str, readonly: bool) -> None:
        self._conn = conn
        self.path = path
        self.readonly = readonly
        self._nodes = _Interned(conn, "nodes", "name")  # node names in version vectors and peers
        self._sources = _Interned(conn, "sources", "db_id")  # peer database ids in record origins
        #: the last sequence number this connection read or wrote. Other threads may read it without
        #: waiting for the connection's (a scan may hold it for a while); another process's writes show
        #: after the next ``last_seq()``.
        self.seq_seen = 0
        # Decoded and encoded vectors, by their stored bytes / value: the records of one burst of changes
        # mostly share a handful (decoding them was a third of a sending node's CPU during a burst).
        self._vectors_in: dict[bytes, Vector] = {}
        self._vectors_out: dict[Vector, bytes] = {}
        # The scan index as this connection last read or wrote it, and the ``data_version`` it was read
        # at: a full scan in a long-lived process (the daemon) copies it instead of reading every row
        # again, unless another connection has committed since. Every write of ``records`` is
        # ``apply_scan``, which keeps it up to date.
        self._index: ScanIndex | None = None
        self._index_version = -1

    # -- opening -------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str, *, readonly: bool = False, busy_timeout_s: float = 12.0) -> StateDB:
        if readonly and not os.path.exists(path):
            raise StateError(f"no state database at {path} (run 'shoal check' first)")
        try:
            if readonly:
                conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, isolation_level=None, timeout=busy_timeout_s)
            else:
                if not os.path.exists(path):
                    os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
                conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
        except (OSError, sqlite3.Error) as e:
            raise StateError(f"cannot open state database {path}: {e}") from None
        try:
            _refuse_foreign(conn, path)
            conn.execute("PRAGMA foreign_keys = ON")
            if not readonly:
                conn.execute("PRAGMA journal_mode = WAL")
                conn.execute("PRAGMA synchronous = FULL")
            _migrate(conn, path, readonly)
        except sqlite3.DatabaseError as e:
            conn.close()
            raise StateError(f"state database {path} is unusable: {e}") from None
        except StateError:
            conn.close()
            raise
        return cls(conn, path, readonly)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> StateDB:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- meta ----------------------------------------------------------------------------------------

    def get_meta(self, key: str) -> str | int | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def set_meta(self, key: str, value: str | int) -> None:
        with self._write():
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    def last_seq(self) -> int:
        value = self.get_meta("last_seq")
        seq = int(value) if value is not None else 0
        self.seq_seen = max(self.seq_seen, seq)
        return seq

    # -- nodes and vectors ---------------------------------------------------------------------------

    def reload_nodes(self) -> None:
        """Ids inserted by a rolled-back transaction are gone: rebuild the caches."""
        self._nodes.load()
        self._sources.load()
        self._vectors_in.clear()
        self._vectors_out.clear()

    def _source(self, source_id: int) -> str | None:
        return self._sources.name(source_id)

    def _source_id(self, db_id: str) -> int:
        return self._sources.id_of(db_id)

    def _node_id(self, name: str) -> int:
        return self._nodes.id_of(name)

    def _encode_vector(self, v: Vector) -> bytes:
        raw = self._vectors_out.get(v)
        if raw is None:
            flat: list[int] = []
            for node, counter in v:
                flat += (self._node_id(node), counter)
            raw = msgspec.msgpack.encode(flat)
            _remember(self._vectors_out, v, raw)
        return raw

    def _decode_vector(self, raw: bytes) -> Vector:
        v = self._vectors_in.get(raw)
        if v is None:
            flat = msgspec.msgpack.decode(raw, type=list[int])
            v = tuple(sorted((self._nodes.name_strict(flat[i]), flat[i + 1]) for i in range(0, len(flat), 2)))
            _remember(self._vectors_in, raw, v)
        return v

    # -- records -------------------------------------------------------------------------------------

    def _record(self, r: _Row) -> Record:
        # Positional, in Record's field order (this runs for every record read: pages, scans, applies).
        return Record(
            r[0].decode("utf-8", "surrogateescape"),  # path
            KINDS[r[1]],
            r[2],  # size_bytes
            r[3],  # mode
            r[4],  # uid
            r[5],  # gid
            r[6] or "",  # user
            r[7] or "",  # group
            r[8],  # mtime_ns
            r[9],  # hash
            None if r[10] is None else _decode_path(r[10]),  # target
            r[11],  # rdev
            self._decode_vector(r[12]),
            r[13],  # base
            bool(r[14]),  # deleted
            r[15],  # seq
            r[16],  # ctime_ns
            r[17],  # inode
            bool(r[18]),  # recheck
            None if r[19] is None else self._source(r[19]),  # origin
        )

    def _row(self, rec: Record, seq: int) -> tuple[object, ...]:
        return (
            _encode_path(rec.path),
            int(rec.kind),
            rec.size_bytes,
            rec.mode,
            rec.uid,
            rec.gid,
            rec.user or None,
            rec.group or None,
            rec.mtime_ns,
            rec.hash,
            None if rec.target is None else _encode_path(rec.target),
            rec.rdev,
            self._encode_vector(rec.vector),
            rec.base,
            int(rec.deleted),
            seq,
            rec.ctime_ns,
            rec.inode,
            int(rec.recheck),
            None if rec.origin is None else self._source_id(rec.origin),
            rec.signature(),
        )

    def scan_index(self) -> ScanIndex:
        """The stat signature of every record, by logical path (bytes): a copy, the caller's to change."""
        version = self._conn.execute("PRAGMA data_version").fetchone()[0]  # before the rows: a commit
        if self._index is None or version != self._index_version:  # in between means reading again
            self._index = dict(self._conn.execute("SELECT path, sig FROM records").fetchall())
            self._index_version = version
        return dict(self._index)

    def scan_index_under(self, roots: Iterable[str]) -> ScanIndex:
        """``scan_index`` for the given logical paths and everything below them only (a targeted scan
        must cost what it touches, not the size of the whole table)."""
        out: ScanIndex = {}
        for root in roots:
            raw = _encode_path(root.rstrip("/") or "/")
            below = raw if raw == b"/" else raw + b"/"
            rows = self._conn.execute(
                "SELECT path, sig FROM records WHERE path = ? OR (path >= ? AND path < ?)",
                (raw, below, below[:-1] + b"0"),
            )
            out.update(rows.fetchall())
        return out

    # -- the apply journal (0005_journal.sql) --------------------------------------------------------

    def journal_put(self, records: Iterable[Record], now_ns: int) -> None:
        """Received versions about to be renamed into place (each with the vector and origin to store)."""
        rows = [(*self._row(rec, 0), now_ns) for rec in records]
        if rows:
            with self._write():
                self._conn.executemany(
                    f"INSERT OR REPLACE INTO apply_journal ({_COLUMNS}, sig, t_ns) VALUES ({','.join('?' * 22)})", rows
                )

    def journal_get(self, paths: Iterable[str]) -> dict[str, Record]:
        return self._records_in("apply_journal", paths)

    def journal_any(self) -> bool:
        return self._conn.execute("SELECT 1 FROM apply_journal LIMIT 1").fetchone() is not None

    def journal_drop(self, paths: Iterable[str]) -> None:
        keys = [(_encode_path(p),) for p in paths]
        if keys:
            with self._write():
                self._conn.executemany("DELETE FROM apply_journal WHERE path = ?", keys)

    def journal_drop_older(self, t_ns: int) -> None:
        """Entries a full scan did not adopt: their rename never happened, or a later change replaced it."""
        with self._write():
            self._conn.execute("DELETE FROM apply_journal WHERE t_ns < ?", (t_ns,))

    def scan_index_of(self, paths: Iterable[str]) -> ScanIndex:
        """``scan_index`` for exactly these logical paths (nothing below them)."""
        out: ScanIndex = {}
        for p in paths:
            raw = _encode_path(p)
            out.update(self._conn.execute("SELECT path, sig FROM records WHERE path = ?", (raw,)).fetchall())
        return out

    def get_records(self, paths: Iterable[str]) -> dict[str, Record]:
        return self._records_in("records", paths)

    def _records_in(self, table: str, paths: Iterable[str]) -> dict[str, Record]:
        """``table`` (records, or the apply journal with the same columns) rows of these paths."""
        out: dict[str, Record] = {}
        keys = [_encode_path(p) for p in paths]
        for i in range(0, len(keys), _BATCH):
            chunk = keys[i : i + _BATCH]
            marks = ",".join("?" * len(chunk))
            for r in self._conn.execute(f"SELECT {_COLUMNS} FROM {table} WHERE path IN ({marks})", chunk):
                rec = self._record(r)
                out[rec.path] = rec
        return out

    def all_records(self, *, include_deleted: bool = True) -> list[Record]:
        where = "" if include_deleted else " WHERE deleted = 0"
        rows = self._conn.execute(f"SELECT {_COLUMNS} FROM records{where} ORDER BY path").fetchall()
        return [self._record(r) for r in rows]

    def records_since(self, seq: int, limit: int = 10_000) -> list[Record]:
        """Records changed after local sequence ``seq``, oldest change first."""
        rows = self._conn.execute(
            f"SELECT {_COLUMNS} FROM records WHERE seq > ? ORDER BY seq LIMIT ?",
            (seq, limit),
        ).fetchall()
        return [self._record(r) for r in rows]

    def paths_changed_by(self, node: str) -> list[str]:
        """Live or deleted records whose version vector holds an entry of ``node`` (a full scan)."""
        nid = self._nodes.known(node)
        if nid is None:
            return []
        out = []
        for raw_path, raw_vec in self._conn.execute("SELECT path, vector FROM records"):
            if nid in msgspec.msgpack.decode(raw_vec, type=list[int])[::2]:
                out.append(_decode_path(raw_path))
        return out

    def count_since(self, seq: int) -> int:
        """Records changed after local sequence ``seq`` (a cheap upper bound of what a peer lacks)."""
        row = self._conn.execute("SELECT count(*) FROM records WHERE seq > ?", (seq,)).fetchone()
        return int(row[0])

    def count_conflicts(self) -> int:
        return int(self._conn.execute("SELECT count(*) FROM conflicts").fetchone()[0])

    def count_records(self) -> tuple[int, int]:
        """(live records, tombstones)."""
        row = self._conn.execute("SELECT count(*) - total(deleted), total(deleted) FROM records").fetchone()
        return int(row[0]), int(row[1])

    def apply_scan(
        self, changes: Sequence[Record], refreshes: Sequence[Record] = (), forget: Sequence[str] = ()
    ) -> int:
        """One transaction: ``changes`` get new sequence numbers (peers must hear of them); ``refreshes``
        only update local change-detection fields; ``forget`` drops records no longer managed.
        Returns the last sequence number."""
        with self._write():
            seq = self.last_seq()
            rows = []
            for rec in changes:
                seq += 1
                rows.append(self._row(rec, seq))
            self._conn.executemany(
                f"INSERT OR REPLACE INTO records ({_COLUMNS}, sig) VALUES ({','.join('?' * 21)})",
                rows,
            )
            refreshed = [(r.ctime_ns, r.inode, int(r.recheck), r.signature(), _encode_path(r.path)) for r in refreshes]
            self._conn.executemany(
                "UPDATE records SET ctime_ns = ?, inode = ?, recheck = ?, sig = ? WHERE path = ?", refreshed
            )
            self._conn.executemany("DELETE FROM records WHERE path = ?", [(_encode_path(p),) for p in forget])
            self._conn.execute(
                "INSERT INTO meta (key, value) VALUES ('last_seq', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (seq,),
            )
        self.seq_seen = max(self.seq_seen, seq)
        index = self._index
        if index is not None:  # committed: the cached index follows
            index.update((cast(bytes, row[0]), cast(int, row[-1])) for row in rows)  # (path, sig) as stored
            for *_, sig, key in refreshed:  # (an UPDATE: it adds no row that is not there)
                if key in index:
                    index[key] = sig
            for p in forget:
                index.pop(_encode_path(p), None)
        return seq

    def checkpoint(self) -> None:
        """Fold the write-ahead log back into the database file and truncate it."""
        self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")

    # -- peers ---------------------------------------------------------------------------------------

    def watermarks(self, peer: str) -> tuple[int, int]:
        """(highest of our sequences ``peer`` acknowledged, highest of its sequences we received)."""
        node_id = self._nodes.known(peer)
        if node_id is None:
            return 0, 0
        row = self._conn.execute("SELECT acked_seq, received_seq FROM peers WHERE node_id = ?", (node_id,)).fetchone()
        return (0, 0) if row is None else (int(row[0]), int(row[1]))

    def set_watermarks(self, peer: str, acked_seq: int, received_seq: int) -> None:
        with self._write():
            self._conn.execute(
                "INSERT INTO peers (node_id, acked_seq, received_seq) VALUES (?, ?, ?) ON CONFLICT (node_id) "
                "DO UPDATE SET acked_seq = excluded.acked_seq, received_seq = excluded.received_seq",
                (self._node_id(peer), acked_seq, received_seq),
            )

    def chunk_map(self, content_hash: bytes) -> list[tuple[bytes, int, int]] | None:
        row = self._conn.execute("SELECT chunks FROM chunk_maps WHERE hash = ?", (content_hash,)).fetchone()
        if row is None:
            return None
        flat = msgspec.msgpack.decode(row[0], type=list[bytes | int])
        return [(flat[i], flat[i + 1], flat[i + 2]) for i in range(0, len(flat), 3)]  # type: ignore[misc]

    def put_chunk_maps(self, maps: dict[bytes, list[tuple[bytes, int, int]]]) -> None:
        if not maps:
            return
        rows = [(h, msgspec.msgpack.encode([x for c in chunks for x in c])) for h, chunks in maps.items()]
        with self._write():
            self._conn.executemany("INSERT OR REPLACE INTO chunk_maps (hash, chunks) VALUES (?, ?)", rows)

    def prune_chunk_maps(self) -> None:
        """Drop the maps of content no live record holds any more."""
        with self._write():
            self._conn.execute(
                "DELETE FROM chunk_maps WHERE hash NOT IN "
                "(SELECT hash FROM records WHERE deleted = 0 AND hash IS NOT NULL)"
            )

    def db_id(self) -> str:
        return str(self.get_meta("db_id"))

    def pin(self, peer: str) -> str | None:
        """The certificate fingerprint pinned for ``peer``, if any."""
        node_id = self._nodes.known(peer)
        if node_id is None:
            return None
        row = self._conn.execute("SELECT fingerprint FROM peers WHERE node_id = ?", (node_id,)).fetchone()
        return None if row is None else row[0]

    def set_pin(self, peer: str, fingerprint: str, now_ns: int, how: str | None = None) -> None:
        """Pin ``fingerprint`` for ``peer``; ``how`` says how it came to be trusted (for people)."""
        with self._write():
            self._conn.execute(
                "INSERT INTO peers (node_id, fingerprint, pinned_at_ns, pinned_how) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (node_id) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "pinned_at_ns = excluded.pinned_at_ns, pinned_how = excluded.pinned_how",
                (self._node_id(peer), fingerprint, now_ns, how),
            )

    def pins(self) -> list[tuple[str, str, int, str | None]]:
        """Every pinned fingerprint: (peer, fingerprint, pinned_at_ns, how), by peer name."""
        rows = self._conn.execute(
            "SELECT nodes.name, peers.fingerprint, peers.pinned_at_ns, peers.pinned_how FROM peers "
            "JOIN nodes ON nodes.id = peers.node_id WHERE peers.fingerprint IS NOT NULL ORDER BY nodes.name"
        ).fetchall()
        return [(str(n), str(fp), int(at or 0), how) for n, fp, at, how in rows]

    def reset_pin(self, peer: str) -> bool:
        """Forget ``peer``'s pinned fingerprint (``shoal trust --reset``); True if one was pinned."""
        had = self.pin(peer) is not None
        node_id = self._nodes.known(peer)
        if node_id is not None:
            with self._write():
                self._conn.execute(
                    "UPDATE peers SET fingerprint = NULL, pinned_at_ns = NULL, pinned_how = NULL WHERE node_id = ?",
                    (node_id,),
                )
        return had

    def forget_watermarks(self, peer: str) -> None:
        """The peer's database was replaced: read its whole index again."""
        acked, _ = self.watermarks(peer)
        self.set_watermarks(peer, acked, 0)

    def record_conflict(self, path: str, peer: str, record: bytes, now_ns: int) -> None:
        with self._write():
            self._conn.execute(
                "INSERT OR REPLACE INTO conflicts (path, peer, record, detected_ns) VALUES (?, ?, ?, ?)",
                (_encode_path(path), peer, record, now_ns),
            )

    def conflicts(self) -> list[tuple[str, str, bytes, int]]:
        """(path, peer, peer's record, detected_ns) for every open conflict."""
        rows = self._conn.execute("SELECT path, peer, record, detected_ns FROM conflicts ORDER BY path, peer")
        return [(_decode_path(r[0]), r[1], r[2], r[3]) for r in rows.fetchall()]

    def conflicts_on(self, paths: Iterable[str]) -> dict[str, dict[str, tuple[bytes, str | None]]]:
        """path -> peer -> (peer's record, keep) for the open conflicts among ``paths``."""
        out: dict[str, dict[str, tuple[bytes, str | None]]] = {}
        encoded = [_encode_path(p) for p in paths]
        for i in range(0, len(encoded), 500):
            chunk = encoded[i : i + 500]
            rows = self._conn.execute(
                f"SELECT path, peer, record, keep FROM conflicts WHERE path IN ({','.join('?' * len(chunk))})",
                chunk,
            )
            for raw, peer, record, keep in rows.fetchall():
                out.setdefault(_decode_path(raw), {})[peer] = (record, keep)
        return out

    def clear_conflicts(self, pairs: Iterable[tuple[str, str]]) -> None:
        with self._write():
            self._conn.executemany(
                "DELETE FROM conflicts WHERE path = ? AND peer = ?", [(_encode_path(p), peer) for p, peer in pairs]
            )

    def set_conflict_keep(self, path: str, peer: str) -> bool:
        """Mark the conflict on ``path`` with ``peer`` to be settled by taking the peer's version."""
        with self._write():
            cur = self._conn.execute(
                "UPDATE conflicts SET keep = 'remote' WHERE path = ? AND peer = ?", (_encode_path(path), peer)
            )
        return cur.rowcount > 0

    def add_kept(self, kept: KeptVersion) -> None:
        with self._write():
            self._conn.execute(
                "INSERT INTO kept_versions (path, real, author, lost_to, reason, kept_ns, kind, hash, size, location)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    _encode_path(kept.path),
                    _encode_path(kept.real),
                    kept.author,
                    kept.lost_to,
                    kept.reason,
                    kept.kept_ns,
                    kept.kind,
                    kept.hash,
                    kept.size,
                    kept.location,
                ),
            )

    def kept_versions(self) -> list[KeptVersion]:
        rows = self._conn.execute(
            "SELECT path, real, author, lost_to, reason, kept_ns, kind, hash, size, location, id"
            " FROM kept_versions ORDER BY id"
        )
        return [
            KeptVersion(_decode_path(r[0]), _decode_path(r[1]), r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10])
            for r in rows.fetchall()
        ]

    # -- hints and forced paths (the csync2 command line) --------------------------------------------

    def add_marks(self, table: str, paths: Iterable[tuple[str, bool]]) -> None:
        """Add ``(path, recursive)`` rows to ``hints`` or ``forced`` (a recursive row stays recursive)."""
        assert table in _MARK_TABLES
        with self._write():
            self._conn.executemany(
                f"INSERT INTO {table} (path, recursive) VALUES (?, ?) "
                "ON CONFLICT (path) DO UPDATE SET recursive = max(recursive, excluded.recursive)",
                [(_encode_path(p), int(r)) for p, r in paths],
            )

    def marks(self, table: str) -> list[tuple[str, bool]]:
        """Every ``(path, recursive)`` row of ``hints`` or ``forced``, by path."""
        assert table in _MARK_TABLES
        rows = self._conn.execute(f"SELECT path, recursive FROM {table} ORDER BY path").fetchall()
        return [(_decode_path(r[0]), bool(r[1])) for r in rows]

    def drop_marks(self, table: str, paths: Iterable[str]) -> None:
        assert table in _MARK_TABLES
        with self._write():
            self._conn.executemany(f"DELETE FROM {table} WHERE path = ?", [(_encode_path(p),) for p in paths])

    def set_unsettled(self, peer: str, rows: Iterable[tuple[str, int]]) -> None:
        """Remember that ``peer`` refused our versions ``(path, seq)`` as conflicts; forget refusals of
        versions we no longer hold."""
        with self._write():
            self._conn.execute(
                "DELETE FROM unsettled WHERE seq IS NOT (SELECT r.seq FROM records r WHERE r.path = unsettled.path)"
            )
            self._conn.executemany(
                "INSERT OR REPLACE INTO unsettled (path, peer, seq) VALUES (?, ?, ?)",
                [(_encode_path(p), peer, seq) for p, seq in rows],
            )

    def unsettled(self) -> list[tuple[str, str]]:
        """``(path, peer)`` of refused versions that are still ours (a newer record retires a refusal)."""
        rows = self._conn.execute(
            "SELECT u.path, u.peer FROM unsettled u JOIN records r ON r.path = u.path AND r.seq = u.seq"
        ).fetchall()
        return sorted((_decode_path(r[0]), r[1]) for r in rows)

    # -- plumbing ------------------------------------------------------------------------------------

    def _write(self) -> _WriteTxn:
        if self.readonly:
            raise StateError(f"state database {self.path} is open read-only")
        return _WriteTxn(self._conn, self)


@dataclass(frozen=True, slots=True)
class KeptVersion:
    """A version this node replaced because of a conflict decision, and where its copy is."""

    path: str
    real: str
    author: str
    lost_to: str
    reason: str
    kept_ns: int
    kind: int
    hash: bytes | None
    size: int
    location: str
    id: int = 0


K = TypeVar("K")
V = TypeVar("V")
_VECTOR_CACHE = 4096


def _remember(cache: dict[K, V], key: K, value: V) -> None:
    """A bounded cache: emptied when full (the vectors of one burst fit many times over)."""
    if len(cache) >= _VECTOR_CACHE:
        cache.clear()
    cache[key] = value


class _Interned:
    """A small table that names strings by integer ids (``id INTEGER PRIMARY KEY, <column> TEXT UNIQUE``),
    cached both ways. Another connection (a one-shot command beside a daemon) may add rows at any time:
    a string or id missing from the cache reloads it first; a string still unknown is inserted (inside
    the caller's write transaction)."""

    def __init__(self, conn: sqlite3.Connection, table: str, column: str) -> None:
        self._conn = conn
        self._table = table
        self._column = column
        self._ids: dict[str, int] = {}
        self._names: dict[int, str] = {}
        self.load()

    def load(self) -> None:
        self._ids.clear()
        self._names.clear()
        for row_id, name in self._conn.execute(f"SELECT id, {self._column} FROM {self._table}"):
            self._ids[name] = row_id
            self._names[row_id] = name

    def known(self, name: str) -> int | None:
        row_id = self._ids.get(name)
        if row_id is None:  # another connection (a one-shot command beside the daemon) may have added it
            self.load()
            row_id = self._ids.get(name)
        return row_id

    def id_of(self, name: str) -> int:
        row_id = self.known(name)
        if row_id is None:
            cur = self._conn.execute(f"INSERT INTO {self._table} ({self._column}) VALUES (?)", (name,))
            row_id = int(cur.lastrowid or 0)
            self._ids[name] = row_id
            self._names[row_id] = name
        return row_id

    def name(self, row_id: int) -> str | None:
        if row_id not in self._names:
            self.load()
        return self._names.get(row_id)

    def name_strict(self, row_id: int) -> str:
        found = self.name(row_id)
        if found is None:
            raise StateError(f"state database refers to unknown {self._table} id {row_id}")
        return found


class _WriteTxn:
    def __init__(self, conn: sqlite3.Connection, db: StateDB) -> None:
        self._conn = conn
        self._db = db

    def __enter__(self) -> None:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as e:
            raise StateError(f"state database {self._db.path} is busy: {e}") from None

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self._conn.execute("COMMIT")
                return
            except sqlite3.Error as e:
                self._conn.execute("ROLLBACK")
                self._db.reload_nodes()
                raise StateError(f"cannot write state database {self._db.path}: {e}") from None
        self._conn.execute("ROLLBACK")
        self._db.reload_nodes()


def _refuse_foreign(conn: sqlite3.Connection, path: str) -> None:
    """Never touch someone else's database (csync2's .db3 under the same name): not even its journal mode."""
    if int(conn.execute("PRAGMA user_version").fetchone()[0]) != 0:
        return
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
    if tables:
        raise StateError(
            f"{path} is not a shoal state database (it holds tables {', '.join(tables[:5])}"
            f"{', ...' if len(tables) > 5 else ''}; csync2's own database?); it was not changed. "
            "Point shoal at another file or directory."
        )


def _migrate(conn: sqlite3.Connection, path: str, readonly: bool) -> None:
    migrations = _migrations()
    latest = migrations[-1][0]
    current = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if current > latest:
        raise StateError(
            f"state database {path} has schema version {current}, newer than this shoal understands "
            f"({latest}); it was written by a newer shoal. Upgrade shoal; the database was not changed."
        )
    pending = [m for m in migrations if m[0] > current]
    if not pending:
        return
    if readonly:
        raise StateError(
            f"state database {path} needs an upgrade to schema {latest}; run a shoal command "
            "that writes (e.g. 'shoal check') first"
        )
    for version, name, sql in pending:
        try:
            conn.executescript(f"BEGIN IMMEDIATE;\n{sql}\nPRAGMA user_version = {version};\nCOMMIT;")
        except sqlite3.Error as e:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StateError(f"cannot apply schema migration {name} to {path}: {e}") from None
