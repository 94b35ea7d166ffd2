"""What ``corral bench soak`` measured and what it makes of it: the samples of the server
(:class:`Sample`), the figures drawn from them by pure functions (windows, medians, growth,
the slope over the last half), the result with its targets, its tables, its row in
docs/benchmarks.md and its figure."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.bench.common import append_row, counted, machine, percentile
from corral.bench.soak_settings import WINDOWS, SoakSettings

if TYPE_CHECKING:
    from matplotlib.figure import Figure

RSS_TARGET_PCT = 5.0  # resident memory may grow less than this after the warm-up (the issue's target)
FDS_TARGET_PCT = 5.0  # open file descriptors likewise ...
FDS_SLACK = 2  # ... or by at most this many, whichever is more (a few are opened and closed all the time)
RISING_PCT = 1.0  # memory is "still rising" when the slope over the last half adds this much over that half


@dataclass(frozen=True)
class Sample:
    """The server, sampled once, and the checkouts completed since the sample before."""

    t_s: float  # seconds since the load started
    rss_kb: int  # VmRSS of /proc/PID/status
    fds: int  # entries of /proc/PID/fd
    threads: int  # Threads of /proc/PID/status
    store_bytes: int  # the sqlite files: database, WAL and shared memory
    wal_bytes: int  # of which the WAL
    cpu_s: float  # the server's user + system CPU seconds so far
    checkouts: int  # checkouts completed in the interval
    p50_ms: float  # of those checkouts (0 without any)
    p99_ms: float
    errors: int  # failed requests (no answer, an answer other than 200, or 503 for an empty pool)
    empty: int  # of which 503s for a pool without a ready VM


# -- figures, pure --------------------------------------------------------------------------


def measured(samples: Sequence[Sample], warmup_s: float) -> list[Sample]:
    """The samples after the warm-up."""
    return [s for s in samples if s.t_s >= warmup_s]


def windows(samples: Sequence[Sample], count: int = WINDOWS) -> list[list[Sample]]:
    """``samples`` cut into ``count`` windows of consecutive samples, as even as can be (fewer
    when there are fewer samples); none are left out."""
    count = min(count, len(samples))
    if count == 0:
        return []
    bounds = [round(i * len(samples) / count) for i in range(count + 1)]
    return [list(samples[bounds[i]:bounds[i + 1]]) for i in range(count)]


def growth_pct(first: float, last: float) -> float:
    """``last`` against ``first``, in percent of ``first`` (0 when ``first`` is 0 and so is ``last``)."""
    if first == 0:
        return 0.0 if last == 0 else float("inf")
    return (last - first) / first * 100.0


def slope_per_s(points: Sequence[tuple[float, float]]) -> float:
    """The least-squares slope of ``points`` (x, y); 0 with fewer than two distinct x."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


@dataclass(frozen=True)
class Drift:
    """How one quantity moved after the warm-up: the medians of the first and the last window,
    the growth between them, and the slope over the last half of the measured part."""

    first: float
    last: float
    growth_pct: float
    last_half_slope_per_h: float  # units per hour
    last_half_rise_pct: float  # what that slope adds over the last half, in percent of ``first``

    def as_dict(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in dataclasses.asdict(self).items()}


def drift(samples: Sequence[Sample], what: str) -> Drift | None:
    """The drift of the field ``what`` over ``samples`` (the measured part); None without samples."""
    parts = windows(samples)
    if not parts:
        return None
    first = statistics.median(getattr(s, what) for s in parts[0])
    last = statistics.median(getattr(s, what) for s in parts[-1])
    half = [s for s in samples if s.t_s >= (samples[0].t_s + samples[-1].t_s) / 2]
    slope = slope_per_s([(s.t_s, float(getattr(s, what))) for s in half])
    span = half[-1].t_s - half[0].t_s if half else 0.0
    return Drift(float(first), float(last), growth_pct(first, last), slope * 3600.0,
                 growth_pct(first, first + slope * span) if first else 0.0)


def fds_flat(d: Drift) -> bool:
    """Open descriptors are flat: they grew by at most FDS_TARGET_PCT, or FDS_SLACK, whichever is more."""
    return d.last - d.first <= max(FDS_SLACK, d.first * FDS_TARGET_PCT / 100.0)


def latency_ms(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile of unsorted ``values`` (0 when empty)."""
    return percentile(sorted(values), q)


# -- the result -----------------------------------------------------------------------------


@dataclass
class SoakResult:
    settings: SoakSettings
    samples: list[Sample]
    checkouts: int  # answered 200 with a VM, over the whole run
    returns: int  # VMs given back (DELETE answered 200), the final returns included
    errors: int
    empty: int
    p50_ms: float  # of the checkouts after the warm-up
    p99_ms: float
    max_ms: float
    server: dict[str, Any]  # what the server said at the end: VMs still out, ready, its pid
    error_samples: list[str] = field(default_factory=list)
    machine: str = field(default_factory=machine)

    @property
    def after_warmup(self) -> list[Sample]:
        return measured(self.samples, self.settings.warmup_s)

    def drifts(self) -> dict[str, Drift | None]:
        after = self.after_warmup
        return {what: drift(after, what) for what in ("rss_kb", "fds", "threads", "store_bytes", "wal_bytes")}

    @property
    def still_rising(self) -> bool | None:
        rss = self.drifts()["rss_kb"]
        return None if rss is None else rss.last_half_rise_pct > RISING_PCT

    @property
    def targets_met(self) -> dict[str, bool | None]:
        d = self.drifts()
        rss, fds = d["rss_kb"], d["fds"]
        return {"rss_growth": None if rss is None else rss.growth_pct < RSS_TARGET_PCT,
                "fds_flat": None if fds is None else fds_flat(fds)}

    @property
    def leaked(self) -> int:
        """VMs the server still had checked out after every VM was given back."""
        return int(self.server.get("running", 0))

    @property
    def server_errors_logged(self) -> int:
        logged = self.server.get("logged", {})
        return int(logged.get("error", 0)) + int(logged.get("critical", 0))

    @property
    def ok(self) -> bool:
        return (all(self.targets_met.values()) and self.errors == 0 and self.leaked == 0
                and self.checkouts > 0 and self.returns == self.checkouts and self.server_errors_logged == 0)

    def server_cpu_pct(self) -> float | None:
        """The server's CPU after the warm-up, in percent of one core."""
        after = self.after_warmup
        if len(after) < 2 or after[-1].t_s == after[0].t_s:
            return None
        return (after[-1].cpu_s - after[0].cpu_s) / (after[-1].t_s - after[0].t_s) * 100.0

    def worst_p99_ms(self) -> float:
        return max((s.p99_ms for s in self.after_warmup), default=0.0)

    def as_dict(self) -> dict[str, Any]:
        d = self.drifts()
        last = self.samples[-1] if self.samples else None
        return {
            "ok": self.ok,
            "targets_met": self.targets_met,
            "settings": dataclasses.asdict(self.settings) | {"warmup_s": self.settings.warmup_s,
                                                             "interval_s": self.settings.interval_s},
            "machine": self.machine,
            "checkouts": self.checkouts, "returns": self.returns, "errors": self.errors, "empty": self.empty,
            "error_samples": self.error_samples,
            "checkouts_per_s": round(self.checkouts / self.settings.run_s, 2),
            "p50_ms": round(self.p50_ms, 3), "p99_ms": round(self.p99_ms, 3), "max_ms": round(self.max_ms, 3),
            "worst_interval_p99_ms": round(self.worst_p99_ms(), 3),
            "rss_mb": _mb(d["rss_kb"], 1024), "fds": _plain(d["fds"]), "threads": _plain(d["threads"]),
            "store_mb": _mb(d["store_bytes"], 1024 * 1024), "wal_mb": _mb(d["wal_bytes"], 1024 * 1024),
            "server_cpu_pct": None if (cpu := self.server_cpu_pct()) is None else round(cpu, 1),
            "rss_growth_pct": None if d["rss_kb"] is None else round(d["rss_kb"].growth_pct, 2),
            "still_rising": self.still_rising,
            "final": None if last is None else {"rss_mb": round(last.rss_kb / 1024, 2), "fds": last.fds,
                                                "threads": last.threads,
                                                "store_mb": round(last.store_bytes / 1024 / 1024, 3),
                                                "wal_mb": round(last.wal_bytes / 1024 / 1024, 3),
                                                "cpu_s": round(last.cpu_s, 2)},
            "server": self.server,
            "leaked": self.leaked,
            "samples": [dataclasses.asdict(s) for s in self.samples],
        }

    def tables(self) -> list[Any]:
        return [self.report()]

    def report(self) -> str:
        s = self.settings
        d = self.drifts()
        lines = [f"{s.minutes:g} minutes at {s.rate:g} checkouts/s over {counted(s.clients, 'connection')}, "
                 f"{counted(s.pools, 'pool')} of {s.pool_size}, refills {s.ready_s:g} s, seed {s.seed}; "
                 f"warm-up {s.warmup_s:.0f} s, a sample every {s.interval_s:g} s",
                 f"  checkouts {self.checkouts:,} (returned {self.returns:,}), errors {self.errors} "
                 f"(empty pool {self.empty}), still out at the end {self.leaked}",
                 f"  checkout p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, worst interval p99 "
                 f"{self.worst_p99_ms():.1f} ms, max {self.max_ms:.1f} ms",
                 f"  server CPU {_pct(self.server_cpu_pct())} of a core; its log: "
                 + ", ".join(f"{n} {level}" for level, n in self.server.get("logged", {}).items())]
        lines += [f"    {message}" for message in self.server.get("log_errors", [])]
        for what, label, scale, unit in (("rss_kb", "RSS", 1024, "MB"), ("fds", "open fds", 1, ""),
                                         ("threads", "threads", 1, ""),
                                         ("store_bytes", "store", 1024 * 1024, "MB"),
                                         ("wal_bytes", "of which WAL", 1024 * 1024, "MB")):
            if (x := d[what]) is not None:
                lines.append(f"  {label}: {x.first / scale:,.2f} -> {x.last / scale:,.2f} {unit} "
                             f"({x.growth_pct:+.2f} %), last half {x.last_half_slope_per_h / scale:+,.2f} {unit}/h "
                             f"({x.last_half_rise_pct:+.2f} % over that half)")
        return "\n".join(lines)

    def summary(self) -> str:
        d = self.drifts()
        rss = d["rss_kb"]
        if rss is None:
            return "no sample after the warm-up"
        rising = "still rising" if self.still_rising else "flat"
        return (f"RSS grew {rss.growth_pct:+.2f} % after the warm-up (target < {RSS_TARGET_PCT:g} %), {rising} over "
                f"the last half; {self.checkouts:,} checkouts, {self.errors} errors, p99 {self.p99_ms:.1f} ms; "
                f"targets {'met' if all(self.targets_met.values()) else 'NOT met'}")

    def append_markdown(self, path: Path, command: str) -> None:
        d = self.drifts()
        s = self.settings

        def moved(x: Drift | None, scale: float, fmt: str) -> str:
            if x is None:
                return ""
            return f"{x.first / scale:{fmt}} → {x.last / scale:{fmt}} ({x.growth_pct:+.1f} %)"

        rss = d["rss_kb"]
        row = (f"| {time.strftime('%Y-%m-%d')} | {s.minutes:g} | {s.rate:g} | {self.checkouts:,} | {self.errors} | "
               f"{moved(rss, 1024, ',.1f')} | "
               f"{'' if rss is None else _slope_cell(rss, self.still_rising)} | "
               f"{moved(d['fds'], 1, ',.0f')} | {moved(d['store_bytes'], 1024 * 1024, ',.2f')} | "
               f"{self.p50_ms:.1f} / {self.p99_ms:.1f} ({self.worst_p99_ms():.1f}) | "
               f"{'met' if all(self.targets_met.values()) else 'NOT met'} | `{command}` |\n")
        append_row(path, SOAK_TABLE_HEADER, row, SOAK_INTRO)

    def figure(self) -> Figure:
        from corral.bench.plots import SoakSeries, soak_figure

        return soak_figure(SoakSeries(
            minutes=[x.t_s / 60 for x in self.samples], rss_mb=[x.rss_kb / 1024 for x in self.samples],
            fds=[x.fds for x in self.samples], store_mb=[x.store_bytes / 1024 / 1024 for x in self.samples],
            p50_ms=[x.p50_ms for x in self.samples], p99_ms=[x.p99_ms for x in self.samples]),
            warmup_minutes=self.settings.warmup_s / 60,
            rss_limit_mb=None if (rss := self.drifts()["rss_kb"]) is None
            else rss.first * (1 + RSS_TARGET_PCT / 100) / 1024,
            title=f"corral bench soak: {self.settings.minutes:g} min at {self.settings.rate:g} checkouts/s")


def _slope_cell(rss: Drift, rising: bool | None) -> str:
    """RSS's slope over the last half in MB/h, what it adds over that half, and whether that is still rising."""
    return (f"{rss.last_half_slope_per_h / 1024:+,.1f} MB/h ({rss.last_half_rise_pct:+.1f} %"
            f"{', still rising' if rising else ''})")


def _pct(value: float | None) -> str:
    return "?" if value is None else f"{value:.1f} %"


def _plain(d: Drift | None) -> dict[str, float] | None:
    return None if d is None else d.as_dict()


def _mb(d: Drift | None, per_mb: float) -> dict[str, float] | None:
    """``d`` in MB (its growth and rise in percent as they are)."""
    if d is None:
        return None
    return {"first": round(d.first / per_mb, 3), "last": round(d.last / per_mb, 3),
            "growth_pct": round(d.growth_pct, 3),
            "last_half_slope_per_h": round(d.last_half_slope_per_h / per_mb, 3),
            "last_half_rise_pct": round(d.last_half_rise_pct, 3)}


SOAK_TABLE_HEADER = (
    "| date | minutes | checkouts/s | checkouts | errors | RSS MB after warm-up → end (growth) | RSS slope, last half "
    "(rise over it) | open fds (growth) | store MB (growth) | checkout p50 / p99 ms (worst interval p99) | targets "
    "| command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SOAK_INTRO = "## `corral bench soak`: a steady load for half an hour\n\n"
