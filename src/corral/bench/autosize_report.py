"""The results of ``corral bench autosize`` and how they are shown: the ``rich`` table, the JSON,
the summary, the figure and the row :meth:`AutosizeBenchResult.append_markdown` adds to
``docs/benchmarks.md``. The replay is described in :mod:`corral.bench.autosize`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.bench.autosize_settings import AutosizeBenchSettings
from corral.bench.autosize_trace import BURST_SPAN_S, Trace
from corral.bench.common import append_row, format_ratio, paragraph, percentile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

IDLE_RATIO_TARGET = 0.6  # autosizing holds at least 40 % fewer idle ready VM-hours than the peak size


def verdict(autosize_empty: int, peak_empty: int, autosize_idle: float, peak_idle: float) -> dict[str, bool]:
    """The targets: autosizing finds the pool empty no more often than the peak size does, and
    holds at most ``IDLE_RATIO_TARGET`` of its idle ready VM-hours."""
    return {"misses": autosize_empty <= peak_empty, "idle": autosize_idle <= IDLE_RATIO_TARGET * peak_idle}


@dataclass
class StrategyResult:
    """One strategy over the day: ``size`` None is autosizing."""

    name: str
    label: str
    size: int | None
    checkouts: int
    served: int  # checkouts that got a VM, at once or after waiting
    waits: list[float]  # sorted: the wait of each checkout that found the pool empty, seconds
    empty_at: list[float]  # when each of them came, seconds since midnight
    idle_vm_hours: float
    clones: int
    surplus: int  # ready VMs destroyed because the size fell
    ready_points: list[tuple[float, int]]  # (seconds, ready VMs) at each change
    size_points: list[tuple[float, int]]  # (seconds, size) at each change

    @property
    def empty(self) -> int:
        return len(self.waits)

    @property
    def empty_share(self) -> float:
        return self.empty / self.checkouts if self.checkouts else 0.0

    def empty_in(self, spans: list[tuple[float, float]]) -> int:
        """Of the checkouts that found the pool empty, those that came within one of ``spans``."""
        return sum(any(start <= at <= end for start, end in spans) for at in self.empty_at)

    def wait(self, q: float) -> float:
        return percentile(self.waits, q)

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "label": self.label, "size": self.size, "checkouts": self.checkouts,
                "served": self.served, "found_empty": self.empty,
                "found_empty_pct": round(100 * self.empty_share, 3),
                "wait_p50_s": round(self.wait(50), 2), "wait_p99_s": round(self.wait(99), 2),
                "wait_max_s": round(self.wait(100), 2), "wait_total_s": round(sum(self.waits), 1),
                "idle_vm_hours": round(self.idle_vm_hours, 2), "clones": self.clones, "surplus": self.surplus,
                "sizes": sorted({s for _, s in self.size_points}), "size_changes": len(self.size_points) - 1}


@dataclass
class AutosizeBenchResult:
    settings: AutosizeBenchSettings
    trace: Trace
    ready_s: float
    strategies: list[StrategyResult]
    machine: str = ""

    @property
    def burst_spans(self) -> list[tuple[float, float]]:
        """Each burst, from its start to one replenishment time after its minute."""
        return [(start, start + BURST_SPAN_S + self.ready_s) for start in self.trace.bursts]

    def strategy(self, name: str) -> StrategyResult:
        return next(s for s in self.strategies if s.name == name)

    def targets(self) -> dict[str, bool]:
        auto, peak = self.strategy("autosize"), self.strategy("peak")
        return verdict(auto.empty, peak.empty, auto.idle_vm_hours, peak.idle_vm_hours)

    @property
    def targets_met(self) -> bool:
        return all(self.targets().values())

    @property
    def idle_ratio(self) -> float | None:
        """Autosizing's idle ready VM-hours over the peak size's."""
        peak = self.strategy("peak").idle_vm_hours
        return self.strategy("autosize").idle_vm_hours / peak if peak else None

    @property
    def ok(self) -> bool:
        """Every checkout got a VM (at once or after its wait) in every strategy."""
        return all(s.served == s.checkouts == len(self.trace.arrivals) for s in self.strategies)

    def as_dict(self) -> dict[str, Any]:
        ratio = self.idle_ratio
        return {"ok": self.ok, "targets_met": self.targets_met, "targets": self.targets(),
                "settings": asdict(self.settings), "machine": self.machine,
                "trace": {"checkouts": len(self.trace.arrivals), "bursts_at_s": [round(b) for b in self.trace.bursts],
                          "day_s": self.trace.day_s, "held_most": self.trace.held_most()},
                "ready_s": round(self.ready_s, 3), "idle_ratio": None if ratio is None else round(ratio, 4),
                "strategies": [{**s.as_dict(), "found_empty_in_bursts": s.empty_in(self.burst_spans)}
                               for s in self.strategies]}

    # -- text ------------------------------------------------------------------------------

    def tables(self) -> list[Any]:
        from rich.table import Table

        s = self.settings
        table = Table(title=f"a simulated day replayed (discrete events, not real time): "
                            f"{len(self.trace.arrivals):,} checkouts, seed {s.seed}, {s.bursts} bursts of "
                            f"{s.burst_size}, at most {self.trace.held_most():,} checked out at once; "
                            f"{self.ready_s:.1f} s to ready (± {s.jitter:g} per latency); "
                            f"autosizing: target_wait {s.target_wait:g}, min {s.min_size}, max {s.max_size}, "
                            f"scale_down_after {s.scale_down_after:g} s, window {s.window:g} s")
        for col in ("strategy", "sizes", "checkouts", "found empty", "%", "in bursts", "wait p50 s", "wait p99 s",
                    "wait max s", "idle ready VM-h", "clones made"):
            table.add_column(col, justify="left" if col == "strategy" else "right")
        for r in self.strategies:
            sizes = sorted({size for _, size in r.size_points})
            table.add_row(r.label, f"{sizes[0]}–{sizes[-1]}" if len(sizes) > 1 else str(sizes[0]),
                          f"{r.checkouts:,}", f"{r.empty:,}", f"{100 * r.empty_share:.2f}",
                          f"{r.empty_in(self.burst_spans):,}", f"{r.wait(50):.1f}",
                          f"{r.wait(99):.1f}", f"{r.wait(100):.1f}", f"{r.idle_vm_hours:,.1f}", f"{r.clones:,}")
        return [table]

    def summary(self) -> str:
        auto, peak, targets = self.strategy("autosize"), self.strategy("peak"), self.targets()
        return (f"autosizing found the pool empty {auto.empty:,} times against {peak.empty:,} at the peak size "
                f"({'met' if targets['misses'] else 'NOT met'}); idle ready VM-hours {auto.idle_vm_hours:,.1f} "
                f"against {peak.idle_vm_hours:,.1f}, ratio {format_ratio(self.idle_ratio)} (target <= "
                f"{IDLE_RATIO_TARGET:g}: {'met' if targets['idle'] else 'NOT met'}); targets "
                f"{'met' if self.targets_met else 'NOT met'}")

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row to the autosize table of ``path`` (making it when missing)."""
        rows = self.strategies

        def each(text: Any) -> str:
            return " / ".join(text(r) for r in rows)

        row = (f"| {time.strftime('%Y-%m-%d')} | {self.settings.seed} | {len(self.trace.arrivals):,} | "
               f"{self.ready_s:.1f} | {rows[0].size} / {rows[1].size} | "
               f"{each(lambda r: f'{r.empty:,}')} ({rows[2].empty_in(self.burst_spans):,}) | "
               f"{each(lambda r: f'{r.wait(99):.1f}')} | "
               f"{each(lambda r: f'{r.idle_vm_hours:,.1f}')} | {each(lambda r: f'{r.clones:,}')} | "
               f"{format_ratio(self.idle_ratio)} | {'met' if self.targets_met else 'NOT met'} | `{command}` |\n")
        append_row(path, AUTOSIZE_TABLE_HEADER, row, intro=AUTOSIZE_SECTION_INTRO)

    def figure(self) -> Figure:
        from corral.bench.plots import DayCurve, autosize_figure

        hours = 24.0 / self.trace.day_s
        bins = [0] * FIGURE_BINS  # checkouts per quarter of an hour of the clock
        for at in self.trace.arrivals:
            bins[min(int(at * hours * 4), FIGURE_BINS - 1)] += 1
        curves = [DayCurve(r.label, averaged(r.ready_points, self.trace.day_s, FIGURE_BINS)) for r in self.strategies]
        sizes = self.strategy("autosize").size_points
        size = DayCurve("(c) autosized: its size", [(t * hours, n) for t, n in sizes] + [(24.0, sizes[-1][1])])
        return autosize_figure(curves, size, [(i * 24.0 / FIGURE_BINS, n) for i, n in enumerate(bins)],
                               title=f"one simulated day, {len(self.trace.arrivals):,} checkouts "
                                     f"(seed {self.settings.seed}), {self.ready_s:.1f} s to ready; ready VMs as "
                                     "the mean of each quarter of an hour")


FIGURE_BINS = 96  # quarters of an hour


def averaged(points: list[tuple[float, int]], day_s: float, bins: int) -> list[tuple[float, float]]:
    """The step function ``points`` (seconds, count from then on) as its mean over each of
    ``bins`` equal parts of the day: (hour of the clock the part starts, mean)."""
    width = day_s / bins
    area = [0.0] * bins
    ends = [t for t, _ in points[1:]] + [day_s]
    for (start, count), end in zip(points, ends, strict=True):
        at = start
        while at < end:
            part = min(int(at // width), bins - 1)
            upto = min(end, (part + 1) * width)
            area[part] += count * (upto - at)
            at = upto if upto > at else end
    return [(i * 24.0 / bins, a / width) for i, a in enumerate(area)] + [(24.0, area[-1] / width)]


AUTOSIZE_TABLE_HEADER = (
    "| date | seed | checkouts | s to ready | average / peak size | found empty (a) / (b) / (c) ((c) in bursts) | "
    "wait p99 s (a) / (b) / (c) | idle ready VM-h (a) / (b) / (c) | clones (a) / (b) / (c) | idle (c)/(b) | "
    "targets | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
AUTOSIZE_SECTION_INTRO = "## `corral bench autosize`: pools sized from demand over a simulated day\n\n" + paragraph(
    "A day cannot run in real time: this is a discrete-event replay in simulated time of one pool, the same "
    "seeded trace for each of three strategies: (a) a fixed size at the *average demand*, the mean number of "
    "checkouts in one replenishment time over the day, rounded up; (b) a fixed size at the *peak*, the most "
    "checkouts within any one replenishment time of the day; (c) autosizing (`pools/autosize.py`: a Poisson "
    "quantile of the decayed demand over the measured time to ready, up at once, down after "
    "`scale_down_after`). The day: 4 checkouts/h at night, a ramp 06:00–09:00 to 180/h, a lunch dip to 60/h "
    "12:00–13:30, a ramp down 17:00–20:00, and 6 bursts of 50 checkouts within a minute between 08:30 and "
    "17:00; hold times log-normal (median 20 min, σ 1.2, at most 8 h). A VM takes the simulator's default "
    "latencies to be ready (create call 0.5 s + clone 2 s + boot 10 s, each ± 20 %). vmpooler's pool model: "
    "a checkout takes a ready VM and a replacement is asked for at once; a checkout finding none ready waits "
    "for the next VM (\"found empty\", its wait recorded; \"in bursts\": from a burst's start to one "
    "replenishment time after its minute); a returned VM is destroyed. Idle ready VM-hours "
    "are the time integral of the ready VMs. Targets: (c) finds the pool empty no more often than (b), and "
    "holds at most 0.6 × (b)'s idle ready VM-hours."
)
