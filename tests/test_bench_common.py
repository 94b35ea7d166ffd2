"""What every benchmark shares (corral.bench.common): figures, docs/benchmarks.md tables, the end
of a recorded run, and waiting on a condition."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from corral.bench.cli import finish
from corral.bench.common import (
    after_table,
    append_row,
    command_line,
    format_ratio,
    paragraph,
    percentile,
    ready_vms,
    sayer,
    until,
)
from corral.domain.states import VmState

HUNDRED = [float(v) for v in range(1, 101)]


@pytest.mark.parametrize(("values", "q", "expected"), [
    (HUNDRED, 50, 50.0),
    (HUNDRED, 99, 99.0),
    (HUNDRED, 100, 100.0),
    (HUNDRED, 0.5, 1.0),  # nearest rank: never below the first
    ([7.0], 99, 7.0),
    ([1.0, 2.0, 3.0], 50, 2.0),
    ([], 50, 0.0),
])
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float) -> None:
    assert percentile(values, q) == expected


@pytest.mark.parametrize(("value", "text"), [
    (None, ""),
    (0.0, "0.00"),
    (0.424, "0.42"),
    (0.01, "0.01"),
    (8.31e-05, "1/12,034"),
    (2.5, "2.50"),
])
def test_format_ratio(value: float | None, text: str) -> None:
    assert format_ratio(value) == text


class Counts:
    """A store as ready_vms reads it."""

    def counts(self) -> dict[str, dict[VmState, int]]:
        return {"a": {VmState.READY: 2, VmState.PENDING: 5}, "b": {VmState.READY: 3}, "c": {VmState.RUNNING: 1}}


@pytest.mark.parametrize(("pool", "ready"), [(None, 5), ("a", 2), ("b", 3), ("c", 0), ("gone", 0)])
def test_ready_vms_of_one_pool_or_of_all(pool: str | None, ready: int) -> None:
    assert ready_vms(Counts(), pool) == ready  # type: ignore[arg-type]


HEADER = "| h |\n|---|\n"


@pytest.mark.parametrize(("before", "after"), [
    (None, "## S\n\n" + HEADER + "| new |\n"),  # no file: made, with the section
    ("", "## S\n\n" + HEADER + "| new |\n"),
    ("# B\n", "# B\n\n## S\n\n" + HEADER + "| new |\n"),  # a blank line before the new section
    ("# B", "# B\n\n## S\n\n" + HEADER + "| new |\n"),
    ("# B\n\n", "# B\n\n## S\n\n" + HEADER + "| new |\n"),
    ("# B\n\n" + HEADER + "| 1 |\n", "# B\n\n" + HEADER + "| 1 |\n| new |\n"),  # the table is there: a row
    ("# B\n\n" + HEADER + "| 1 |\n| 2 |\n\ntext\n", "# B\n\n" + HEADER + "| 1 |\n| 2 |\n| new |\n\ntext\n"),
    ("# B\n\n" + HEADER + "\n## next\n", "# B\n\n" + HEADER + "| new |\n\n## next\n"),
])
def test_append_row_adds_the_row_under_its_table_or_the_section_at_the_end(
        tmp_path: Path, before: str | None, after: str) -> None:
    doc = tmp_path / "docs" / "benchmarks.md"
    if before is not None:
        doc.parent.mkdir()
        doc.write_text(before)
    append_row(doc, HEADER, "| new |\n", intro="## S\n\n")
    assert doc.read_text() == after


OTHER = "| o |\n|---|\n"


@pytest.mark.parametrize(("before", "after"), [
    ("# B\n\n" + OTHER + "| 1 |\n\n## next\n",
     "# B\n\n" + OTHER + "| 1 |\n\n## S\n\n" + HEADER + "| new |\n\n## next\n"),  # under the other table
    ("# B\n", "# B\n\n## S\n\n" + HEADER + "| new |\n"),  # no such table: at the end
    ("# B\n\n" + OTHER + HEADER + "| 1 |\n", "# B\n\n" + OTHER + HEADER + "| 1 |\n| new |\n"),  # there: a row
])
def test_append_row_puts_a_new_table_after_another_when_asked(tmp_path: Path, before: str, after: str) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text(before)
    append_row(doc, HEADER, "| new |\n", intro="## S\n\n", after=OTHER)
    assert doc.read_text() == after


@pytest.mark.parametrize(("text", "out"), [
    ("# B\n\n" + HEADER + "| 1 |\n", "# B\n\n" + HEADER + "| 1 |\n\nX\n"),
    ("# B\n\n" + HEADER + "| 1 |\n| 2 |\n\n## next\n", "# B\n\n" + HEADER + "| 1 |\n| 2 |\n\nX\n\n## next\n"),
    ("# B\n\n" + HEADER + "| 1 |\n## next\n", "# B\n\n" + HEADER + "| 1 |\n\nX\n\n## next\n"),
])
def test_after_table_puts_a_block_under_the_table_between_blank_lines(text: str, out: str) -> None:
    assert after_table(text, HEADER, "X\n") == out


def test_paragraph_wraps_at_95_without_breaking_words_and_ends_with_a_blank_line() -> None:
    text = paragraph("word " * 40 + "a-long-hyphenated-word-that-stays-whole")
    lines = text.split("\n")
    assert text.endswith("\n\n") and all(len(line) <= 95 for line in lines)
    assert "a-long-hyphenated-word-that-stays-whole" in lines[-3]


def test_command_line_is_the_command_as_run(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["/venv/bin/corral", "bench", "fill", "--vms", "40"])
    assert command_line() == "corral bench fill --vms 40"


@dataclass
class Result:
    """A result as finish sees it."""

    ok: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "targets_met": False}

    def summary(self) -> str:
        return "summary line"

    def append_markdown(self, path: Path, command: str) -> None:
        path.write_text(f"row of `{command}`\n")


@pytest.mark.parametrize(("as_json", "record", "printed", "recorded"), [
    (True, True, '{"ok": true, "targets_met": false}\n', True),
    (True, False, '{"ok": true, "targets_met": false}\n', False),
    (False, True, "a table\nsummary line\n", True),
    (False, False, "a table\nsummary line\n", False),
])
def test_finish_records_when_asked_then_prints_json_or_tables_and_summary(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
        as_json: bool, record: bool, printed: str, recorded: bool) -> None:
    monkeypatch.setattr(sys, "argv", ["corral", "bench", "x", "--record"])
    out = tmp_path / "benchmarks.md"
    finish(Result(), ["a table"], as_json=as_json, record=record, output=out)
    assert capsys.readouterr().out == printed
    assert out.exists() is recorded
    if recorded:
        assert out.read_text() == "row of `corral bench x --record`\n"
    if as_json:
        assert json.loads(printed)["ok"] is True


def test_sayer_says_nothing_without_progress() -> None:
    said: list[str] = []
    sayer(said.append)("one")
    sayer(None)("nothing")
    assert said == ["one"]


async def test_until_returns_when_the_condition_holds_and_raises_past_the_limit() -> None:
    ticks = iter(range(5))
    assert await until(lambda: next(ticks) >= 3, "three ticks", limit_s=5.0) > 0
    with pytest.raises(RuntimeError, match="timed out after 0 s waiting for never"):
        await until(lambda: False, "never", limit_s=0.01)
