"""Log lines: one record is one line, whatever its values hold; secrets stay out."""

from __future__ import annotations

import json
import logging
import re
import sys

import pytest

from corral.logs import JsonFormatter, TextFormatter, escape

# What a terminal or a log reader must never get raw: C0, DEL, C1 and the Unicode line and
# paragraph separators (JavaScript and many viewers break lines on them).
RAW_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _record(msg: str = "ready", args: tuple[object, ...] | None = None, exc_info: object = None,
            **extra: object) -> logging.LogRecord:
    record = logging.LogRecord("corral.pool", logging.INFO, __file__, 1, msg, args, exc_info)  # type: ignore[arg-type]
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def _fields(line: str) -> str:
    """What follows the timestamp and level of a text line: logger, message and fields."""
    return line.split(" ", 2)[2].lstrip()


@pytest.mark.parametrize(("value", "shown"), [
    ("debian-12", "vm=debian-12"),
    ("ünïcödé", "vm=ünïcödé"),
    ("", 'vm=""'),
    ("two words", 'vm="two words"'),
    ('say "hi"', r'vm="say \"hi\""'),
    ("a=b", 'vm="a=b"'),
    ("back\\slash", r'vm="back\\slash"'),
    ("abc\nFAKE INFO line", r'vm="abc\nFAKE INFO line"'),
    ("abc\nFAKE", r'vm="abc\nFAKE"'),
    ("cr\rlf", r'vm="cr\rlf"'),
    ("tab\there", r'vm="tab\there"'),
    ("\x1b[31mred", r'vm="\x1b[31mred"'),
    ("nul\x00", r'vm="nul\x00"'),
    ("del\x7f", r'vm="del\x7f"'),
    ("c1\x85\x9b", r'vm="c1\x85\x9b"'),
    ("line\u2028sep", r'vm="line\u2028sep"'),
    ("para\u2029sep", r'vm="para\u2029sep"'),
    (42, "vm=42"),
])
def test_text_values_are_escaped_and_quoted_when_they_need_it(value: object, shown: str) -> None:
    line = TextFormatter().format(_record(vm=value))
    assert _fields(line) == f"corral.pool ready {shown}"
    assert "\n" not in line and not RAW_CONTROL.search(line)


@pytest.mark.parametrize(("message", "shown"), [
    ("ready", "ready"),
    ("not found: abc\n2026-01-01T00:00:00.000Z INFO  corral.api forged",
     r"not found: abc\n2026-01-01T00:00:00.000Z INFO  corral.api forged"),
    ("bell\x07 esc\x1b[2J nul\x00", r"bell\x07 esc\x1b[2J nul\x00"),
    ("wide\u2028\u2029", r"wide\u2028\u2029"),
])
def test_text_message_is_escaped(message: str, shown: str) -> None:
    line = TextFormatter().format(_record(message))
    assert _fields(line) == f"corral.pool {shown}"


def test_text_message_arguments_are_escaped() -> None:
    line = TextFormatter().format(_record("on-demand clones wait: %s", ("queue\nfull\x1b",)))
    assert _fields(line) == r"corral.pool on-demand clones wait: queue\nfull\x1b"


@pytest.mark.parametrize(("text", "escaped"), [
    ("plain", "plain"),
    ("a\nb", r"a\nb"),
    ("\x00\x1f\x7f\x80\x9f", r"\x00\x1f\x7f\x80\x9f"),
    ("\u2028\u2029\u2027\u202a", r"\u2028\u2029" + "\u2027\u202a"),
    ("back\\slash", "back\\slash"),  # outside quotes a backslash stays as it is
])
def test_escape(text: str, escaped: str) -> None:
    assert escape(text) == escaped


def test_a_traceback_stays_below_its_record_and_forges_nothing() -> None:
    try:
        raise ValueError("bad name abc\n2026-01-01T00:00:00.000Z ERROR corral.api forged\x1b[0m\u2028end")
    except ValueError:
        exc_info = sys.exc_info()
    text = TextFormatter().format(_record("unexpected error", exc_info=exc_info, path="/x"))
    first, *rest = text.split("\n")
    assert first.endswith("unexpected error path=/x")
    assert rest and all(line.startswith("  ") for line in rest), "continuation lines are indented"
    assert "Traceback (most recent call last):" in text
    assert r"bad name abc\n2026-01-01T00:00:00.000Z ERROR corral.api forged\x1b[0m\u2028end" in text
    assert not RAW_CONTROL.search(text.replace("\n", ""))


@pytest.mark.parametrize("value", ["abc\nFAKE", "\x1b[31m", "nul\x00", "del\x7f", "c1\x85", "ls\u2028", "ps\u2029"])
def test_json_is_one_line_with_every_control_character_escaped(value: str) -> None:
    line = JsonFormatter().format(_record(value, vm=value))
    assert "\n" not in line and not RAW_CONTROL.search(line)
    doc = json.loads(line)
    assert doc["msg"] == value and doc["vm"] == value


def test_json_exception_is_escaped_too() -> None:
    try:
        raise ValueError("x\u2028\x7f")
    except ValueError:
        exc_info = sys.exc_info()
    line = JsonFormatter().format(_record("failed", exc_info=exc_info))
    assert "\n" not in line and not RAW_CONTROL.search(line)
    assert "ValueError: x\u2028\x7f" in json.loads(line)["exception"]


def test_secrets_are_redacted_in_both_formats() -> None:
    text = TextFormatter().format(_record(password="hunter2", auth_token="t0k", pool="p"))
    assert "hunter2" not in text and "t0k" not in text and "password=<redacted>" in text
    doc = json.loads(JsonFormatter().format(_record(secret="s3cret")))
    assert doc["secret"] == "<redacted>"
