"""The results of ``corral bench inventory`` and how they are shown.

- :class:`PhaseResult`: one measured phase (idle, churn or a step) of one system, with the
  rule that says whether a step's rate was *sustained* (:meth:`PhaseResult.judge`);
- :class:`SystemResult`: everything measured of one system in its own process; both travel
  from the worker to the parent as JSON (``as_dict`` / ``from_dict``);
- :class:`InventoryBenchResult`: both systems of a run, their ratios, the targets, the
  ``rich`` tables, the summary and the row :meth:`~InventoryBenchResult.append_markdown`
  adds to ``docs/benchmarks.md``;
- the targets and the sustained-rate thresholds.

The set-up that produces these figures is described in :mod:`corral.bench.inventory`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.bench.common import append_row, counted, format_ratio
from corral.bench.inventory_settings import MAX_HOSTS, MAX_VMS, TARGET_RATE, InventoryBenchSettings

TARGET_LOAD_S = 5.0
TARGET_RSS_MB = 250.0
TARGET_P99_MS = 50.0

SUSTAIN_ACHIEVED = 0.95  # sustained: the driver made at least this share of the changes asked
SUSTAIN_GROWTH = 2.0  # ... and p99(last third) <= SUSTAIN_GROWTH * p99(first third) + SUSTAIN_SLACK_S
SUSTAIN_SLACK_S = 0.010
if TYPE_CHECKING:
    from matplotlib.figure import Figure

SUSTAIN_OLDEST_S = 0.25  # ... and the oldest unseen change at the end of the step was this young


@dataclass
class PhaseResult:
    """One measured phase: idle (``rate`` 0) or churn at ``rate`` changes/s."""

    name: str
    rate: float  # changes/s asked
    seconds: float  # wall seconds measured (the driving, without waiting for stragglers)
    changes: int = 0
    achieved_rate: float = 0.0
    events: int = 0  # VmStateChanged events matched to a change of this phase
    missing: int = 0  # changes never seen as an event (after waiting for stragglers)
    unmatched: int = 0  # VmStateChanged events with no change waiting for them
    repicked: int = 0  # VMs the driver skipped because their last change was unseen yet
    p50_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    p99_first_third_ms: float = 0.0
    p99_last_third_ms: float = 0.0
    backlog_end: int = 0  # changes not yet seen as events when the driving ended
    oldest_unseen_end_ms: float = 0.0
    cpu_s: float = 0.0  # the process's CPU over the phase
    driver_cpu_s: float = 0.0  # of which the churn driver (and the simulator's bookkeeping)
    resnapshots: int = 0  # full snapshots the feed had to send (the monitor fell too far behind)
    overflows: int = 0  # times the subscriber's queue overflowed
    cycles: int = 0  # poll cycles started (baseline)
    sustained: bool | None = None
    why: str = ""

    @property
    def cpu_percent(self) -> float:
        """The process's CPU, % of one core."""
        return 100.0 * self.cpu_s / self.seconds if self.seconds else 0.0

    @property
    def net_cpu_percent(self) -> float:
        """The process's CPU without the churn driver's, % of one core."""
        return 100.0 * max(0.0, self.cpu_s - self.driver_cpu_s) / self.seconds if self.seconds else 0.0

    @property
    def net_cpu_us_per_change(self) -> float:
        return 1e6 * max(0.0, self.cpu_s - self.driver_cpu_s) / self.changes if self.changes else 0.0

    def judge(self) -> None:
        """Set ``sustained`` and ``why`` (the rule is in the docstring of :mod:`corral.bench.inventory`)."""
        problems = []
        if self.achieved_rate < SUSTAIN_ACHIEVED * self.rate:
            problems.append(f"driver reached {self.achieved_rate:,.0f}/s only")
        if self.missing or self.overflows:
            problems.append(f"{self.missing} events missing, {self.overflows} overflows")
        if self.p99_last_third_ms > SUSTAIN_GROWTH * self.p99_first_third_ms + SUSTAIN_SLACK_S * 1000:
            problems.append(f"lag grew: p99 {self.p99_first_third_ms:.1f} -> {self.p99_last_third_ms:.1f} ms")
        if self.oldest_unseen_end_ms > SUSTAIN_OLDEST_S * 1000:
            problems.append(f"backlog of {counted(self.backlog_end, 'change')}, "
                            f"oldest {self.oldest_unseen_end_ms:,.0f} ms")
        self.sustained = not problems
        self.why = "; ".join(problems)

    def as_dict(self) -> dict[str, Any]:
        out = {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out.update(cpu_percent=round(self.cpu_percent, 3), net_cpu_percent=round(self.net_cpu_percent, 3),
                   net_cpu_us_per_change=round(self.net_cpu_us_per_change, 2))
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PhaseResult:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass
class SystemResult:
    """Everything measured of one system (corral or the baseline) in its own process."""

    system: str
    hosts: int  # in its inventory after the load
    vms: int
    setup_s: float  # building the simulated cluster (not part of the load)
    load_s: float  # corral: ProviderMonitor.load(); baseline: its first full poll cycle
    load_cpu_s: float
    rss_start_mb: float  # the interpreter with corral imported
    rss_sim_mb: float  # ... and the simulated cluster built
    rss_loaded_mb: float  # ... and the inventory loaded
    hwm_loaded_mb: float  # the peak so far
    rss_after_churn_mb: float
    hwm_mb: float  # the peak up to the end of the churn phase
    idle: PhaseResult
    churn: PhaseResult
    steps: list[PhaseResult] = field(default_factory=list)
    loop: str = "asyncio"
    cycle_s_mean_idle: float | None = None  # baseline: wall seconds of one full poll cycle
    cycle_s_mean_churn: float | None = None
    cycle_s_max: float | None = None
    late_cycles: int | None = None

    def _best_rate(self, p99_limit_ms: float) -> float | None:
        """The highest step rate sustained (below the first one that was not) with p99 within the limit."""
        if not self.steps:
            return None
        best = 0.0
        for step in self.steps:
            if not step.sustained:
                break
            if step.p99_ms <= p99_limit_ms:
                best = step.rate
        return best

    @property
    def max_sustained_rate(self) -> float | None:
        """The highest step rate sustained, below the first one that was not; None without steps."""
        return self._best_rate(float("inf"))

    @property
    def max_rate_within_target(self) -> float | None:
        """The highest sustained step rate whose p99 was within the latency target."""
        return self._best_rate(TARGET_P99_MS)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, PhaseResult):
                value = value.as_dict()
            elif f.name == "steps":
                value = [s.as_dict() for s in value]
            elif isinstance(value, float):
                value = round(value, 4)
            out[f.name] = value
        out["max_sustained_rate"] = self.max_sustained_rate
        out["max_rate_within_target"] = self.max_rate_within_target
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SystemResult:
        names = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in names}
        kw["idle"] = PhaseResult.from_dict(data["idle"])
        kw["churn"] = PhaseResult.from_dict(data["churn"])
        kw["steps"] = [PhaseResult.from_dict(s) for s in data.get("steps", [])]
        return cls(**kw)


def _ratio(ours: float | None, theirs: float | None) -> float | None:
    if ours is None or theirs is None or theirs == 0:
        return None
    return ours / theirs


@dataclass
class InventoryBenchResult:
    settings: InventoryBenchSettings
    corral: SystemResult
    baseline: SystemResult
    machine: str = ""

    # -- ratios and targets ----------------------------------------------------------------

    def ratios(self) -> dict[str, float | None]:
        """corral / baseline for each figure both have (below 1: corral needs less)."""
        c, b = self.corral, self.baseline
        return {
            "load_s": _ratio(c.load_s, b.load_s),
            "hwm_mb": _ratio(c.hwm_mb, b.hwm_mb),
            "p50_ms": _ratio(c.churn.p50_ms, b.churn.p50_ms),
            "p99_ms": _ratio(c.churn.p99_ms, b.churn.p99_ms),
            "cpu_percent": _ratio(c.churn.cpu_percent, b.churn.cpu_percent),
            "net_cpu_percent": _ratio(c.churn.net_cpu_percent, b.churn.net_cpu_percent),
            "idle_cpu_percent": _ratio(c.idle.cpu_percent, b.idle.cpu_percent),
        }

    def targets(self) -> dict[str, bool]:
        c = self.corral
        return {"load": c.load_s <= TARGET_LOAD_S, "rss": c.hwm_mb <= TARGET_RSS_MB,
                "p99": c.churn.p99_ms <= TARGET_P99_MS}

    @property
    def at_maximums(self) -> bool:
        s = self.settings
        return s.hosts == MAX_HOSTS and s.vms == MAX_VMS and s.rate == TARGET_RATE

    @property
    def ok(self) -> bool:
        """Every change of both churn phases was seen as exactly one event."""
        return all(p.missing == 0 and p.unmatched == 0 and p.overflows == 0
                   for p in (self.corral.churn, self.baseline.churn))

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "targets_met": self.targets(), "settings": asdict(self.settings),
                "machine": self.machine, "at_maximums": self.at_maximums,
                "targets": {"load_s": TARGET_LOAD_S, "rss_mb": TARGET_RSS_MB, "p99_ms": TARGET_P99_MS,
                            "met": self.targets()},
                "corral": self.corral.as_dict(), "baseline": self.baseline.as_dict(),
                "ratios": {k: None if v is None else round(v, 4) for k, v in self.ratios().items()}}

    # -- text and figure -------------------------------------------------------------------

    def figure(self) -> Figure:
        """Latency against change rate: corral's steps (its churn phase when there were none)
        against the baseline's churn phase."""
        from corral.bench.plots import LatencyPoint, inventory_figure

        phases = self.corral.steps or [self.corral.churn]
        corral = [LatencyPoint(p.rate, p.p50_ms, p.p99_ms, p.sustained is not False) for p in phases]
        b = self.baseline.churn
        s = self.settings
        return inventory_figure(corral, LatencyPoint(b.rate, b.p50_ms, b.p99_ms), target_p99_ms=TARGET_P99_MS,
                                title=f"Live inventory, {counted(s.hosts, 'host')} and {counted(s.vms, 'VM')}: "
                                      f"corral's change feed against re-polling every {s.poll_interval:g} s")

    def table(self) -> Any:
        from rich.table import Table

        s, c, b, r, met = self.settings, self.corral, self.baseline, self.ratios(), self.targets()
        table = Table(title=f"live inventory: {s.hosts:,} hosts, {s.vms:,} VMs, churn {s.rate:,.0f} changes/s "
                            f"for {s.duration:g} s; baseline polls every {s.poll_interval:g} s with "
                            f"{s.threads} threads")
        for col in ("", "corral", "baseline", "corral/baseline", "target"):
            table.add_column(col, justify="left" if col in ("", "target") else "right")

        def ratio(key: str) -> str:
            return format_ratio(r[key])

        def target(key: str, text: str) -> str:
            return f"{text}: {'met' if met[key] else 'NOT met'}"

        def ms(value: float) -> str:
            return f"{value:,.1f}" if value >= 10 else f"{value:.2f}"

        def cycle(value: float | None) -> str:
            return "" if value is None else f"{value:.3f}"

        table.add_row("hosts / VMs in the inventory", f"{c.hosts:,} / {c.vms:,}", f"{b.hosts:,} / {b.vms:,}", "", "")
        table.add_row("initial load s", f"{c.load_s:.3f}", f"{b.load_s:.3f}", ratio("load_s"),
                      target("load", f"<= {TARGET_LOAD_S:g} s"))
        table.add_row("RSS before load MB (interpreter + simulator)", f"{c.rss_sim_mb:.0f}", f"{b.rss_sim_mb:.0f}",
                      "", "")
        table.add_row("RSS after load MB", f"{c.rss_loaded_mb:.0f}", f"{b.rss_loaded_mb:.0f}", "", "")
        table.add_row("peak RSS MB (VmHWM, to end of churn)", f"{c.hwm_mb:.0f}", f"{b.hwm_mb:.0f}", ratio("hwm_mb"),
                      target("rss", f"<= {TARGET_RSS_MB:g} MB"))
        table.add_row("change-to-event p50 ms", ms(c.churn.p50_ms), ms(b.churn.p50_ms), ratio("p50_ms"), "")
        table.add_row("change-to-event p99 ms", ms(c.churn.p99_ms), ms(b.churn.p99_ms), ratio("p99_ms"),
                      target("p99", f"<= {TARGET_P99_MS:g} ms"))
        table.add_row("change-to-event max ms", ms(c.churn.max_ms), ms(b.churn.max_ms), "", "")
        table.add_row(f"changes made/s (asked: {s.rate:,.0f})", f"{c.churn.achieved_rate:,.0f}",
                      f"{b.churn.achieved_rate:,.0f}", "", "")
        table.add_row("changes / events / missing", f"{c.churn.changes:,} / {c.churn.events:,} / {c.churn.missing}",
                      f"{b.churn.changes:,} / {b.churn.events:,} / {b.churn.missing}", "", "")
        table.add_row("CPU % of a core at churn (process)", f"{c.churn.cpu_percent:.1f}",
                      f"{b.churn.cpu_percent:.1f}", ratio("cpu_percent"), "")
        table.add_row("CPU % at churn without the driver", f"{c.churn.net_cpu_percent:.1f}",
                      f"{b.churn.net_cpu_percent:.1f}", ratio("net_cpu_percent"), "")
        table.add_row("CPU % idle", f"{c.idle.cpu_percent:.2f}", f"{b.idle.cpu_percent:.2f}",
                      ratio("idle_cpu_percent"), "")
        table.add_row("one full poll cycle s, idle / at churn", "",
                      f"{cycle(b.cycle_s_mean_idle)} / {cycle(b.cycle_s_mean_churn)}", "", "")
        sustained = c.max_sustained_rate
        within = c.max_rate_within_target
        table.add_row("highest sustained changes/s", "" if sustained is None else f"{sustained:,.0f}", "", "", "")
        table.add_row(f"... with p99 <= {TARGET_P99_MS:g} ms", "" if within is None else f"{within:,.0f}", "", "", "")
        return table

    def steps_table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"corral at rising change rates, {self.settings.step_duration:g} s each")
        for col in ("changes/s", "achieved", "p50 ms", "p99 ms", "max ms", "p99 1st/last third ms",
                    "backlog at end", "CPU %", "net CPU µs/change", "sustained"):
            table.add_column(col, justify="left" if col == "sustained" else "right")
        for step in self.corral.steps:
            table.add_row(f"{step.rate:,.0f}", f"{step.achieved_rate:,.0f}", f"{step.p50_ms:.2f}",
                          f"{step.p99_ms:.2f}", f"{step.max_ms:.2f}",
                          f"{step.p99_first_third_ms:.1f} / {step.p99_last_third_ms:.1f}",
                          f"{step.backlog_end} ({step.oldest_unseen_end_ms:.0f} ms)", f"{step.cpu_percent:.0f}",
                          f"{step.net_cpu_us_per_change:.1f}", "yes" if step.sustained else f"no: {step.why}")
        return table

    def summary(self) -> str:
        met = self.targets()
        names = {"load": f"initial load <= {TARGET_LOAD_S:g} s", "rss": f"RSS <= {TARGET_RSS_MB:g} MB",
                 "p99": f"p99 <= {TARGET_P99_MS:g} ms at {self.settings.rate:,.0f} changes/s"}
        lines = ["targets: " + ", ".join(f"{names[k]} {'met' if v else 'NOT met'}" for k, v in met.items())]
        if not self.at_maximums:
            lines.append(f"(the targets are stated for {MAX_HOSTS:,} hosts, {MAX_VMS:,} VMs and "
                         f"{TARGET_RATE:,.0f} changes/s; this run used other settings)")
        if not self.ok:
            lines.append("NOT OK: some changes were not seen as exactly one event")
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row (with the command) to the inventory table of ``path``."""
        s, c, b, r, met = self.settings, self.corral, self.baseline, self.ratios(), self.targets()

        def x(key: str) -> str:
            return format_ratio(r[key]) or "–"

        def ms(value: float) -> str:
            return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"

        sustained = c.max_sustained_rate
        within = c.max_rate_within_target
        rates = "–" if sustained is None else f"{sustained:,.0f} ({within or 0:,.0f})"
        targets = ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in met.items())
        row = (f"| {time.strftime('%Y-%m-%d')} | {s.hosts:,} | {s.vms:,} | {s.rate:,.0f} | "
               f"{c.load_s:.2f} / {b.load_s:.2f} | {c.hwm_mb:.0f} / {b.hwm_mb:.0f} | "
               f"{ms(c.churn.p50_ms)} / {ms(b.churn.p50_ms)} | {ms(c.churn.p99_ms)} / {ms(b.churn.p99_ms)} | "
               f"{x('p99_ms')} | {c.churn.net_cpu_percent:.1f} / {b.churn.net_cpu_percent:.1f} | "
               f"{x('net_cpu_percent')} | {c.idle.cpu_percent:.2f} / {b.idle.cpu_percent:.2f} | "
               f"{b.cycle_s_mean_idle or 0:.2f} | {rates} | {targets} | `{command}` |\n")
        append_row(path, INVENTORY_TABLE_HEADER, row, intro=INVENTORY_SECTION_INTRO)


INVENTORY_TABLE_HEADER = (
    "| date | hosts | VMs | changes/s | load s corral / baseline | peak RSS MB corral / baseline | "
    "p50 ms corral / baseline | p99 ms corral / baseline | p99 corral/baseline | "
    "CPU % at churn corral / baseline | CPU corral/baseline | idle CPU % corral / baseline | "
    "baseline cycle s | corral max sustained changes/s (p99 ≤ 50 ms) | targets | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
INVENTORY_SECTION_INTRO = (
    "## `corral bench inventory`: the live inventory at vCenter's maximums\n\n"
    "See the module docstring of `corral.bench.inventory` for the set-up.\n\n"
)
