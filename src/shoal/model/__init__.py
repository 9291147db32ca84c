"""Pure domain model: path patterns, path names, records and version vectors. No I/O here."""
