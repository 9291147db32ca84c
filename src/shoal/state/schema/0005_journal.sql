-- 0005: the apply journal. A received version is written here before its file is renamed into place,
-- and dropped once its record is stored. If the daemon dies between the two, the next scan finds the
-- file on disk without a matching record: when its content is the journalled version's, the scan
-- stores that version (the peer's vector) instead of taking the file for a local edit, which would
-- have been concurrent with the peer's later changes and could undo a deletion made there.
CREATE TABLE apply_journal (
    path     BLOB PRIMARY KEY,
    kind     INTEGER NOT NULL,
    size     INTEGER NOT NULL,
    mode     INTEGER NOT NULL,
    uid      INTEGER NOT NULL,
    gid      INTEGER NOT NULL,
    user     TEXT,
    grp      TEXT,
    mtime_ns INTEGER NOT NULL,
    hash     BLOB,
    target   BLOB,
    rdev     INTEGER NOT NULL,
    vector   BLOB NOT NULL,
    base     BLOB,
    deleted  INTEGER NOT NULL,
    seq      INTEGER NOT NULL,
    ctime_ns INTEGER NOT NULL,
    inode    INTEGER NOT NULL,
    recheck  INTEGER NOT NULL,
    origin   INTEGER,
    sig      INTEGER NOT NULL,
    t_ns     INTEGER NOT NULL           -- when it was journalled (a full scan drops older entries)
) STRICT, WITHOUT ROWID;
