"""Logging: one readable line per lifecycle step, or one JSON object per line.

Code logs a short message and puts the facts in ``extra`` (pool, vm, host, duration, ...)::

    log.info("ready", extra={"pool": "debian-12", "vm": "abc", "duration": 1.23})

Text:  ``2026-11-23T14:00:00.123Z INFO  corral.pool ready pool=debian-12 vm=abc duration=1.23s``
JSON:  ``{"ts": "...", "level": "info", "logger": "corral.pool", "msg": "ready", "pool": ...}``
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, Literal

# Attributes every LogRecord has; anything else came in through ``extra``.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime", "taskName", "color_message"}
# Keys whose values must never be written out.
_SECRET_KEYS = ("password", "secret", "token", "authorization")


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
        parts = [_timestamp(record), f"{record.levelname:<5}", record.name, record.getMessage()]
        for key, value in _fields(record).items():
            if value is None:
                continue
            if key == "duration" and isinstance(value, (int, float)):
                value = f"{value:.3f}s"
            text = str(value)
            parts.append(f"{key}={json.dumps(text) if ' ' in text or not text else text}")
        line = " ".join(parts)
        if record.exc_info:
            line += "\n" + self.formatException(record.exc_info)
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
