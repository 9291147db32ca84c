"""The csync2 2.0 command line on top of shoal (``shoal-csync2``)."""
