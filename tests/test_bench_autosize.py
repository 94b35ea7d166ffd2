"""``corral bench autosize``: a short day through the command (its JSON, its row, its figure),
the verdict, the trace's definitions of the fixed sizes, and the replay on days small enough to
follow by hand."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.autosize import replay, run_autosize
from corral.bench.autosize_report import AUTOSIZE_TABLE_HEADER, averaged, verdict
from corral.bench.autosize_settings import AutosizeBenchSettings
from corral.bench.autosize_trace import Trace, generate, rate_per_hour
from corral.cli import app

SHORT = ["bench", "autosize", "--day-hours", "2", "--bursts", "1"]


def test_a_short_day_reports_each_strategy_and_records_a_row_and_a_figure(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    done = CliRunner().invoke(app, [*SHORT, "--json", "--record", "--plot", "--output", str(doc)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["settings"]["day_hours"] == 2
    checkouts = result["trace"]["checkouts"]
    assert checkouts > 50  # the burst alone is 50
    assert len(result["trace"]["bursts_at_s"]) == 1 and 0 < result["trace"]["held_most"] <= checkouts
    assert result["ready_s"] == pytest.approx(12.5)
    rows = {row["name"]: row for row in result["strategies"]}
    assert list(rows) == ["average", "peak", "autosize"]
    average, peak, auto = rows["average"], rows["peak"], rows["autosize"]
    assert 1 <= average["size"] < peak["size"] and auto["size"] is None
    for row in rows.values():
        assert row["checkouts"] == row["served"] == checkouts and row["idle_vm_hours"] > 0
        assert 0 <= row["found_empty_in_bursts"] <= row["found_empty"] <= checkouts
        assert row["wait_p50_s"] <= row["wait_p99_s"] <= row["wait_max_s"] <= 12.5 * 1.2
    for row in (average, peak):  # a fixed pool asks for one VM per checkout, and keeps its size
        assert row["clones"] == checkouts and row["sizes"] == [row["size"]] and row["size_changes"] == 0
    assert auto["clones"] >= checkouts and len(auto["sizes"]) > 1
    assert min(auto["sizes"]) >= 1 and max(auto["sizes"]) <= 100
    assert average["found_empty"] > peak["found_empty"]
    assert average["idle_vm_hours"] < peak["idle_vm_hours"]
    assert result["targets"] == verdict(auto["found_empty"], peak["found_empty"], auto["idle_vm_hours"],
                                        peak["idle_vm_hours"])
    assert result["targets_met"] is all(result["targets"].values())
    assert result["idle_ratio"] == pytest.approx(auto["idle_vm_hours"] / peak["idle_vm_hours"], abs=1e-3)
    text = doc.read_text()
    assert AUTOSIZE_TABLE_HEADER in text and "## `corral bench autosize`" in text
    row = text.split(AUTOSIZE_TABLE_HEADER, 1)[1].splitlines()[0]
    assert row.startswith("| ") and f"| {average['size']} / {peak['size']} |" in row
    assert f" / {auto['found_empty']} ({auto['found_empty_in_bursts']}) |" in row
    assert "](benchmarks/autosize.png)" in text and (tmp_path / "benchmarks" / "autosize.png").stat().st_size > 0


@pytest.mark.parametrize(("auto_empty", "peak_empty", "auto_idle", "peak_idle", "expected"), [
    (0, 0, 60.0, 100.0, {"misses": True, "idle": True}),  # exactly 40 % fewer
    (0, 0, 60.1, 100.0, {"misses": True, "idle": False}),
    (3, 2, 10.0, 100.0, {"misses": False, "idle": True}),
    (2, 3, 10.0, 100.0, {"misses": True, "idle": True}),
    (5, 0, 90.0, 100.0, {"misses": False, "idle": False}),
    (0, 0, 0.0, 0.0, {"misses": True, "idle": True}),
])
def test_the_verdict(auto_empty: int, peak_empty: int, auto_idle: float, peak_idle: float,
                     expected: dict[str, bool]) -> None:
    assert verdict(auto_empty, peak_empty, auto_idle, peak_idle) == expected


@pytest.mark.parametrize(("arrivals", "ready_s", "average", "peak"), [
    ([], 10.0, 1, 0),
    ([5.0], 10.0, 1, 1),
    ([0.0, 9.5, 10.0, 19.5], 10.0, 1, 2),  # a window of 10 s holds 9.5 and 10.0, never 0.0 with 10.0
    ([0.0, 1.0, 2.0, 3.0, 50.0], 5.0, 1, 4),
    ([float(i) for i in range(100)], 10.0, 10, 10),  # one a second over a 100 s day
])
def test_average_and_peak_sizes(arrivals: list[float], ready_s: float, average: int, peak: int) -> None:
    trace = Trace(arrivals, [1.0] * len(arrivals), [], day_s=100.0)
    assert (trace.average_size(ready_s), trace.peak_size(ready_s)) == (average, peak)


@pytest.mark.parametrize(("hour", "rate"), [(0.0, 4.0), (5.9, 4.0), (7.5, 92.0), (10.0, 180.0), (12.5, 60.0),
                                            (15.0, 180.0), (18.5, 92.0), (22.0, 4.0)])
def test_the_day_s_shape(hour: float, rate: float) -> None:
    assert rate_per_hour(hour, 180.0) == pytest.approx(rate)


def test_the_day_is_the_same_for_a_seed_and_has_its_bursts() -> None:
    settings = AutosizeBenchSettings(seed=7, day_hours=4, bursts=2, burst_size=30)
    one, two = generate(settings), generate(settings)
    assert one == two and generate(AutosizeBenchSettings(seed=8, day_hours=4, bursts=2)) != one
    assert one.arrivals == sorted(one.arrivals) and len(one.holds) == len(one.arrivals) and len(one.bursts) == 2
    for start in one.bursts:
        assert sum(start <= at <= start + 60 for at in one.arrivals) >= 30
    assert all(0 < hold <= settings.hold_max_s for hold in one.holds)


def fixed_day(arrivals: list[float], day_s: float = 100.0) -> Trace:
    return Trace(arrivals, [30.0] * len(arrivals), [], day_s)


def test_a_checkout_finding_the_pool_empty_waits_for_the_next_vm() -> None:
    settings = AutosizeBenchSettings(jitter=0.0)  # every VM 12.5 s to ready
    result = replay(fixed_day([1.0, 2.0]), settings, "one", "one", 1)
    # 1.0 takes the one ready VM (its replacement ready at 13.5); 2.0 finds none and gets that one
    assert result.waits == [pytest.approx(11.5)] and result.empty_at == [2.0]
    # ready: 1 VM 0–1 s, none until the VM made for 2.0's checkout is ready at 14.5, then 1 to 100 s
    assert result.idle_vm_hours == pytest.approx((1.0 + 85.5) / 3600)
    assert result.clones == 2 and result.surplus == 0 and result.served == 2


def test_the_day_ends_at_its_end() -> None:
    settings = AutosizeBenchSettings(jitter=0.0)
    result = replay(fixed_day([95.0, 99.0]), settings, "one", "one", 1)  # 99.0 gets 95.0's replacement at 107.5
    assert result.served == 2 and result.waits == [pytest.approx(8.5)]
    assert result.idle_vm_hours == pytest.approx(95.0 / 3600)  # nothing counted past 100 s
    assert all(at <= 100.0 for at, _ in result.ready_points)


def test_autosizing_rises_with_a_burst_and_falls_only_after_the_cooldown() -> None:
    settings = AutosizeBenchSettings(jitter=0.0, min_size=2, max_size=30, scale_down_after=300.0)
    burst = [100.0 + i * 0.5 for i in range(40)]
    result = replay(fixed_day(burst, day_s=3_600.0), settings, "auto", "auto", None)
    sizes = result.size_points
    assert sizes[0] == (0.0, 2) and min(size for _, size in sizes) == 2 and max(size for _, size in sizes) <= 30
    top = max(range(len(sizes)), key=lambda i: sizes[i][1])
    assert sizes[top][1] > 10 and sizes[top][0] < 120.0  # up during the burst
    falls = [at for (at, size), (_, before) in zip(sizes[1:], sizes, strict=False) if size < before]
    rises = [at for (at, size), (_, before) in zip(sizes[1:], sizes, strict=False) if size > before]
    assert falls and min(falls) >= max(rises) + 300.0  # down only once the cooldown has passed
    assert sizes[-1][1] == 2 and result.surplus > 0  # back at min_size, ready VMs destroyed to get there
    risen = sum(size - before for (_, size), (_, before) in zip(sizes[1:], sizes, strict=False) if size > before)
    assert 40 + sizes[top][1] - 2 <= result.clones <= 40 + risen  # one VM per checkout, and one per VM risen
    assert len(result.waits) < 40


@pytest.mark.parametrize(("args", "complaint"), [
    (["--target-wait", "0"], "--target-wait"),
    (["--target-wait", "1.5"], "--target-wait"),
    (["--min-size", "5", "--max-size", "3"], "--min-size"),
    (["--day-hours", "0"], "--day-hours"),
    (["--jitter", "1"], "--jitter"),
    (["--window", "0"], "--window"),
])
def test_settings_it_cannot_use_are_refused(args: list[str], complaint: str) -> None:
    done = CliRunner().invoke(app, ["bench", "autosize", *args, "--json"])
    assert done.exit_code == 2 and complaint in done.output


@pytest.mark.parametrize(("points", "bins", "means"), [
    ([(0.0, 2)], 4, [2.0, 2.0, 2.0, 2.0]),
    ([(0.0, 0), (50.0, 4)], 2, [0.0, 4.0]),
    ([(0.0, 0), (25.0, 4), (75.0, 0)], 2, [2.0, 2.0]),
    ([(0.0, 1), (10.0, 3), (20.0, 1)], 1, [1.2]),
])
def test_ready_vms_are_drawn_as_their_mean_over_each_part_of_the_day(points: list[tuple[float, int]], bins: int,
                                                                      means: list[float]) -> None:
    drawn = averaged(points, 100.0, bins)
    assert [mean for _, mean in drawn] == pytest.approx([*means, means[-1]])
    assert [hour for hour, _ in drawn] == pytest.approx([i * 24 / bins for i in range(bins + 1)])


def test_the_figure_draws_each_strategy_s_ready_vms_and_the_autosized_size() -> None:
    result = run_autosize(AutosizeBenchSettings(day_hours=2, bursts=1))
    figure = result.figure()
    top, bottom, size = figure.axes
    drawn = {str(line.get_label()): list(line.get_ydata()) for line in top.get_lines()}
    assert list(drawn) == [s.label for s in result.strategies]
    peak = result.strategy("peak")
    assert max(drawn[peak.label]) <= peak.size and min(drawn[peak.label]) > 0
    (sized,) = size.get_lines()
    assert max(sized.get_ydata()) == max(n for _, n in result.strategy("autosize").size_points)
    assert sum(bar.get_height() for bar in bottom.patches) == len(result.trace.arrivals)
