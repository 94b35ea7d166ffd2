"""Request logs of a real server: a path cannot forge log lines or reach the terminal raw."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator

import pytest

from corral.logs import JsonFormatter, TextFormatter

TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z ")


@pytest.fixture
def handlers() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """What corral's text and JSON handlers write, as ``corral serve`` sets them up."""
    text, as_json = io.StringIO(), io.StringIO()
    root = logging.getLogger()
    added = [logging.StreamHandler(text), logging.StreamHandler(as_json)]
    added[0].setFormatter(TextFormatter())
    added[1].setFormatter(JsonFormatter())
    level = root.level
    root.setLevel(logging.INFO)
    for handler in added:
        root.addHandler(handler)
    yield text, as_json
    for handler in added:
        root.removeHandler(handler)
    root.setLevel(level)


def test_a_path_with_a_newline_or_escape_codes_makes_one_escaped_line(make_server, handlers) -> None:
    text, as_json = handlers
    server = make_server([{"name": "p", "template": "t", "size": 1}], request_logger=True)
    forged = server.root.delete("/api/v3/vm/abc%0aFAKE%20INFO%20line")
    colour = server.root.delete("/api/v3/vm/red%1b[31mX%00%e2%80%a8end")
    assert forged.status_code == 400 and colour.status_code == 400  # not a hostname
    server.stop()

    out = text.getvalue()
    assert "\x1b" not in out and "\x00" not in out and "\u2028" not in out
    lines = [line for line in out.splitlines() if " httpx " not in line]  # the test's own client
    assert all(TIMESTAMP.match(line) or line.startswith("  ") for line in lines), out
    fake = [line for line in lines if "FAKE" in line]
    assert len(fake) == 1 and ' method=DELETE path="/api/v3/vm/abc\\nFAKE INFO line" status=400 ' in fake[0]
    red = [line for line in lines if "red" in line]
    assert len(red) == 1 and r' path="/api/v3/vm/red\x1b[31mX\x00\u2028end" status=400 ' in red[0]

    records = [json.loads(line) for line in as_json.getvalue().split("\n") if line]
    paths = [r["path"] for r in records if r["msg"] == "request"]
    assert "/api/v3/vm/abc\nFAKE INFO line" in paths and "/api/v3/vm/red\x1b[31mX\x00\u2028end" in paths
    assert "\x1b" not in as_json.getvalue() and "\u2028" not in as_json.getvalue()
