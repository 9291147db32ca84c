"""How content moves: whole files, or content-defined-chunk deltas for large modified files."""
