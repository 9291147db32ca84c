"""The helper process behind ``walk.WalkHelper``: ``python -m shoal.fs.walk_helper`` reads shares of a
walk on stdin and writes what it found on stdout, until stdin closes (its owner went away)."""

import sys

from shoal.fs.walk import serve_helper

if __name__ == "__main__":
    serve_helper(sys.stdin.buffer, sys.stdout.buffer)
