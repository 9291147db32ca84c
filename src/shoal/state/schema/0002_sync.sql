-- 0002: what replication needs besides records and watermarks.
--
-- Conflicts: a peer's version that could not be reconciled with ours. Both stay where they are (ours
-- here, theirs on the peer) until a policy or 'shoal resolve' settles it; the row keeps the peer's
-- record (msgpack of the wire record) so the conflict can be shown and settled later. One row per
-- (path, peer): a newer conflicting version from the same peer replaces the older row.
CREATE TABLE conflicts (
    path        BLOB NOT NULL,
    peer        TEXT NOT NULL,
    record      BLOB NOT NULL,
    detected_ns INTEGER NOT NULL,
    PRIMARY KEY (path, peer)
) STRICT, WITHOUT ROWID;

-- Where a record's version came from: the database id of the peer it was applied from unchanged.
-- Such a record is never sent back to that database (the peer has it, or something newer): this is
-- what keeps a large push from echoing back from every peer. Merged and local versions have no origin.
-- A reinstalled peer has a new database id, so it does get everything back.
CREATE TABLE sources (
    id    INTEGER PRIMARY KEY,
    db_id TEXT NOT NULL UNIQUE
) STRICT;
ALTER TABLE records ADD COLUMN origin INTEGER REFERENCES sources (id);

-- Chunk maps of large files (FastCDC chunks named by truncated BLAKE3), by content hash: what a delta
-- transfer needs on both ends. Computed when a large file is scanned or received; maps that no live
-- record uses any more are pruned. chunks = msgpack [digest, offset, length, ...].
CREATE TABLE chunk_maps (
    hash   BLOB PRIMARY KEY,
    chunks BLOB NOT NULL
) STRICT, WITHOUT ROWID;

-- A random id for this database, so that a peer can tell when our database was replaced (and our
-- sequence numbers restarted) and must read our whole index again.
INSERT INTO meta (key, value) VALUES ('db_id', lower(hex(randomblob(16))));
