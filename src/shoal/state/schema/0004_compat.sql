-- 0004: what the csync2 command line (shoal-csync2) keeps beyond records and watermarks.
--
-- Hints: real paths an admin or a watcher script named with 'csync2 -h [-r]'; a later 'csync2 -c'
-- without paths checks exactly these (and below them when recursive), then drops them.
CREATE TABLE hints (
    path      BLOB PRIMARY KEY,   -- real path, as given (absolute)
    recursive INTEGER NOT NULL CHECK (recursive IN (0, 1))
) STRICT, WITHOUT ROWID;

-- Forced paths ('csync2 -f [-r]', or '-F' on a check): at the next update this node's version wins
-- every conflict on them (and below them when recursive). Logical paths (%prefix%/...).
CREATE TABLE forced (
    path      BLOB PRIMARY KEY,
    recursive INTEGER NOT NULL CHECK (recursive IN (0, 1))
) STRICT, WITHOUT ROWID;

-- Unsettled pushes: a peer refused our version of a path as a conflict (csync2's "also marked dirty
-- there"). The row stays while our record still has sequence 'seq': a newer version of ours (after
-- 'csync2 -f') or the peer's version arriving replaces the record and so retires the row.
CREATE TABLE unsettled (
    path BLOB NOT NULL,
    peer TEXT NOT NULL,
    seq  INTEGER NOT NULL,
    PRIMARY KEY (path, peer)
) STRICT, WITHOUT ROWID;
