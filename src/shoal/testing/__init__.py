"""Helpers shipped for tests and benchmarks: a local multi-node cluster of real daemons."""
