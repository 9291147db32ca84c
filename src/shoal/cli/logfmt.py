"""Log line formats for the daemon: text (default), key=value (logfmt) or JSON, one event per line.

Every format is a ``SafeFormatter``: the message is escaped (``shoal.logsafe``) before the format
quotes it, so the message a reader gets back (kv unquoted, JSON decoded) is the text format's message.
"""

from __future__ import annotations

import json
import logging
import time

from shoal.logsafe import SafeFormatter


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


class _KeyValue(SafeFormatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        out = f"ts={ts} level={record.levelname.lower()} logger={record.name} msg={_quoted(self.message(record))}"
        trace = self.trace(record)
        return out if trace is None else f"{out} exc={_quoted(trace)}"


class _Json(SafeFormatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": self.message(record),
        }
        trace = self.trace(record)
        if trace is not None:
            out["exc"] = trace
        return json.dumps(out, ensure_ascii=False)


def formatter(kind: str) -> logging.Formatter:
    if kind == "kv":
        return _KeyValue()
    if kind == "json":
        return _Json()
    return SafeFormatter("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
