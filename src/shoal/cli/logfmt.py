"""Log line formats for the daemon: text (default), key=value (logfmt) or JSON, one event per line."""

from __future__ import annotations

import json
import logging
import time


class _KeyValue(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg += "\n" + self.formatException(record.exc_info)
        quoted = '"' + msg.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z"
        return f"ts={ts} level={record.levelname.lower()} logger={record.name} msg={quoted}"


class _Json(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "ts": record.created,
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def formatter(kind: str) -> logging.Formatter:
    if kind == "kv":
        return _KeyValue()
    if kind == "json":
        return _Json()
    return logging.Formatter("%(asctime)s.%(msecs)03d %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
