-- 0001: the first schema of a shoal state database.
--
-- Theory of operation. One row per managed path this node knows of (its record), keyed by the logical
-- path name that all nodes share. Every change to a row takes the next local sequence number (meta
-- 'last_seq'), so "what changed since N" is an index range scan, and per peer we only keep two
-- watermarks. State is O(files) + O(peers), never O(files x peers).

-- Small key/value facts about this database: node name, last sequence number, creation time.
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value ANY
) STRICT;

-- Node names, numbered locally so version vectors stay a few bytes per entry.
CREATE TABLE nodes (
    id   INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
) STRICT;

-- One record per logical path. 'path' is the name as bytes (Linux file names need not be UTF-8).
CREATE TABLE records (
    path     BLOB PRIMARY KEY,
    kind     INTEGER NOT NULL CHECK (kind BETWEEN 0 AND 5), -- 0 file, 1 dir, 2 symlink, 3 fifo, 4 chr, 5 blk
    size     INTEGER NOT NULL,          -- bytes (files)
    mode     INTEGER NOT NULL,          -- permission bits (S_IMODE)
    uid      INTEGER NOT NULL,
    gid      INTEGER NOT NULL,
    user     TEXT,                      -- owner name, when the uid has one here
    grp      TEXT,                      -- group name, when the gid has one here
    mtime_ns INTEGER NOT NULL,
    hash     BLOB,                      -- BLAKE3-256 of the content (files)
    target   BLOB,                      -- symlink target (symlinks)
    rdev     INTEGER NOT NULL,          -- device number (chr/blk)
    vector   BLOB NOT NULL,             -- version vector: msgpack [node_id, counter, ...]
    base     BLOB,                      -- content hash this version was derived from
    deleted  INTEGER NOT NULL CHECK (deleted IN (0, 1)), -- 1 = tombstone
    seq      INTEGER NOT NULL,          -- local sequence number of the last change
    ctime_ns INTEGER NOT NULL,          -- local change detection only
    inode    INTEGER NOT NULL,          -- local change detection only
    recheck  INTEGER NOT NULL,          -- 1 = re-read at the next scan (changed while or just before scanning)
    sig      INTEGER NOT NULL           -- digest of the change-detection fields (model/records.py
                                        -- stat_signature); 0 = read again, -1 = tombstone. A no-op scan
                                        -- loads only (path, sig) and compares one integer per file.
) STRICT, WITHOUT ROWID;

CREATE INDEX records_by_seq ON records (seq);

-- Per peer: the highest of our sequence numbers it acknowledged, the highest of its sequence numbers we
-- received, and its pinned certificate fingerprint (trust on first use).
CREATE TABLE peers (
    node_id      INTEGER PRIMARY KEY REFERENCES nodes (id),
    acked_seq    INTEGER NOT NULL DEFAULT 0,
    received_seq INTEGER NOT NULL DEFAULT 0,
    fingerprint  TEXT,
    pinned_at_ns INTEGER
) STRICT;
