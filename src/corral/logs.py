"""Logging: one readable line per lifecycle step, or one JSON object per line.

Code logs a short message and puts the facts in ``extra`` (pool, vm, host, duration, ...)::

    log.info("ready", extra={"pool": "debian-12", "vm": "abc", "duration": 1.23})

Text:  ``2026-11-23T14:00:00.123Z INFO  corral.pool ready pool=debian-12 vm=abc duration=1.23s``
JSON:  ``{"ts": "...", "level": "info", "logger": "corral.pool", "msg": "ready", "pool": ...}``

A record is one line whatever its values hold (a hostname in a request path is client input):
in text, control characters (C0, DEL, C1, U+2028, U+2029) in the message and the values are
written as visible escapes (``\\n``, ``\\x1b``, ``\\u2028``), and a value that has any of them, a
space, a quote, a backslash or ``=`` is quoted with ``"`` and ``\\`` escaped. A traceback follows
its record on lines indented by two spaces, so only a record starts a line at column 0. JSON
(``ensure_ascii``) escapes every control character and separator by itself.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
from typing import Any, Literal

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", "color_message"}
# Keys whose values must never be written out.
_SECRET_KEYS = ("password", "secret", "token", "authorization")


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NEEDS_QUOTES = re.compile('[\\s"=\\\\\x00-\x1f\x7f-\x9f\u2028\u2029]')
_SHORT = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _visible(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _SHORT.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape(text: str) -> str:
    """``text`` with every control character (C0, DEL, C1, U+2028, U+2029) as a visible escape."""
    return _CONTROL.sub(_visible, text)


def text_value(text: str) -> str:
    """A field value for a text line: as it is when that is unambiguous, otherwise quoted."""
    if text and not _NEEDS_QUOTES.search(text):
        return text
    return '"' + escape(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'


def _indented(text: str) -> str:
    """Multi-line text (a traceback) for under a record: escaped, each line indented."""
    return "\n".join("  " + escape(line) for line in text.rstrip("\n").split("\n"))


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    out = {}
    for key, value in vars(record).items():
        if key in _STANDARD or key.startswith("_"):
            continue
        out[key] = "<redacted>" if any(s in key.lower() for s in _SECRET_KEYS) else value
    return out


def _timestamp(record: logging.LogRecord) -> str:
    base = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
    return f"{base}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record), f"{record.levelname:<5}", escape(record.name), escape(record.getMessage())]
        for key, value in _fields(record).items():
            if value is None:
                continue
            if key == "duration" and isinstance(value, (int, float)):
                value = f"{value:.3f}s"
            parts.append(f"{escape(key)}={text_value(str(value))}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + _indented(self.formatException(record.exc_info))
        if record.stack_info:
            line += "\n" + _indented(self.formatStack(record.stack_info))
        return line


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _fields(record).items():
            doc[key] = round(value, 4) if isinstance(value, float) else value
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def setup_logging(fmt: Literal["text", "json"] = "text", level: str = "INFO") -> None:
    """Send corral's logs (and uvicorn's) to stderr in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
