"""``corral bench soak``: a short real run (a real ``corral serve`` sampled from /proc under a
steady checkout/return load), the row and figure it records, and the figures and verdicts
drawn from samples, with tables."""

from __future__ import annotations

import json
import os
import statistics
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.soak import log_problems
from corral.bench.soak_load import schedule
from corral.bench.soak_report import (
    SOAK_TABLE_HEADER,
    Drift,
    Sample,
    SoakResult,
    drift,
    fds_flat,
    growth_pct,
    slope_per_s,
    windows,
)
from corral.bench.soak_settings import SoakSettings, progress_every_s, sample_interval_s, warmup_s
from corral.cli import app


def test_a_short_run_samples_the_real_server_and_records_its_figures(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    done = CliRunner().invoke(app, ["bench", "soak", "--minutes", "0.08", "--rate", "20", "--pool-size", "25",
                                    "--ready-s", "1", "--json", "--record", "--output", str(doc)])
    assert done.exit_code in (0, 1), done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is (done.exit_code == 0)
    settings = result["settings"]
    assert settings["warmup_s"] == pytest.approx(1.2) and settings["interval_s"] == 0.25
    # every scheduled checkout got a VM and was given back; the server holds none out at the end
    assert result["errors"] == 0 and result["error_samples"] == []
    assert result["checkouts"] == result["returns"] == 96
    assert result["server"]["running"] == 0 and result["leaked"] == 0
    assert result["server"]["pid"] != os.getpid()
    assert result["server"]["logged"]["error"] == 0 and result["server"]["log_errors"] == []
    assert 0 < result["server_cpu_pct"] < 200
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    samples = result["samples"]
    assert len(samples) == 19  # 4.8 s every 0.25 s
    assert [s["t_s"] for s in samples] == sorted(s["t_s"] for s in samples)
    assert abs(samples[-1]["t_s"] - 4.75) < 0.5
    assert 80 <= sum(s["checkouts"] for s in samples) <= 96
    for s in samples:
        assert 20_000 < s["rss_kb"] < 2_000_000  # a Python process with corral loaded, not this test's numbers
        assert s["fds"] >= 8 and s["threads"] >= 2  # the listening socket, sqlite's files; its checkpoint thread
        assert s["store_bytes"] >= 4096 and 0 <= s["wal_bytes"] < s["store_bytes"]
        if s["checkouts"]:
            assert 0 < s["p50_ms"] <= s["p99_ms"]
    cpu = [s["cpu_s"] for s in samples]
    assert cpu == sorted(cpu) and cpu[-1] > cpu[0]  # the server worked while it was sampled
    rss = result["rss_mb"]
    after = [s["rss_kb"] for s in samples if s["t_s"] >= 1.2]
    for median in (rss["first"], rss["last"]):  # medians of real samples, in MB rounded to 3 places
        assert min(after) - 1 <= median * 1024 <= max(after) + 1
    assert result["rss_growth_pct"] == pytest.approx((rss["last"] - rss["first"]) / rss["first"] * 100, abs=0.05)
    assert result["targets_met"] == {"rss_growth": rss["growth_pct"] < 5,
                                     "fds_flat": result["fds"]["last"] - result["fds"]["first"]
                                     <= max(2, result["fds"]["first"] * 0.05)}
    assert result["final"]["rss_mb"] * 1024 == pytest.approx(samples[-1]["rss_kb"], abs=6)  # MB to 2 places
    text = doc.read_text()
    assert "## `corral bench soak`" in text and SOAK_TABLE_HEADER in text
    row = [line for line in text.split(SOAK_TABLE_HEADER)[1].splitlines() if line.startswith("|")]
    assert len(row) == 1 and row[0].split(" | ")[1:5] == ["0.08", "20", "96", "0"]


@pytest.mark.parametrize(("args", "says"), [
    (["--minutes", "0"], "--minutes must be above 0"),
    (["--minutes", "0.01"], "a run of at least 2 seconds"),
    (["--rate", "0"], "--rate must be above 0"),
    (["--clients", "0"], "--clients must be between 1 and 256"),
    (["--pool-size", "0"], "--pool-size between 1 and 10,000"),
])
def test_settings_a_run_cannot_use_are_refused_before_anything_starts(args: list[str], says: str) -> None:
    done = CliRunner().invoke(app, ["bench", "soak", *args])
    assert done.exit_code == 2 and says in done.output


@pytest.mark.parametrize(("run_s", "warmup", "interval", "progress"), [
    (1800, 180, 10, 60),  # 30 minutes: a tenth is warm-up, a sample every 10 s, a line a minute
    (300, 60, 2.5, 50),  # 5 minutes: at least a minute of warm-up
    (120, 30, 1, 20),  # 2 minutes: never more than a quarter
    (6, 1.5, 0.25, 1),
    (7200, 720, 10, 60),
])
def test_warm_up_sampling_and_progress_follow_the_length_of_the_run(run_s: float, warmup: float, interval: float,
                                                                     progress: float) -> None:
    assert warmup_s(run_s) == pytest.approx(warmup)
    assert sample_interval_s(run_s) == pytest.approx(interval)
    assert progress_every_s(run_s) == pytest.approx(progress)


def test_the_schedule_is_seeded_steady_and_holds_some_vms_long() -> None:
    settings = SoakSettings(minutes=1, rate=20, pools=3, seed=7)
    orders = schedule(settings)
    assert orders == schedule(settings) and orders != schedule(replace(settings, seed=8))
    assert len(orders) == 1200 and [o.at_s for o in orders[:3]] == [0, 0.05, 0.1]
    assert {o.pool for o in orders} == {"soak-1", "soak-2", "soak-3"}
    long = [o for o in orders if o.hold_s > settings.hold_s]
    assert 0.05 < len(long) / len(orders) < 0.15
    assert all(settings.long_hold_s / 3 <= o.hold_s <= settings.long_hold_s for o in long)


@pytest.mark.parametrize(("n", "count", "sizes"), [
    (10, 10, [1] * 10), (25, 10, [2, 3, 3, 2, 2, 3, 3, 2, 2, 3]), (3, 10, [1, 1, 1]), (0, 10, []),
])
def test_windows_cut_the_samples_evenly_and_leave_none_out(n: int, count: int, sizes: list[int]) -> None:
    parts = windows([sample(float(i), rss_kb=i) for i in range(n)], count)
    assert [len(p) for p in parts] == sizes
    assert [s.rss_kb for p in parts for s in p] == list(range(n))


@pytest.mark.parametrize(("first", "last", "pct"), [(100, 105, 5.0), (100, 95, -5.0), (0, 0, 0.0), (200, 200, 0.0)])
def test_growth_is_in_percent_of_the_first(first: float, last: float, pct: float) -> None:
    assert growth_pct(first, last) == pytest.approx(pct)


@pytest.mark.parametrize(("points", "slope"), [
    ([(0, 1), (1, 3), (2, 5)], 2.0), ([(0, 5), (10, 5)], 0.0), ([(0, 1)], 0.0), ([(1, 1), (1, 2)], 0.0),
    ([(0, 0), (1, 2), (2, 0), (3, 2)], 0.4),
])
def test_slope_is_the_least_squares_one(points: list[tuple[float, float]], slope: float) -> None:
    assert slope_per_s(points) == pytest.approx(slope)


def sample(t: float, *, rss_kb: int = 100_000, fds: int = 30) -> Sample:
    return Sample(t_s=t, rss_kb=rss_kb, fds=fds, threads=4, store_bytes=1 << 20, wal_bytes=1 << 19, cpu_s=t / 10,
                  checkouts=20,
                  p50_ms=3.0, p99_ms=9.0, errors=0, empty=0)


def result_of(rss: list[int], fds: list[int] | None = None) -> SoakResult:
    """A 10-minute run sampled every 10 s (warm-up: the first minute), with these RSS values."""
    fds = fds or [30] * len(rss)
    samples = [sample(10.0 * (i + 1), rss_kb=r, fds=f) for i, (r, f) in enumerate(zip(rss, fds, strict=True))]
    return SoakResult(settings=SoakSettings(minutes=10), samples=samples, checkouts=100, returns=100, errors=0,
                      empty=0, p50_ms=3.0, p99_ms=9.0, max_ms=12.0, server={"running": 0})


FLAT = [100_000 + (i % 3) * 300 for i in range(60)]  # ±0.6 % of noise
WARMING = [60_000 + 4_000 * i for i in range(6)] + FLAT[6:]  # rises during the warm-up only
LEAKING = [100_000 + 300 * i for i in range(60)]  # +0.3 % of the start every 10 s
SETTLED = [100_000 + 1_500 * min(i, 20) for i in range(60)]  # rises after the warm-up, then flat for the last half


@pytest.mark.parametrize(("rss", "met", "rising"), [
    (FLAT, True, False), (WARMING, True, False), (LEAKING, False, True), (SETTLED, False, False),
])
def test_memory_growth_counts_from_after_the_warm_up_and_says_if_it_still_rises(rss: list[int], met: bool,
                                                                               rising: bool) -> None:
    result = result_of(rss)
    assert result.targets_met["rss_growth"] is met and result.still_rising is rising
    assert result.ok is met
    assert ("targets met" in result.summary()) is met


def test_a_growing_number_of_open_fds_fails_the_run() -> None:
    assert result_of(FLAT, [30 + i // 10 for i in range(60)]).targets_met["fds_flat"] is False
    assert result_of(FLAT, [30 + i % 2 for i in range(60)]).targets_met["fds_flat"] is True


@pytest.mark.parametrize(("first", "last", "flat"), [(30, 32, True), (30, 33, False), (100, 105, True),
                                                     (100, 106, False), (30, 20, True)])
def test_fds_are_flat_within_five_percent_or_two(first: int, last: int, flat: bool) -> None:
    assert fds_flat(Drift(first, last, growth_pct(first, last), 0.0, 0.0)) is flat


def test_a_run_with_errors_or_vms_left_out_is_not_ok() -> None:
    assert result_of(FLAT).ok
    assert not replace(result_of(FLAT), errors=1).ok
    assert not replace(result_of(FLAT), server={"running": 2}).ok
    assert not replace(result_of(FLAT), returns=99).ok


def test_drift_takes_the_medians_of_the_first_and_last_windows() -> None:
    values = [10, 50, 10] + [99] * 24 + [20, 1, 20]  # ten windows of three
    samples = [sample(float(t), rss_kb=r) for t, r in enumerate(values)]
    d = drift(samples, "rss_kb")
    assert d is not None and (d.first, d.last) == (10, 20) and d.growth_pct == 100.0
    assert drift([], "rss_kb") is None


def test_the_server_log_is_read_for_warnings_and_errors(tmp_path: Path) -> None:
    log = tmp_path / "corral.log"
    lines = [{"level": "warning", "logger": "corral.pools", "msg": "slow"},
             {"level": "error", "logger": "corral.store", "msg": "locked"},
             {"level": "info", "logger": "corral", "msg": "hello"},
             {"level": "critical", "logger": "corral", "msg": "gone"}]
    log.write_text("\n".join(json.dumps(line) for line in lines) + "\nTraceback (not a record)\n")
    assert log_problems(log) == ({"warning": 1, "error": 1, "critical": 1},
                                 ["corral.store: locked", "corral: gone"])
    assert not replace(result_of(FLAT), server={"running": 0, "logged": {"error": 1}}).ok


def test_the_figure_shows_a_run_over_time(tmp_path: Path) -> None:
    from corral.bench.plots import save_png

    figure = result_of(LEAKING).figure()
    panels = figure.get_axes()
    assert [a.get_ylabel() for a in panels] == ["server RSS, MB", "open fds", "store (sqlite files), MB",
                                                "ms, per interval"]
    rss = panels[0].get_lines()[0].get_ydata()
    assert len(rss) == 60 and rss[-1] == pytest.approx(LEAKING[-1] / 1024)
    limit = panels[0].get_lines()[1].get_ydata()  # the target: 5 % above the first window after the warm-up
    assert limit[0] == pytest.approx(statistics.median(LEAKING[5:11]) * 1.05 / 1024)
    path = save_png(figure, tmp_path / "soak.png")
    assert path.stat().st_size > 10_000
