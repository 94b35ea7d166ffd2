"""What ``--record --plot`` does to docs/benchmarks.md (plot_path, link_plot), the fill's
timelines, and the progress shown while a benchmark runs."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from rich.console import Console

from corral.bench.common import Counting, counted, counter, link_plot, plot_path
from corral.bench.fill import Timeline, thin
from corral.bench.progress import Bar, Lines, bar, shown

HEADER = "| a | b |\n|---|---|\n"
IMAGE = "![fill, the last run recorded (2026-12-03)](benchmarks/fill.png)"


@pytest.mark.parametrize(("n", "noun", "plural", "text"), [
    (1, "VM", None, "1 VM"),
    (0, "VM", None, "0 VMs"),
    (2500, "host", None, "2,500 hosts"),
    (1.0, "client", None, "1 client"),
    (2.0, "client", None, "2 clients"),
    (1, "process", "processes", "1 process"),
    (3, "process", "processes", "3 processes"),
])
def test_counted_says_one_in_the_singular(n: float, noun: str, plural: str | None, text: str) -> None:
    assert counted(n, noun, plural) == text


@pytest.mark.parametrize(("output", "name", "path"), [
    (Path("docs/benchmarks.md"), "fill", Path("docs/benchmarks/fill.png")),
    (Path("/tmp/x/b.md"), "api", Path("/tmp/x/b/api.png")),
    (Path("notes.md"), "inventory", Path("notes/inventory.png")),
])
def test_plot_path_is_a_folder_named_after_the_markdown_file(output: Path, name: str, path: Path) -> None:
    assert plot_path(output, name) == path


@pytest.mark.parametrize(("before", "after"), [
    # after the table, blank lines around it, before the text that followed the table
    ("## S\n\n" + HEADER + "| 1 | 2 |\n\nReading.\n", "## S\n\n" + HEADER + "| 1 | 2 |\n\n" + IMAGE + "\n\nReading.\n"),
    ("## S\n\n" + HEADER + "| 1 | 2 |\n", "## S\n\n" + HEADER + "| 1 | 2 |\n\n" + IMAGE + "\n"),
    # already shown: the line is replaced in place (a new date), not added again
    ("## S\n\n" + HEADER + "| 1 | 2 |\n| 3 | 4 |\n\n![fill (2026-11-01)](benchmarks/fill.png)\n\nReading.\n",
     "## S\n\n" + HEADER + "| 1 | 2 |\n| 3 | 4 |\n\n" + IMAGE + "\n\nReading.\n"),
    # another image is left alone
    ("## S\n\n" + HEADER + "| 1 | 2 |\n\n![api](benchmarks/api.png)\n",
     "## S\n\n" + HEADER + "| 1 | 2 |\n\n" + IMAGE + "\n\n![api](benchmarks/api.png)\n"),
    # no such table: nothing changes
    ("## S\n\n| other |\n|---|\n| 1 |\n", "## S\n\n| other |\n|---|\n| 1 |\n"),
])
def test_link_plot_shows_the_image_once_after_its_table(before: str, after: str) -> None:
    assert link_plot(before, HEADER, "benchmarks/fill.png", "fill, the last run recorded (2026-12-03)") == after


@pytest.mark.parametrize(("points", "limit", "kept"), [
    ([(0.0, 0), (1.0, 1)], 5, [(0.0, 0), (1.0, 1)]),
    ([(float(i), i) for i in range(10)], 10, [(float(i), i) for i in range(10)]),
    ([(float(i), i) for i in range(11)], 3, [(0.0, 0), (5.0, 5), (10.0, 10)]),
    ([(float(i), i) for i in range(100)], 2, [(0.0, 0), (99.0, 99)]),
])
def test_thin_keeps_the_ends_and_spreads_the_rest(points, limit, kept) -> None:
    assert thin(points, limit) == kept


def test_thin_of_many_points_keeps_at_most_the_limit_in_order() -> None:
    points = [(i / 10, i) for i in range(5000)]
    kept = thin(points, 400)
    assert len(kept) == 400 and kept[0] == points[0] and kept[-1] == points[-1]
    assert kept == sorted(kept)


def test_a_timeline_has_a_point_per_change_of_the_count() -> None:
    timeline = Timeline(started=100.0)
    for now, ready in [(100.1, 0), (100.2, 3), (100.3, 3), (100.4, 7), (100.5, 7), (100.6, 10)]:
        timeline.note(ready, now)
    assert timeline.kept() == [(0.0, 0), (0.2, 3), (0.4, 7), (0.6, 10)]


# -- progress -------------------------------------------------------------------------------


def test_a_terminal_gets_a_bar() -> None:
    console = Console(file=io.StringIO(), force_terminal=True)
    for as_json in (False, True):  # stdout holds the JSON; the bar is on stderr
        with shown(as_json, console) as progress:
            assert isinstance(progress, Bar) and isinstance(progress, Counting)


def test_the_bar_shows_the_latest_line_and_the_count() -> None:
    out = io.StringIO()
    with bar(Console(file=out, force_terminal=True, width=100)) as progress:
        say = Bar(progress)
        say("  corral: filling 40 VMs in 4 pools ...")
        counter(say)(10, 40)
        task = progress.tasks[0]
        assert (task.description, task.completed, task.total) == ("corral: filling 40 VMs in 4 pools ...", 10, 40)
        progress.refresh()
    assert "corral: filling 40 VMs" in out.getvalue() and "25%" in out.getvalue()


@pytest.mark.parametrize(("as_json", "expected"), [(False, "one\n[two]\n"), (True, "")])
def test_no_terminal_gets_plain_lines_or_nothing_with_json(as_json: bool, expected: str) -> None:
    out = io.StringIO()
    with shown(as_json, Console(file=out, force_terminal=False)) as progress:
        if progress is not None:
            assert isinstance(progress, Lines) and not isinstance(progress, Counting)
            progress("one")
            progress("[two]")  # not read as markup
            counter(progress)(1, 2)  # a count without a bar: nothing
        else:
            assert as_json
    assert out.getvalue() == expected
