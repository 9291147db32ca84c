-- 0003: settling conflicts, and keeping what lost.
--
-- conflicts.keep: an admin's 'shoal resolve PATH --keep PEER' for this row: the next exchange with that
-- peer takes its version (as a new version of ours, so it wins everywhere). NULL = still open.
ALTER TABLE conflicts ADD COLUMN keep TEXT CHECK (keep IS NULL OR keep = 'remote');

-- Versions this node replaced because of a conflict decision (a policy, a slave taking its master's
-- copy, an admin's resolve): where the copy is (the group's backup-directory or the state dir's
-- conflict store), what it was and what it lost to. 'shoal conflicts' lists them.
CREATE TABLE kept_versions (
    id       INTEGER PRIMARY KEY,
    path     BLOB NOT NULL,     -- logical path (%prefix%/...)
    real     BLOB NOT NULL,     -- where it lived on this node
    author   TEXT NOT NULL,     -- the node that made the lost version (the newest entry of its vector)
    lost_to  TEXT NOT NULL,     -- the peer whose version replaced it
    reason   TEXT NOT NULL,
    kept_ns  INTEGER NOT NULL,
    kind     INTEGER NOT NULL,
    hash     BLOB,              -- BLAKE3 of the content (files)
    size     INTEGER NOT NULL,
    location TEXT NOT NULL      -- the copy
) STRICT;
CREATE INDEX kept_versions_path ON kept_versions (path);
