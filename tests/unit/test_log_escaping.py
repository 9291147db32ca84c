"""Log escaping (shoal.logsafe): a peer's string cannot break a record's line or smuggle a control
character, in any format shoal logs in (the daemon's text, kv and json, the CLI's, shoal-csync2's)."""

from __future__ import annotations

import ast
import contextlib
import io
import json
import logging
import logging.handlers
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoal.cli.context import setup_logging
from shoal.cli.logfmt import formatter
from shoal.compat import main as compat_main
from shoal.compat.argv import Invocation
from shoal.logsafe import TRACE_INDENT, SafeFormatter, escape, escape_lines

SRC = Path(__file__).resolve().parents[2] / "src" / "shoal"
FORGED = "2026-12-04 15:00:00.000 INFO shoal.engine.handshake: authenticated alpha from 127.0.0.1 (groups g)"
RAW_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

# (what a peer sends, how it reads in the log)
HOSTILE = [
    ("x\n" + FORGED, "x\\x0a" + FORGED),
    ("a\rb", "a\\x0db"),
    ("a\r\n" + FORGED, "a\\x0d\\x0a" + FORGED),
    ("\x1b[2J\x1b[31mred\x1b[0m", "\\x1b[2J\\x1b[31mred\\x1b[0m"),
    ("\x1b]0;title\x07", "\\x1b]0;title\\x07"),
    ("nul\x00name", "nul\\x00name"),
    ("tab\there\x0bv\x0cf", "tab\\x09here\\x0bv\\x0cf"),
    ("del\x7f", "del\\x7f"),
    ("nel\x85csi\x9b31m", "nel\\x85csi\\x9b31m"),
    ("line\u2028para\u2029", "line\\u2028para\\u2029"),
    ("evil\u202etxt.exe", "evil\\u202etxt.exe"),
    ("\u202a\u202b\u202c\u202d\u2066\u2067\u2068\u2069", "\\u202a\\u202b\\u202c\\u202d\\u2066\\u2067\\u2068\\u2069"),
    ("bad\udcffbyte", "bad\\udcffbyte"),  # os.fsdecode of b"bad\xffbyte"
    ("\\x0a looks escaped", "\\\\x0a looks escaped"),
    ("\\u2028 and \\\\ too", "\\\\u2028 and \\\\\\\\ too"),
    ("back\\slash\n", "back\\\\slash\\x0a"),
]
PLAIN = ["", "a/b c.txt", "%d%/ünïcödé/日本語 ✓", "quote\"s and 'apostrophes'", "100% = {x}"]


def unescape(text: str) -> str:
    """The inverse of ``escape``, for the round trip."""
    return re.sub(
        r"\\(\\|x[0-9a-f]{2}|u[0-9a-f]{4})",
        lambda mt: "\\" if mt.group(1) == "\\" else chr(int(mt.group(1)[1:], 16)),
        text,
    )


@pytest.mark.parametrize(("raw", "logged"), HOSTILE)
def test_escape_table(raw: str, logged: str) -> None:
    assert escape(raw) == logged
    assert unescape(logged) == raw


@pytest.mark.parametrize("text", PLAIN)
def test_plain_text_is_unchanged(text: str) -> None:
    assert escape(text) == text


def test_an_escape_cannot_be_forged() -> None:
    # the peer's text spelling an escape reads differently from the character it spells
    assert escape("\\x0a") != escape("\n")
    assert escape("\\udcff") != escape("\udcff")


@given(st.text(st.characters(blacklist_categories=())))
def test_escape_round_trips_and_leaves_nothing_raw(text: str) -> None:
    out = escape(text)
    assert not RAW_UNSAFE.search(out)
    assert unescape(out) == text
    out.encode("utf-8")  # no lone surrogate left: a strict stream takes it


def test_escape_lines_keeps_only_the_line_breaks() -> None:
    assert escape_lines("one\x1b[0m\ntwo\r\n") == "one\\x1b[0m\ntwo\\x0d\n"


# -- through every formatter ----------------------------------------------------------------------------

TEXT_START = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} WARNING shoal\.engine\.handshake: ")
FORMATS = {
    "daemon text": formatter("text"),
    "daemon kv": formatter("kv"),
    "daemon json": formatter("json"),
    "cli": SafeFormatter("%(levelname)s %(name)s: %(message)s"),
    "csync2 stderr": SafeFormatter("%(message)s"),
    "csync2 syslog": SafeFormatter("shoal-csync2[%(process)d]: %(message)s"),
}


def make_record(name: str, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise ValueError(f"bad frame from {name}")
        except ValueError:
            exc_info = sys.exc_info()
    return logging.LogRecord(
        "shoal.engine.handshake", logging.WARNING, __file__, 1, "refused %s at %s: %s", (name, "127.0.0.9", "no"),
        exc_info,
    )  # fmt: skip


KV_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|[^" ]*)(?: |$)')


def kv_fields(line: str) -> dict[str, str]:
    """A logfmt line's fields; a quoted value is a JSON string literal (``\\\\``, ``\\"``, ``\\n``)."""
    fields, end = {}, 0
    for mt in KV_FIELD.finditer(line):
        assert mt.start() == end, f"unparseable at {end}: {line!r}"
        key, value = mt.groups()
        fields[key] = json.loads(value) if value.startswith('"') else value
        end = mt.end()
    assert end == len(line), f"unparseable at {end}: {line!r}"
    return fields


def message_of(kind: str, line: str) -> str:
    """What a reader of the ``kind`` format takes for the record's message."""
    if kind == "daemon json":
        return str(json.loads(line)["msg"])
    if kind == "daemon kv":
        return kv_fields(line)["msg"]
    return line.split(": ", 1)[1] if kind != "csync2 stderr" else line


@pytest.mark.parametrize("kind", FORMATS)
@pytest.mark.parametrize(("raw", "logged"), HOSTILE + [(p, p) for p in PLAIN])
def test_every_format_logs_one_escaped_line(kind: str, raw: str, logged: str) -> None:
    line = FORMATS[kind].format(make_record(raw))
    assert "\n" not in line and not RAW_UNSAFE.search(line), line
    line.encode("utf-8")
    assert message_of(kind, line) == f"refused {logged} at 127.0.0.9: no"
    if kind == "daemon text":
        assert TEXT_START.match(line), line


@pytest.mark.parametrize("kind", FORMATS)
def test_tracebacks_stay_ours(kind: str) -> None:
    raw = "x\n" + FORGED + "\x1b[31m\udcff"
    out = FORMATS[kind].format(make_record(raw, exc=True))
    assert not RAW_UNSAFE.search(out.replace("\n", "")), out
    if kind in ("daemon json", "daemon kv"):  # one line, the traceback quoted in a field of its own
        assert "\n" not in out
        fields = json.loads(out) if kind == "daemon json" else kv_fields(out)
        assert fields["msg"] == f"refused {escape(raw)} at 127.0.0.9: no"
        assert fields["exc"].startswith("Traceback (most recent call last):\n")
        assert f"ValueError: bad frame from x\n{escape(FORGED)}\\x1b[31m\\udcff" in fields["exc"]
        return
    first, *rest = out.split("\n")  # multi-line, but only the first line starts at the margin
    assert message_of(kind, first) == f"refused {escape(raw)} at 127.0.0.9: no"
    assert rest[0] == TRACE_INDENT + "Traceback (most recent call last):"
    assert all(line.startswith(TRACE_INDENT) for line in rest), out
    assert rest[-2:] == [
        TRACE_INDENT + "ValueError: bad frame from x",
        TRACE_INDENT + escape(FORGED) + "\\x1b[31m\\udcff",
    ]


def test_the_shared_record_is_not_changed() -> None:
    record = make_record("a\nb", exc=True)
    for f in FORMATS.values():
        f.format(record)
    assert record.getMessage() == "refused a\nb at 127.0.0.9: no"
    assert logging.Formatter("%(message)s").format(record).startswith("refused a\nb at")


class StrictStream(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler on a strict UTF-8 stream that fails the test instead of printing a logging error."""

    def __init__(self) -> None:
        self.raw = io.BytesIO()
        super().__init__(io.TextIOWrapper(self.raw, encoding="utf-8", errors="strict", write_through=True))
        self.errors: list[BaseException | None] = []

    def handleError(self, record: logging.LogRecord) -> None:
        self.errors.append(sys.exc_info()[1])


@pytest.mark.parametrize("kind", FORMATS)
def test_an_undecodable_path_never_crashes_the_logger(kind: str) -> None:
    handler = StrictStream()
    handler.setFormatter(FORMATS[kind])
    log = logging.getLogger("shoal.test.logsafe")
    log.addHandler(handler)
    log.propagate = False
    try:
        path = b"%d%/caf\xe9/\xff\xfe".decode("utf-8", "surrogateescape")
        log.warning("refused %s from alpha", path)
        log.warning("failed on %s", path, exc_info=OSError(5, "EIO", path))
    finally:
        log.removeHandler(handler)
        log.propagate = True
    assert handler.errors == []
    written = handler.raw.getvalue().decode("utf-8")
    records = [line for line in written.split("\n") if line and not line.startswith(TRACE_INDENT)]
    assert [message_of(kind, line) for line in records] == [
        "refused %d%/caf\\udce9/\\udcff\\udcfe from alpha",
        "failed on %d%/caf\\udce9/\\udcff\\udcfe",
    ]


# -- every handler shoal sets up formats through SafeFormatter ------------------------------------------


@contextlib.contextmanager
def bare_root() -> Iterator[list[logging.Handler]]:
    """A root logger without handlers (basicConfig adds none otherwise); yields those added meanwhile,
    which are removed afterwards, and the handlers that were there (pytest's) are put back."""
    root = logging.getLogger()
    before, level = list(root.handlers), root.level
    for h in before:
        root.removeHandler(h)
    added: list[logging.Handler] = []
    try:
        yield added
    finally:
        added.extend(root.handlers)
        for h in added:
            root.removeHandler(h)
        for h in before:
            root.addHandler(h)
        root.setLevel(level)


def test_cli_handler_is_safe() -> None:
    with bare_root() as added:
        setup_logging(1)
    assert added and all(isinstance(h.formatter, SafeFormatter) for h in added)


class FakeSysLog(logging.Handler):
    def __init__(self, address: str) -> None:
        super().__init__()


@pytest.mark.parametrize("syslog", [False, True])
def test_csync2_handlers_are_safe(syslog: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(logging.handlers, "SysLogHandler", FakeSysLog)
    monkeypatch.setattr(os.path, "exists", lambda p: p == "/dev/log")
    with bare_root() as added:
        compat_main._setup_logging(Invocation(mode="check", verbose=1, syslog=syslog))
    assert len(added) == 1 and isinstance(added[0].formatter, SafeFormatter)
    assert isinstance(added[0], FakeSysLog) == syslog


def test_no_other_log_setup_in_src() -> None:
    """A formatter made anywhere but logsafe must be a SafeFormatter; basicConfig gets its handlers."""
    for f in sorted(SRC.rglob("*.py")):
        for node in ast.walk(ast.parse(f.read_text(), str(f))):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            where = f"{f.relative_to(SRC)}:{node.lineno}"
            assert name not in ("Formatter", "dictConfig", "fileConfig"), f"{where}: a formatter that does not escape"
            if name == "basicConfig":
                assert {k.arg for k in node.keywords} & {"handlers"}, f"{where}: basicConfig makes its own formatter"
                assert not {k.arg for k in node.keywords} & {"format", "filename", "stream"}, where
