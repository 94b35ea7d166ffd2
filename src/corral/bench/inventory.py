"""``corral bench inventory``: the live inventory at vCenter's maximums, against re-polling.

Two systems are measured in one run, each in a fresh process of its own (``python -m
corral.bench.inventory --worker corral|baseline``), so that its resident memory and CPU are
its own. Each process builds the same simulated cluster: ``hosts`` hosts (2,500, vCenter's
published maximum) and ``vms`` powered-on, booted VMs (45,000) spread evenly over the hosts
and over ``pools`` pools, added with the simulator's ``inject_vm`` hook. Then:

- **corral**: a :class:`~corral.inventory.monitor.ProviderMonitor` loads the first full
  snapshot of the change feed into its repository (the *initial load*), then long-polls
  the feed, analyses each answer and publishes the events on an
  :class:`~corral.inventory.bus.EventBus`;
- **baseline**: the old design, :class:`~corral.bench.inventory_baseline.PollingInventory`:
  every ``poll_interval`` seconds a pool of ``threads`` threads fetches every host's VM list
  (one call per host) and diffs it with the previous cycle; the same analyser turns the
  differences into the same events on the same kind of bus. Its initial load is its first
  full cycle. The default interval, 3 s, is oVirt's ``VdsRefreshRate`` (the engine's per-host
  VM status poll).

After the load both processes collect garbage, freeze what is alive and raise the
young-generation threshold, as ``corral serve`` does (``corral.api.app.tune_gc``), and use
uvloop when it is installed, as uvicorn does. Then, in the same process:

1. **idle**: nothing changes for ``idle`` seconds; CPU seconds per wall second. The
   baseline's idle and churn phases start with a poll cycle and last whole poll intervals,
   so that its CPU per second does not depend on where the window falls.
2. **churn**: a driver task wakes every 5 ms and flips the guest of as many random VMs
   as the ``rate`` (2,000 changes/s) asks for by then (``set_guest_ready``: up ↔ booting),
   noting ``time.perf_counter()`` of each change; a driver that fell behind catches up a
   tick's worth at a time, letting the loop run in between, and gives up what is more than
   0.25 s late (so a saturated process shows as a rate not achieved). A bus subscriber takes each
   :class:`~corral.domain.events.VmStateChanged`; its *change-to-event latency* is the time it
   was received minus the time of the change. The driver never changes a VM whose last change
   has not been seen as an event yet (it picks another one): a second flip within one feed
   answer would undo the first and leave nothing to see, so no change coalesces and every
   change must give exactly one event; after the phase the bench waits for the stragglers,
   and a change still unseen then is *missing*. The process's CPU is measured over the phase,
   and the driver's own CPU (its thread's time while it makes changes: the simulator's
   bookkeeping, not the inventory's) is measured too and taken off for the *net* figure
   (the driver's wake-ups themselves, about 1 % of a core at 200 a second, stay in it).
3. **steps** (corral only): the same churn at rising rates (``steps``), ``step_duration``
   seconds each, until one is not *sustained*. A rate is sustained when the driver achieved
   at least 95 % of it, no event went missing, the lag did not grow (p99 of the changes of
   the last third of the step ≤ 2 × the p99 of the first third + 10 ms) and the oldest
   change still unseen when the step ended was at most 250 ms old. The driver, the simulator
   and corral share one process, and so one core: the ceiling found is that of the whole
   process, a lower bound for corral against a remote endpoint.

Resident memory is read from ``/proc/self/status`` (VmRSS, and VmHWM for the peak); it is
the whole process: the interpreter, the simulator with its 45,000 VMs and the inventory.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from corral.bench.markdown import append_row

Say = Callable[[str], None]

MAX_HOSTS = 2_500  # vCenter's published maximums (hosts and powered-on VMs per vCenter)
MAX_VMS = 45_000
TARGET_RATE = 2_000.0  # changes/s at which the latency target holds
TARGET_LOAD_S = 5.0
TARGET_RSS_MB = 250.0
TARGET_P99_MS = 50.0
OVIRT_REFRESH_S = 3.0  # oVirt engine's VdsRefreshRate: its per-host VM status poll
DEFAULT_STEPS = (2_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 160_000)

TICK_S = 0.005  # the churn driver's period
MAX_BURST_S = 0.25  # a late driver tick catches up on at most this much of the rate; the rest is lost
SUSTAIN_ACHIEVED = 0.95  # sustained: the driver made at least this share of the changes asked
SUSTAIN_GROWTH = 2.0  # ... and p99(last third) <= SUSTAIN_GROWTH * p99(first third) + SUSTAIN_SLACK_S
SUSTAIN_SLACK_S = 0.010
SUSTAIN_OLDEST_S = 0.25  # ... and the oldest unseen change at the end of the step was this young


@dataclass
class BenchSettings:
    hosts: int = MAX_HOSTS
    vms: int = MAX_VMS
    pools: int = 300
    rate: float = TARGET_RATE
    duration: float = 10.0
    idle: float = 5.0
    poll_interval: float = OVIRT_REFRESH_S
    threads: int = 16
    steps: list[float] = field(default_factory=lambda: [float(s) for s in DEFAULT_STEPS])
    step_duration: float = 4.0
    seed: int = 1

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, for settings a run cannot use."""
        if self.hosts < 1 or self.vms < 1 or self.pools < 1:
            raise ValueError("need at least 1 host, 1 VM and 1 pool")
        if self.rate <= 0 or self.duration <= 0 or self.idle <= 0:
            raise ValueError("need --rate, --duration and --idle above 0")
        if self.poll_interval <= 0 or self.threads < 1:
            raise ValueError("need --poll-interval above 0 and --threads >= 1")
        if any(s <= 0 for s in self.steps) or self.step_duration <= 0:
            raise ValueError("need every step rate and --step-duration above 0")


# -- results -------------------------------------------------------------------------------


def percentile(ordered: list[float] | array, q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of sorted ``ordered``; 0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return float(ordered[int(rank) - 1])


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
        """Set ``sustained`` and ``why`` (see the module docstring)."""
        problems = []
        if self.achieved_rate < SUSTAIN_ACHIEVED * self.rate:
            problems.append(f"driver reached {self.achieved_rate:,.0f}/s only")
        if self.missing or self.overflows:
            problems.append(f"{self.missing} events missing, {self.overflows} overflows")
        if self.p99_last_third_ms > SUSTAIN_GROWTH * self.p99_first_third_ms + SUSTAIN_SLACK_S * 1000:
            problems.append(f"lag grew: p99 {self.p99_first_third_ms:.1f} -> {self.p99_last_third_ms:.1f} ms")
        if self.oldest_unseen_end_ms > SUSTAIN_OLDEST_S * 1000:
            problems.append(f"backlog of {self.backlog_end} changes, oldest {self.oldest_unseen_end_ms:,.0f} ms")
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

    @property
    def max_sustained_rate(self) -> float | None:
        """The highest step rate sustained, below the first one that was not; None without steps."""
        if not self.steps:
            return None
        best = 0.0
        for step in self.steps:
            if not step.sustained:
                break
            best = step.rate
        return best

    @property
    def max_rate_within_target(self) -> float | None:
        """The highest sustained step rate whose p99 was within the latency target."""
        if not self.steps:
            return None
        best = 0.0
        for step in self.steps:
            if not step.sustained:
                break
            if step.p99_ms <= TARGET_P99_MS:
                best = step.rate
        return best

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


def format_ratio(value: float | None) -> str:
    """``0.42``, or ``1/1,234`` for ratios below 0.01; empty when there is none."""
    if value is None:
        return ""
    if value >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"1/{1 / value:,.0f}"


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


@dataclass
class InventoryBenchResult:
    settings: BenchSettings
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
        return {"ok": self.ok, "settings": asdict(self.settings), "machine": self.machine,
                "at_maximums": self.at_maximums,
                "targets": {"load_s": TARGET_LOAD_S, "rss_mb": TARGET_RSS_MB, "p99_ms": TARGET_P99_MS,
                            "met": self.targets()},
                "corral": self.corral.as_dict(), "baseline": self.baseline.as_dict(),
                "ratios": {k: None if v is None else round(v, 4) for k, v in self.ratios().items()}}

    # -- text ------------------------------------------------------------------------------

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


# -- the worker: one system in a process of its own ----------------------------------------


def _status_mb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS")


def hwm_mb() -> float:
    return _status_mb("VmHWM")


def tune_gc() -> None:
    """What ``corral serve`` does once the service has started (``corral.api.app.tune_gc``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


class Churn:
    """Makes guest-state changes at a rate and matches each to its event; see the module docstring."""

    def __init__(self, provider: Any, names: list[str], seed: int) -> None:
        self.provider = provider
        self.names = names
        self.ready = [True] * len(names)  # every VM starts powered on and booted
        self.pending: dict[str, float] = {}  # VM -> perf_counter() of its change not seen yet
        self.rng = random.Random(seed)
        self.unmatched = 0
        self.repicked = 0
        self._start = time.perf_counter()
        self.latency: array[float] = array("d")  # seconds, per event seen
        self.changed_at: array[float] = array("d")  # when its change was made, seconds after the start

    def window(self) -> None:
        """Start a new phase: forget the latencies and counters of the last one."""
        self._start = time.perf_counter()
        self.latency = array("d")
        self.changed_at = array("d")
        self.unmatched = 0
        self.repicked = 0

    def seen(self, vm: str) -> None:
        """An event for ``vm`` arrived (the bus subscriber calls this)."""
        made = self.pending.pop(vm, None)
        if made is None:
            self.unmatched += 1
            return
        self.latency.append(time.perf_counter() - made)
        self.changed_at.append(made - self._start)

    async def drive(self, rate: float, seconds: float) -> tuple[int, float, float]:
        """Changes at ``rate``/s for ``seconds``: (changes made, wall seconds, driver CPU seconds)."""
        names, ready, pending, rng, provider = self.names, self.ready, self.pending, self.rng, self.provider
        n = len(names)
        limit = max(1, n // 2)  # never have more than half the VMs waiting: picking would crawl
        burst = max(1, int(rate * MAX_BURST_S))
        chunk = int(rate * TICK_S) + 1  # changes made before the loop gets a turn
        perf, thread_time = time.perf_counter, time.thread_time
        start = perf()
        done = owed = 0
        cpu = 0.0
        while True:
            elapsed = perf() - start
            due = int(rate * min(elapsed, seconds)) - done - owed
            if due > burst:  # the driver is far behind: what it could not make is lost, not bunched up
                owed += due - burst
                due = burst
            now = min(due, chunk)  # behind: catch up a tick's worth at a time, letting the monitor run between
            c0 = thread_time()
            for _ in range(now):
                if len(pending) >= limit:
                    owed += 1
                    continue
                i = rng.randrange(n)
                while names[i] in pending:
                    self.repicked += 1
                    i = rng.randrange(n)
                name = names[i]
                ready[i] = not ready[i]
                pending[name] = perf()
                provider.set_guest_ready(name, ready[i])
                done += 1
            cpu += thread_time() - c0
            if elapsed >= seconds:
                return done, elapsed, cpu
            await asyncio.sleep(TICK_S if due <= now else 0)

    async def drain(self, timeout: float) -> None:
        """Wait until every change was seen, or ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while self.pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)

    def oldest_unseen_ms(self) -> float:
        if not self.pending:
            return 0.0
        return 1000.0 * (time.perf_counter() - min(self.pending.values()))


class Worker:
    """One system, its simulator, the churn and the measurements, in this process."""

    def __init__(self, system: str, settings: BenchSettings, say: Say) -> None:
        self.system = system
        self.s = settings
        self.say = say
        self.monitor: Any = None
        self.poller: Any = None
        self.bus: Any = None
        self.churner: Churn | None = None

    async def _build(self) -> tuple[Any, list[str]]:
        from corral.providers.sim import SimProvider, SimSettings

        s = self.s
        provider = SimProvider("sim", SimSettings(hosts=s.hosts, time_scale=0.001, seed=s.seed))
        await provider.connect()
        hosts = [h.name for h in await provider.list_hosts()]
        names = [f"bench-{i:05d}" for i in range(s.vms)]
        for i, name in enumerate(names):
            provider.inject_vm(name, hosts[i % len(hosts)], f"pool-{i % s.pools:03d}")
        return provider, names

    def _counters(self) -> tuple[int, int, int]:
        """(feed resnapshots, subscriber overflows, poll cycles) so far."""
        resnapshots = self.monitor.stats.resnapshots if self.monitor is not None else 0
        cycles = self.poller.cycles if self.poller is not None else 0
        overflows = self.bus.stats["bench"].overflows
        return resnapshots, overflows, cycles

    async def _phase_start(self) -> None:
        """The baseline's phases start as a poll cycle starts."""
        if self.poller is not None:
            await self.poller.cycle_start()

    def _length(self, seconds: float) -> float:
        """The baseline's phases last whole poll intervals."""
        if self.poller is None:
            return seconds
        return max(1, round(seconds / self.s.poll_interval)) * self.s.poll_interval

    def _drain_timeout(self) -> float:
        if self.poller is None:
            return 5.0
        return self.s.poll_interval + 3 * max(self.poller.cycle_seconds[-5:]) + 2.0

    async def idle(self) -> PhaseResult:
        await self._phase_start()
        seconds = self._length(self.s.idle)
        before = self._counters()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        after = self._counters()
        return PhaseResult("idle", 0.0, round(wall, 4), cpu_s=cpu, resnapshots=after[0] - before[0],
                           overflows=after[1] - before[1], cycles=after[2] - before[2])

    async def churn(self, name: str, rate: float, seconds: float) -> PhaseResult:
        churn = self.churner
        assert churn is not None
        await self._phase_start()
        seconds = self._length(seconds)
        churn.window()
        before = self._counters()
        cpu0 = time.process_time()
        changes, wall, driver_cpu = await churn.drive(rate, seconds)
        cpu = time.process_time() - cpu0
        backlog, oldest = len(churn.pending), churn.oldest_unseen_ms()
        await churn.drain(self._drain_timeout())
        after = self._counters()
        missing = len(churn.pending)
        churn.pending.clear()  # their events, if they come later, count as unmatched
        lat = sorted(churn.latency)
        third = seconds / 3
        first = sorted(v for v, at in zip(churn.latency, churn.changed_at, strict=True) if at < third)
        last = sorted(v for v, at in zip(churn.latency, churn.changed_at, strict=True) if at >= 2 * third)
        result = PhaseResult(
            name, rate, round(wall, 4), changes=changes, achieved_rate=changes / wall if wall else 0.0,
            events=len(lat), missing=missing, unmatched=churn.unmatched, repicked=churn.repicked,
            p50_ms=1000 * percentile(lat, 50), p90_ms=1000 * percentile(lat, 90), p99_ms=1000 * percentile(lat, 99),
            max_ms=1000 * (lat[-1] if lat else 0.0), p99_first_third_ms=1000 * percentile(first, 99),
            p99_last_third_ms=1000 * percentile(last, 99), backlog_end=backlog, oldest_unseen_end_ms=oldest,
            cpu_s=cpu, driver_cpu_s=driver_cpu, resnapshots=after[0] - before[0], overflows=after[1] - before[1],
            cycles=after[2] - before[2])
        result.judge()
        return result

    def _report(self, phase: PhaseResult) -> None:
        if not phase.rate:
            self.say(f"{self.system}: idle {phase.seconds:.1f} s: CPU {phase.cpu_percent:.2f} % of a core")
            return
        self.say(f"{self.system}: {phase.rate:,.0f} changes/s for {phase.seconds:.1f} s: {phase.changes:,} changes, "
                 f"{phase.events:,} events, {phase.missing} missing; p50 {phase.p50_ms:.2f} ms, "
                 f"p99 {phase.p99_ms:.2f} ms, max {phase.max_ms:.1f} ms; CPU {phase.cpu_percent:.1f} % "
                 f"({phase.net_cpu_percent:.1f} % without the driver)"
                 + ("" if phase.name == "churn" else f"; {'sustained' if phase.sustained else 'NOT sustained'}"
                    + (f" ({phase.why})" if phase.why else "")))

    async def run(self) -> SystemResult:
        from corral.bench.inventory_baseline import PollingInventory
        from corral.domain.events import VmStateChanged
        from corral.inventory import EventBus, MonitorSettings, ProviderMonitor

        s, say = self.s, self.say
        rss_start = rss_mb()
        t0 = time.perf_counter()
        provider, names = await self._build()
        setup = time.perf_counter() - t0
        rss_sim = rss_mb()
        say(f"{self.system}: {s.hosts:,} hosts and {s.vms:,} VMs simulated in {setup:.1f} s, RSS {rss_sim:.0f} MB")
        settings = MonitorSettings()
        self.bus = bus = EventBus(queue_size=settings.queue_size, history=settings.history)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if self.system == "corral":
            self.monitor = ProviderMonitor("sim", provider, bus, settings)
            await self.monitor.load()
            load = time.perf_counter() - t0
            hosts, vms = len(self.monitor.repo.hosts), len(self.monitor.repo.vms)
        else:
            self.poller = PollingInventory(provider, bus, threads=s.threads, interval=s.poll_interval)
            load = await self.poller.load()
            hosts, vms = len(self.poller._host_infos), self.poller.vms
        load_cpu = time.process_time() - cpu0
        rss_loaded, hwm_loaded = rss_mb(), hwm_mb()
        say(f"{self.system}: loaded {hosts:,} hosts and {vms:,} VMs in {load:.3f} s, RSS {rss_loaded:.0f} MB "
            f"(peak {hwm_loaded:.0f} MB)")
        tune_gc()
        self.churner = Churn(provider, names, s.seed)

        churner = self.churner

        async def on_event(event: Any) -> None:
            churner.seen(event.vm)

        bus.subscribe("bench", on_event, accepts=lambda e: isinstance(e, VmStateChanged))
        task = asyncio.create_task(self.monitor.run() if self.monitor is not None else self.poller.run())
        try:
            await asyncio.sleep(0.2)  # the first long poll is waiting
            idle = await self.idle()
            self._report(idle)
            churn = await self.churn("churn", s.rate, s.duration)
            self._report(churn)
            rss_after, hwm = rss_mb(), hwm_mb()
            steps: list[PhaseResult] = []
            if self.monitor is not None:
                for rate in s.steps:
                    step = await self.churn(f"step-{rate:g}", rate, s.step_duration)
                    self._report(step)
                    steps.append(step)
                    if not step.sustained:
                        break
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await bus.close()
            if self.poller is not None:
                self.poller.close()
            await provider.close()
        poll = self.poller
        cycles_idle = poll.cycle_seconds[1:1 + max(1, idle.cycles)] if poll is not None else []
        cycles_churn = poll.cycle_seconds[-max(1, churn.cycles):] if poll is not None else []
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        return SystemResult(
            system=self.system, hosts=hosts, vms=vms, setup_s=setup, load_s=load, load_cpu_s=load_cpu,
            rss_start_mb=rss_start, rss_sim_mb=rss_sim, rss_loaded_mb=rss_loaded, hwm_loaded_mb=hwm_loaded,
            rss_after_churn_mb=rss_after, hwm_mb=hwm, idle=idle, churn=churn, steps=steps, loop=loop_name,
            cycle_s_mean_idle=sum(cycles_idle) / len(cycles_idle) if cycles_idle else None,
            cycle_s_mean_churn=sum(cycles_churn) / len(cycles_churn) if cycles_churn else None,
            cycle_s_max=max(poll.cycle_seconds) if poll is not None else None,
            late_cycles=poll.late_cycles if poll is not None else None)


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One system of corral bench inventory (internal).")
    parser.add_argument("--worker", choices=("corral", "baseline"), required=True)
    parser.add_argument("--settings", required=True, help="BenchSettings as JSON")
    parser.add_argument("--result", required=True, help="where to write the result as JSON")
    args = parser.parse_args(argv)
    settings = BenchSettings(**json.loads(args.settings))

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = _run_loop(Worker(args.worker, settings, say).run())
    Path(args.result).write_text(json.dumps(result.as_dict()))
    return 0


# -- the parent ----------------------------------------------------------------------------


def _worker_timeout(s: BenchSettings) -> float:
    phases = s.idle + s.duration + 3 * s.poll_interval + len(s.steps) * (s.step_duration + 5)
    return 180.0 + 3 * phases


def run_system(system: str, settings: BenchSettings, say: Say) -> SystemResult:
    """Run one system in a fresh process; its progress lines go to ``say``."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-inventory-") as tmp:
        out = Path(tmp) / "result.json"
        args = [sys.executable, "-m", "corral.bench.inventory", "--worker", system,
                "--settings", json.dumps(asdict(settings)), "--result", str(out)]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        timer = threading.Timer(_worker_timeout(settings), process.kill)
        timer.start()
        tail: list[str] = []
        try:
            assert process.stderr is not None
            for line in process.stderr:
                line = line.rstrip("\n")
                tail = [*tail[-40:], line]
                say(line)
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0 or not out.exists():
            raise RuntimeError(f"the {system} worker failed ({process.returncode}):\n" + "\n".join(tail))
        return SystemResult.from_dict(json.loads(out.read_text()))


def run_inventory(settings: BenchSettings, progress: Say | None = None) -> InventoryBenchResult:
    """corral, then the baseline, each in a fresh process."""
    settings.check()
    say = progress or (lambda _m: None)
    corral = run_system("corral", settings, say)
    baseline = run_system("baseline", settings, say)
    return InventoryBenchResult(settings=settings, corral=corral, baseline=baseline, machine=machine())


if __name__ == "__main__":
    raise SystemExit(worker_main())
