"""Log records that a peer cannot forge: every handler shoal sets up formats through ``SafeFormatter``.

Owns: escaping the rendered message (``msg % args``) of every record, whatever its call site logs (a
claimed node name before authentication, a received path), so that a record is one line and carries no
raw control character, in every log format. Must not decide formats: the daemon's text, kv and json
live in ``cli/logfmt.py``, the CLI's and shoal-csync2's next to their handlers.

``escape`` writes C0 controls, DEL, C1 controls, lone surrogates (undecodable bytes of a path, from
``os.fsdecode``), the Unicode line and paragraph separators and the bidi embedding, override and
isolate characters as ``\\xNN`` / ``\\uNNNN``, and a backslash as two, so the escaped text shows every
such code point and no text can pass for an escape. A traceback is ours and stays multi-line, but each
of its lines is escaped the same way and indented, so that only a record's first line starts at the
left margin (an exception's message may quote a peer's string).
"""

from __future__ import annotations

import copy
import logging
import re

_UNSAFE = re.compile(r"[\\\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
TRACE_INDENT = "    "


def _escaped(match: re.Match[str]) -> str:
    ch = match.group()
    if ch == "\\":
        return "\\\\"
    cp = ord(ch)
    return f"\\x{cp:02x}" if cp < 0x100 else f"\\u{cp:04x}"


def escape(text: str) -> str:
    """``text`` on one line, with no control, separator or bidi character and no lone surrogate."""
    return _UNSAFE.sub(_escaped, text)


def escape_lines(text: str) -> str:
    """``text`` with each of its lines escaped, the line breaks (``\\n``) kept."""
    return "\n".join(escape(line) for line in text.split("\n"))


class SafeFormatter(logging.Formatter):
    """A ``logging.Formatter`` whose ``%(message)s`` is escaped, and whose traceback and stack lines
    are escaped and indented; the subclasses for other formats build on ``message`` and ``trace``."""

    def message(self, record: logging.LogRecord) -> str:
        return escape(record.getMessage())

    def trace(self, record: logging.LogRecord) -> str | None:
        """The record's traceback and stack, escaped line by line (None if it has neither)."""
        parts = []
        if record.exc_info:
            parts.append(self.formatException(record.exc_info))
        elif record.exc_text:  # rendered elsewhere (a record that crossed a process), escaped all the same
            parts.append(record.exc_text)
        if record.stack_info:
            parts.append(self.formatStack(record.stack_info))
        text = "\n".join(p.rstrip("\n") for p in parts)
        return escape_lines(text) if text else None

    def format(self, record: logging.LogRecord) -> str:
        # A copy: the record is shared by every handler, and another formatter must see it as logged.
        safe = copy.copy(record)
        safe.message = self.message(record)
        if self.usesTime():
            safe.asctime = self.formatTime(record, self.datefmt)
        out = self.formatMessage(safe)
        trace = self.trace(record)
        if trace is not None:
            out += "".join(f"\n{TRACE_INDENT}{line}" for line in trace.split("\n"))
        return out
