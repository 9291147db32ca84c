"""The csync2 configuration language and shoal's extensions: tokens -> model -> this node's view.

Pure: files come in through a SourceReader, key file facts through a probe; see fs/config_source.py for
the real ones.
"""
