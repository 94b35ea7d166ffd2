"""The figures of ``corral bench --plot`` (corral.bench.plots): the data given reach the axes,
and the PNG written is a real PNG of the figure's size."""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest
from matplotlib.figure import Figure

from corral.bench.api_client import LoadResult
from corral.bench.api_report import TARGET_CLIENTS, TARGET_P99_MS, TARGET_PAIRS_PER_S, ApiBenchResult, ApiRow
from corral.bench.plots import (
    API_SIZE,
    DPI,
    FILL_SIZE,
    INVENTORY_SIZE,
    LatencyPoint,
    MatplotlibMissing,
    ReadyCurve,
    ThroughputCurve,
    api_figure,
    check_matplotlib,
    fill_figure,
    inventory_figure,
    save_png,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the IHDR chunk, which a valid PNG has first."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE, "not a PNG"
    length, kind = struct.unpack(">I4s", data[8:16])
    assert kind == b"IHDR" and length == 13
    width, height = struct.unpack(">II", data[16:24])
    assert data[-8:-4] == b"IEND", "the PNG does not end with its IEND chunk"
    return width, height


def lines(figure: Figure, axes: int = 0) -> dict[str, tuple[list[float], list[float]]]:
    """Each labelled line of the figure's ``axes``-th axes: its x and y data."""
    return {line.get_label(): ([float(x) for x in line.get_xdata()], [float(y) for y in line.get_ydata()])
            for line in figure.axes[axes].get_lines() if not str(line.get_label()).startswith("_")}


FILL_CASES = [
    ([ReadyCurve("corral", [(0.0, 0), (0.5, 10), (0.7, 20)]),
      ReadyCurve("loop", [(0.0, 0), (1.0, 5), (2.0, 20)])], 20, 0.4, "20 VMs asked for"),
    ([ReadyCurve("corral", [(0.0, 0), (3.25, 5000)])], 5000, 2.5, "5,000 VMs asked for"),
    ([ReadyCurve("a", [(0.0, 0)]), ReadyCurve("b", [(0.0, 0), (0.1, 1)])], 1, 0.05, "1 VM asked for"),
]


@pytest.mark.parametrize(("curves", "vms", "ideal", "asked"), FILL_CASES)
def test_fill_figure_draws_each_timeline_and_the_ideal(curves: list[ReadyCurve], vms: int, ideal: float,
                                                       asked: str) -> None:
    figure = fill_figure(curves, vms=vms, ideal_s=ideal, title="t")
    drawn = lines(figure)
    for curve in curves:
        assert drawn[curve.label] == ([t for t, _ in curve.points], [float(n) for _, n in curve.points])
    assert drawn[f"ideal: {ideal:.2f} s"][0] == [ideal, ideal]
    assert drawn[asked][1] == [vms, vms]


INVENTORY_CASES = [
    ([LatencyPoint(2000, 0.2, 0.4), LatencyPoint(20000, 0.5, 2.0), LatencyPoint(160000, 30.0, 400.0, False)],
     LatencyPoint(2000, 1600.0, 3000.0)),
    ([LatencyPoint(500, 0.3, 0.9)], None),
    ([LatencyPoint(1000, 1.0, 2.0, False), LatencyPoint(2000, 2.0, 4.0, False)], LatencyPoint(1000, 10.0, 20.0)),
]


@pytest.mark.parametrize(("corral", "baseline"), INVENTORY_CASES)
def test_inventory_figure_draws_the_steps_the_baseline_and_the_target(corral: list[LatencyPoint],
                                                                       baseline: LatencyPoint | None) -> None:
    figure = inventory_figure(corral, baseline, target_p99_ms=50.0, title="t")
    drawn = lines(figure)
    rates = [float(p.rate) for p in corral]
    assert drawn["corral p50"] == (rates, [p.p50_ms for p in corral])
    assert drawn["corral p99"] == (rates, [p.p99_ms for p in corral])
    failed = [p for p in corral if not p.sustained]
    if failed:
        assert drawn["corral p99, rate not sustained"] == ([p.rate for p in failed], [p.p99_ms for p in failed])
    else:
        assert "corral p99, rate not sustained" not in drawn
    if baseline is None:
        assert not any(label.startswith("re-polling") for label in drawn)
    else:
        assert drawn["re-polling baseline p99"] == ([baseline.rate], [baseline.p99_ms])
    assert drawn["p99 target 50 ms"][1] == [50.0, 50.0]
    assert figure.axes[0].get_xscale() == "log" and figure.axes[0].get_yscale() == "log"


API_CASES = [
    [ThroughputCurve("sqlite-1", [1, 8, 32], [900.0, 1400.0, 1600.0], [6.0, 12.0, 30.0]),
     ThroughputCurve("baseline", [1, 8, 32], [5000.0, 20000.0, 23000.0], [0.3, 1.0, 2.5])],
    [ThroughputCurve("redis-2", [4], [700.0], [9.0])],
]


@pytest.mark.parametrize("curves", API_CASES)
def test_api_figure_draws_throughput_and_p99_per_curve(curves: list[ThroughputCurve]) -> None:
    figure = api_figure(curves, target_clients=32, target_pairs_per_s=1500.0, target_p99_ms=25.0, title="t")
    throughput, latency = lines(figure, 0), lines(figure, 1)
    for curve in curves:
        assert throughput[curve.label] == (list(map(float, curve.clients)), list(curve.pairs_per_s))
        assert latency[curve.label] == (list(map(float, curve.clients)), list(curve.p99_ms))
    assert [v for k, v in throughput.items() if k.startswith("target")] == [([32.0], [1500.0])]
    assert [v for k, v in latency.items() if k.startswith("target")] == [([32.0], [25.0])]


def load(clients: int, pairs_per_s: float, p99_ms: float) -> LoadResult:
    return LoadResult(clients=clients, duration_s=5.0, pairs=int(pairs_per_s * 5), pairs_per_s=pairs_per_s,
                      p50_ms=p99_ms / 3, p95_ms=p99_ms / 2, p99_ms=p99_ms, max_ms=p99_ms * 2, errors=0)


def test_an_api_result_plots_each_setup_and_the_baseline_once() -> None:
    base = {1: load(1, 5000.0, 0.3), 32: load(32, 22000.0, 2.5)}
    rows = [ApiRow(n, load(n, pairs, p99), base[n], setup)
            for setup, n, pairs, p99 in (("sqlite-1", 1, 1000.0, 6.0), ("sqlite-1", 32, 1600.0, 30.0),
                                         ("redis-1", 32, 500.0, 120.0), ("redis-1", 1, 400.0, 17.0))]
    result = ApiBenchResult(duration_s=5.0, warmup_s=1.0, pool_size=2000, rows=rows, cores=2, machine="m")
    throughput, latency = (lines(result.figure(), i) for i in (0, 1))
    assert throughput["sqlite-1"] == ([1.0, 32.0], [1000.0, 1600.0])
    assert throughput["redis-1"] == ([1.0, 32.0], [400.0, 500.0])  # in client order, not run order
    assert throughput["baseline"] == ([1.0, 32.0], [5000.0, 22000.0])
    assert latency["redis-1"] == ([1.0, 32.0], [17.0, 120.0])
    target = f"target: at least {TARGET_PAIRS_PER_S:,.0f} at {TARGET_CLIENTS} clients"
    assert throughput[target] == ([TARGET_CLIENTS], [TARGET_PAIRS_PER_S])
    assert latency[f"target: at most {TARGET_P99_MS:g} ms at {TARGET_CLIENTS} clients"][1] == [TARGET_P99_MS]


@pytest.mark.parametrize(("make", "size"), [
    (lambda: fill_figure(FILL_CASES[0][0], vms=20, ideal_s=0.4, title="fill"), FILL_SIZE),
    (lambda: inventory_figure(*INVENTORY_CASES[0], target_p99_ms=50.0, title="inventory"), INVENTORY_SIZE),
    (lambda: api_figure(API_CASES[0], target_clients=32, target_pairs_per_s=1500.0, target_p99_ms=25.0,
                        title="api"), API_SIZE),
])
def test_save_png_writes_a_png_of_the_figures_size(tmp_path: Path, make, size: tuple[float, float]) -> None:
    path = save_png(make(), tmp_path / "made" / "here.png")  # the folder is made
    assert png_size(path) == (round(size[0] * DPI), round(size[1] * DPI))
    assert path.stat().st_size > 10_000, "an empty canvas would be a few hundred bytes"


def test_without_matplotlib_the_hint_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    with pytest.raises(MatplotlibMissing, match=r"pip install 'corral\[bench\]'"):
        check_matplotlib()
    with pytest.raises(MatplotlibMissing):
        fill_figure(FILL_CASES[0][0], vms=20, ideal_s=0.4, title="t")
