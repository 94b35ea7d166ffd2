"""The figures of ``corral bench ... --plot``: plain data in, a matplotlib figure out.

Three benchmarks have a curve that says more than their table:

- :func:`inventory_figure`: change-to-event latency (p50, p99) against the change rate, corral's
  rising steps against the re-polling baseline's one rate;
- :func:`api_figure`: checkout + return pairs/s and p99 against the number of clients, one
  curve per set-up and one for the bare HTTP stack;
- :func:`fill_figure`: VMs ready over time, corral against the vmpooler-style loop, with the
  ideal fill time;
- :func:`autosize_figure`: one simulated day, each strategy's ready VMs, the autosized size and
  the checkouts;
- :func:`soak_figure`: a soak run's server RSS, open fds, store size and checkout latency
  over time.

Each builds a :class:`matplotlib.figure.Figure` of a fixed size on the Agg canvas (no
pyplot, no display, no global state); :func:`save_png` writes it. matplotlib is imported
only when a figure is built: it comes with the ``corral[bench]`` extra, and
:func:`check_matplotlib` says how to install it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from corral.bench.common import counted

if TYPE_CHECKING:
    from matplotlib.figure import Figure

DPI = 100
INVENTORY_SIZE = (8.0, 5.0)  # inches; at DPI: 800 x 500 pixels
API_SIZE = (11.0, 4.5)
FILL_SIZE = (8.0, 4.5)
AUTOSIZE_SIZE = (11.0, 7.0)
SOAK_SIZE = (9.0, 9.0)
INSTALL_HINT = "pip install 'corral[bench]'"


class MatplotlibMissing(RuntimeError):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class LatencyPoint:
    """Change-to-event latency measured at one change rate."""

    rate: float  # changes/s
    p50_ms: float
    p99_ms: float
    sustained: bool = True


@dataclass(frozen=True)
class ThroughputCurve:
    """One server measured at several client counts."""

    label: str
    clients: Sequence[int]
    pairs_per_s: Sequence[float]
    p99_ms: Sequence[float]


@dataclass(frozen=True)
class ReadyCurve:
    """VMs ready over time: each point (seconds since the start, VMs ready then)."""

    label: str
    points: Sequence[tuple[float, int]]


@dataclass(frozen=True)
class DayCurve:
    """A count over a day: each point (hour of the clock, count from then on)."""

    label: str
    points: Sequence[tuple[float, float]]


def check_matplotlib() -> None:
    """Raise :class:`MatplotlibMissing`, saying how to install it, when matplotlib is not there."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise MatplotlibMissing(f"--plot needs matplotlib, which is not installed; install it with: "
                                f"{INSTALL_HINT}") from None


def _figure(size: tuple[float, float]) -> Figure:
    check_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, dpi=DPI, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def save_png(figure: Figure, path: Path) -> Path:
    """Write ``figure`` as a PNG of its own size (no cropping) to ``path``, making its folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, format="png", dpi=DPI)
    return path


def inventory_figure(corral: Sequence[LatencyPoint], baseline: LatencyPoint | None, *,
                     target_p99_ms: float, title: str) -> Figure:
    """Latency against change rate, both logarithmic: corral's p50 and p99 at each rate (a
    rate not sustained drawn hollow), the baseline's at its rate, and the p99 target."""
    figure = _figure(INVENTORY_SIZE)
    axes = figure.add_subplot()
    rates = [p.rate for p in corral]
    for name, values, style in (("p50", [p.p50_ms for p in corral], "o-"),
                                ("p99", [p.p99_ms for p in corral], "s-")):
        (line,) = axes.plot(rates, values, style, label=f"corral {name}")
        failed = [(p.rate, v) for p, v in zip(corral, values, strict=True) if not p.sustained]
        if failed:
            axes.plot([r for r, _ in failed], [v for _, v in failed], style[0], markersize=11,
                      markerfacecolor="none", color=line.get_color(), label=f"corral {name}, rate not sustained")
    if baseline is not None:
        axes.plot([baseline.rate], [baseline.p50_ms], "o", color="tab:red", label="re-polling baseline p50")
        axes.plot([baseline.rate], [baseline.p99_ms], "s", color="tab:purple", label="re-polling baseline p99")
    axes.axhline(target_p99_ms, linestyle="--", color="grey", label=f"p99 target {target_p99_ms:g} ms")
    axes.set_xscale("log")
    axes.set_yscale("log")
    axes.set_xlabel("changes/s")
    axes.set_ylabel("change-to-event latency, ms")
    axes.set_title(title, fontsize="medium")
    axes.grid(True, which="major", alpha=0.3)
    axes.legend(fontsize="small")
    return figure


def api_figure(curves: Sequence[ThroughputCurve], *, target_clients: int, target_pairs_per_s: float,
               target_p99_ms: float, title: str) -> Figure:
    """Two panels against the number of clients (logarithmic): pairs/s and p99 ms, one line
    per curve, with the targets at ``target_clients`` marked."""
    figure = _figure(API_SIZE)
    throughput, latency = figure.subplots(1, 2)
    for curve in curves:
        style = "--" if curve.label == "baseline" else "-"
        throughput.plot(curve.clients, curve.pairs_per_s, style, marker="o", label=curve.label)
        latency.plot(curve.clients, curve.p99_ms, style, marker="o", label=curve.label)
    throughput.plot([target_clients], [target_pairs_per_s], "*", color="black", markersize=12,
                    label=f"target: at least {target_pairs_per_s:,.0f} at {counted(target_clients, 'client')}")
    latency.plot([target_clients], [target_p99_ms], "*", color="black", markersize=12,
                 label=f"target: at most {target_p99_ms:g} ms at {counted(target_clients, 'client')}")
    for axes, label in ((throughput, "checkout + return pairs/s"), (latency, "p99 of a pair, ms")):
        axes.set_xscale("log", base=2)
        axes.set_yscale("log")
        axes.set_xlabel("clients")
        axes.set_ylabel(label)
        axes.grid(True, which="major", alpha=0.3)
        axes.legend(fontsize="small")
    figure.suptitle(title, fontsize="medium")
    return figure


def fill_figure(curves: Sequence[ReadyCurve], *, vms: int, ideal_s: float, title: str) -> Figure:
    """VMs ready against seconds since the start, one step line per curve, with the ideal
    fill time and the number of VMs asked for."""
    figure = _figure(FILL_SIZE)
    axes = figure.add_subplot()
    for curve in curves:
        axes.step([t for t, _ in curve.points], [n for _, n in curve.points], where="post", label=curve.label)
    axes.axvline(ideal_s, linestyle="--", color="grey", label=f"ideal: {ideal_s:.2f} s")
    axes.axhline(vms, linestyle=":", color="grey", label=f"{counted(vms, 'VM')} asked for")
    axes.set_xlabel("seconds since the start")
    axes.set_ylabel("VMs ready")
    axes.set_xlim(left=0)
    axes.set_ylim(bottom=0)
    axes.set_title(title, fontsize="medium")
    axes.grid(True, alpha=0.3)
    axes.legend(fontsize="small", loc="best")
    return figure


def autosize_figure(ready: Sequence[DayCurve], size: DayCurve, checkouts: Sequence[tuple[float, int]], *,
                    title: str) -> Figure:
    """Two panels over the hours of a day: each strategy's ready VMs (step lines), and the
    checkouts per quarter of an hour with the autosized ``size`` over them."""
    figure = _figure(AUTOSIZE_SIZE)
    top, bottom = figure.subplots(2, 1, sharex=True)
    for curve in ready:
        top.step([h for h, _ in curve.points], [n for _, n in curve.points], where="post", label=curve.label,
                 linewidth=0.8)
    top.set_ylabel("ready VMs (mean over 15 min)")
    top.set_ylim(bottom=0)
    top.set_title(title, fontsize="medium")
    top.legend(fontsize="small", loc="upper left")
    bottom.bar([h for h, _ in checkouts], [n for _, n in checkouts], width=0.25, align="edge", color="tab:grey",
               alpha=0.6, label="checkouts per 15 min")
    bottom.set_ylabel("checkouts per 15 min")
    sized = bottom.twinx()
    sized.step([h for h, _ in size.points], [n for _, n in size.points], where="post", color="tab:green",
               label=size.label)
    sized.set_ylabel("autosized pool size")
    sized.set_ylim(bottom=0)
    bottom.set_xlabel("hour of the day")
    bottom.set_xlim(0, 24)
    bottom.set_xticks(range(0, 25, 2))
    handles = [*bottom.get_legend_handles_labels()[0], *sized.get_legend_handles_labels()[0]]
    bottom.legend(handles, [h.get_label() for h in handles], fontsize="small", loc="upper left")
    for axes in (top, bottom):
        axes.grid(True, alpha=0.3)
    return figure


@dataclass(frozen=True)
class SoakSeries:
    """A soak run's samples over time: minutes since the load started and, at each, the
    server's RSS, open fds and store size, and the checkouts' p50 and p99 since the sample before."""

    minutes: Sequence[float]
    rss_mb: Sequence[float]
    fds: Sequence[float]
    store_mb: Sequence[float]
    p50_ms: Sequence[float]
    p99_ms: Sequence[float]


def soak_figure(series: SoakSeries, *, warmup_minutes: float, rss_limit_mb: float | None, title: str) -> Figure:
    """Four panels over the minutes of a soak run, the warm-up shaded: RSS (with the most it may
    reach, ``rss_limit_mb``; its axis does not start at 0, so that a drift shows), open fds,
    store size and checkout latency (p50, p99 per sampling interval)."""
    figure = _figure(SOAK_SIZE)
    panels = figure.subplots(4, 1, sharex=True)
    for axes, values, label in ((panels[0], series.rss_mb, "server RSS, MB"), (panels[1], series.fds, "open fds"),
                                (panels[2], series.store_mb, "store (sqlite files), MB")):
        axes.plot(series.minutes, values, "-", linewidth=1.0)
        axes.set_ylabel(label)
        if axes is not panels[0]:
            axes.set_ylim(bottom=0, top=max(values, default=1) * 1.15 or 1)
    if rss_limit_mb is not None:
        panels[0].axhline(rss_limit_mb, linestyle="--", color="grey", label=f"target: below {rss_limit_mb:,.1f} MB")
        panels[0].legend(fontsize="small", loc="lower right")
    latency = panels[3]
    latency.plot(series.minutes, series.p50_ms, "-", linewidth=0.8, label="checkout p50")
    latency.plot(series.minutes, series.p99_ms, "-", linewidth=1.0, label="checkout p99")
    latency.set_ylabel("ms, per interval")
    latency.set_ylim(bottom=0)
    latency.legend(fontsize="small", loc="upper right")
    latency.set_xlabel("minutes since the load started")
    for axes in panels:
        axes.axvspan(0, warmup_minutes, color="grey", alpha=0.15, linewidth=0)
        axes.grid(True, alpha=0.3)
        axes.set_xlim(left=0, right=max(series.minutes, default=1) or 1)
    panels[0].set_title(f"{title} (warm-up shaded)", fontsize="medium")
    return figure
