"""The results of ``corral bench scheduler`` and how they are shown: the ``rich`` tables, the
JSON, the summary and the rows :meth:`SchedulerBenchResult.append_markdown` adds to
``docs/benchmarks.md``. The set-up is described in :mod:`corral.bench.scheduler`."""

from __future__ import annotations

import statistics
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.common import append_row, format_ratio, paragraph
from corral.bench.scheduler_settings import SchedulerBenchSettings

TARGET_RATE = 200_000.0  # placements/s of one bulk call at 2,500 hosts and 10,000 VMs


@dataclass
class Timing:
    """The seconds of each repeat of one placer over ``vms`` VMs."""

    runs: list[float]
    vms: int

    @classmethod
    def of(cls, runs: list[float], vms: int) -> Timing:
        return cls(list(runs), vms)

    @property
    def best_s(self) -> float:
        return min(self.runs)

    @property
    def median_s(self) -> float:
        return statistics.median(self.runs)

    @property
    def rate(self) -> float:
        """Placements/s of the best repeat."""
        return self.vms / self.best_s if self.best_s else 0.0

    @property
    def median_rate(self) -> float:
        return self.vms / self.median_s if self.median_s else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"vms": self.vms, "runs_s": [round(r, 6) for r in self.runs], "best_s": round(self.best_s, 6),
                "median_s": round(self.median_s, 6), "per_s": round(self.rate, 1),
                "median_per_s": round(self.median_rate, 1)}


@dataclass
class SpeedResult:
    hosts: int
    usable_hosts: int  # up, not in maintenance, green, no configuration issues
    vms: int
    templates: list[str]
    placed: int  # of corral's placements, those that found a host
    corral: Timing
    numpy: Timing
    plain: Timing  # on the first plain.vms requests
    numpy_mismatches: int  # requests placed on another host than corral's (all of them)
    plain_mismatches: int  # ... of the plain greedy's prefix

    @property
    def identical(self) -> bool:
        return self.numpy_mismatches == 0 and self.plain_mismatches == 0

    @property
    def target_met(self) -> bool:
        return self.corral.rate >= TARGET_RATE

    def ratios(self) -> dict[str, float]:
        """corral's placements/s over each baseline's (best repeats)."""
        return {"corral_numpy": self.corral.rate / self.numpy.rate, "corral_plain": self.corral.rate / self.plain.rate}

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "usable_hosts": self.usable_hosts, "vms": self.vms, "templates": self.templates,
                "placed": self.placed, "corral": self.corral.as_dict(), "numpy": self.numpy.as_dict(),
                "plain": self.plain.as_dict(), "numpy_mismatches": self.numpy_mismatches,
                "plain_mismatches": self.plain_mismatches, "identical": self.identical,
                "target_per_s": TARGET_RATE, "target_met": self.target_met,
                "ratios": {k: round(v, 3) for k, v in self.ratios().items()}}


@dataclass
class QualityRow:
    """Where one rule left the hosts: their CPU and memory use at the end, in %."""

    rule: str  # count, least_used, corral
    label: str
    max_cpu: float
    max_memory: float
    std_cpu: float  # population standard deviation over the hosts
    std_memory: float
    above_limit: int  # hosts whose CPU or memory use is above the limit
    unplaced: int

    @property
    def max_use(self) -> float:
        """The highest use of any host, CPU or memory."""
        return max(self.max_cpu, self.max_memory)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["max_use"] = round(self.max_use, 3)
        return out


@dataclass
class QualityResult:
    hosts: int
    vms: int
    refresh: int
    limit: float
    start_cpu: float  # the cluster's use before the VMs, %
    start_memory: float
    demand_cpu: float  # ... and with every VM placed (CPU counted in cores: the same wherever they go)
    demand_memory: float
    rows: list[QualityRow] = field(default_factory=list)

    def row(self, rule: str) -> QualityRow:
        return next(r for r in self.rows if r.rule == rule)

    def checks(self) -> dict[str, bool]:
        corral = self.row("corral")
        others = [r for r in self.rows if r.rule != "corral"]
        return {"lowest_max": all(corral.max_use <= r.max_use for r in others),
                "within_limit": corral.above_limit == 0, "all_placed": corral.unplaced == 0}

    @property
    def ok(self) -> bool:
        return all(self.checks().values())

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "vms": self.vms, "refresh": self.refresh, "limit": self.limit,
                "start_cpu": round(self.start_cpu, 2), "start_memory": round(self.start_memory, 2),
                "demand_cpu": round(self.demand_cpu, 2), "demand_memory": round(self.demand_memory, 2),
                "rows": [r.as_dict() for r in self.rows], "checks": self.checks(), "ok": self.ok}


@dataclass
class SchedulerBenchResult:
    settings: SchedulerBenchSettings
    speed: SpeedResult
    quality: QualityResult
    machine: str = ""

    @property
    def ok(self) -> bool:
        """corral placed as both greedies do, and placed best."""
        return self.speed.identical and self.quality.ok

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "targets_met": {"placements_per_s": self.speed.target_met},
                "settings": asdict(self.settings), "machine": self.machine,
                "speed": self.speed.as_dict(), "quality": self.quality.as_dict()}

    # -- text ------------------------------------------------------------------------------

    def tables(self) -> list[Any]:
        return [self.speed_table(), self.quality_table()]

    def speed_table(self) -> Any:
        from rich.table import Table

        sp, r = self.speed, self.speed.ratios()
        table = Table(title=f"placement speed: {sp.hosts:,} hosts ({sp.usable_hosts:,} usable), {sp.vms:,} VMs of "
                            f"{len(sp.templates)} templates, interleaved; corral: one Scheduler.place call; "
                            f"the plain greedy places the first {sp.plain.vms:,}")
        for col in ("placer", "VMs", "placements/s", "median /s", "best s", "repeats", "same hosts", "corral ×"):
            table.add_column(col, justify="left" if col in ("placer", "same hosts") else "right")

        def same(mismatches: int, vms: int) -> str:
            return "yes" if mismatches == 0 else f"NO: {mismatches:,} differ"

        table.add_row("corral", f"{sp.corral.vms:,}", f"{sp.corral.rate:,.0f}",
                      f"{sp.corral.median_rate:,.0f}", f"{sp.corral.best_s:.4f}", str(len(sp.corral.runs)), "", "")
        table.add_row("numpy greedy", f"{sp.numpy.vms:,}", f"{sp.numpy.rate:,.0f}", f"{sp.numpy.median_rate:,.0f}",
                      f"{sp.numpy.best_s:.3f}", str(len(sp.numpy.runs)), same(sp.numpy_mismatches, sp.vms),
                      f"{r['corral_numpy']:,.1f}")
        table.add_row("plain greedy", f"{sp.plain.vms:,}", f"{sp.plain.rate:,.0f}", "",
                      f"{sp.plain.best_s:.3f}", "1", same(sp.plain_mismatches, sp.plain.vms),
                      f"{r['corral_plain']:,.0f}")
        return table

    def quality_table(self) -> Any:
        from rich.table import Table

        q = self.quality
        table = Table(title=f"placement quality: {q.hosts} hosts, {q.vms:,} VMs one by one; cluster use "
                            f"{q.start_cpu:.0f} % CPU / {q.start_memory:.0f} % memory before, "
                            f"~{q.demand_cpu:.0f} % / {q.demand_memory:.0f} % after; limit {q.limit:g} %; "
                            "fewest VMs: vmpooler before PR #167; corral: Scheduler.place")
        for col in ("rule", "max CPU %", "max memory %", "max use %", "σ CPU %", "σ memory %",
                    f"hosts > {q.limit:g} %", "unplaced"):
            table.add_column(col, justify="left" if col == "rule" else "right")
        for row in q.rows:
            table.add_row(row.label, f"{row.max_cpu:.1f}", f"{row.max_memory:.1f}", f"{row.max_use:.1f}",
                          f"{row.std_cpu:.1f}", f"{row.std_memory:.1f}", str(row.above_limit), str(row.unplaced))
        return table

    def summary(self) -> str:
        sp, q = self.speed, self.quality
        checks = q.checks()
        lines = [
            f"speed: corral {sp.corral.rate:,.0f} placements/s (median {sp.corral.median_rate:,.0f}); target "
            f">= {TARGET_RATE:,.0f}/s {'met' if sp.target_met else 'NOT met'}; "
            f"same hosts as the numpy greedy ({sp.vms:,} VMs) and the plain greedy ({sp.plain.vms:,}): "
            + ("yes" if sp.identical else f"NO ({sp.numpy_mismatches:,} and {sp.plain_mismatches:,} differ)")
            + ("" if sp.placed == sp.vms else f"; {sp.vms - sp.placed:,} VMs found no host"),
            (f"quality: corral's highest host use {q.row('corral').max_use:.1f} % "
             f"({'the lowest' if checks['lowest_max'] else 'NOT the lowest'}), "
             f"{q.row('corral').above_limit} hosts above {q.limit:g} %, {q.row('corral').unplaced} VMs unplaced"),
        ]
        if (sp.hosts, sp.vms) != (2_500, 10_000):
            lines.append("(the speed target is stated for 2,500 hosts and 10,000 VMs; this run used other sizes)")
        if not self.ok:
            lines.append("NOT OK: " + ", ".join(
                [*([] if sp.identical else ["corral's placements differ from the greedy's"]),
                 *[name for name, good in checks.items() if not good]]))
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row to each of the two scheduler tables of ``path`` (making them when missing)."""
        sp, r, q = self.speed, self.speed.ratios(), self.quality
        date = time.strftime("%Y-%m-%d")
        identical = "yes" if sp.identical else f"NO ({sp.numpy_mismatches} / {sp.plain_mismatches})"
        speed_row = (f"| {date} | {sp.hosts:,} | {sp.vms:,} | {sp.corral.rate:,.0f} ({sp.corral.median_rate:,.0f}) | "
                     f"{sp.numpy.rate:,.0f} | {sp.plain.rate:,.0f} ({sp.plain.vms:,}) | "
                     f"{format_ratio(r['corral_numpy'])} | {r['corral_plain']:,.0f} | {identical} | "
                     f"{'met' if sp.target_met else 'NOT met'} | `{command}` |\n")
        append_row(path, SPEED_TABLE_HEADER, speed_row, intro=SPEED_SECTION_INTRO)
        rows = [q.row("count"), q.row("least_used"), q.row("corral")]

        def each(text: Any) -> str:
            return " / ".join(text(row) for row in rows)

        quality_row = (f"| {date} | {q.hosts} | {q.vms:,} | {q.refresh} | {q.demand_cpu:.0f} / {q.demand_memory:.0f} | "
                       f"{each(lambda x: f'{x.max_use:.1f}')} | {each(lambda x: f'{x.max_cpu:.1f}')} | "
                       f"{each(lambda x: f'{x.max_memory:.1f}')} | {each(lambda x: f'{x.std_cpu:.1f}')} | "
                       f"{each(lambda x: f'{x.std_memory:.1f}')} | {each(lambda x: str(x.above_limit))} | "
                       f"{each(lambda x: str(x.unplaced))} | `{command}` |\n")
        append_row(path, QUALITY_TABLE_HEADER, quality_row, intro=QUALITY_SECTION_INTRO)


SPEED_TABLE_HEADER = (
    "| date | hosts | VMs | corral placements/s best (median) | numpy greedy placements/s | "
    "plain greedy placements/s (VMs) | corral/numpy | corral/plain | identical | target ≥ 200,000/s | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SPEED_SECTION_INTRO = "## `corral bench scheduler`: placing VMs, fast and well\n\n" + paragraph(
    "**Speed.** 2,500 heterogeneous hosts (seeded: 16–64 cores at 2,000–3,400 MHz, 128–1,024 GiB, Intel "
    "family 6 and AMD family 25 over six CPU models, some without `avx2` or `avx512f`, ~2 % in maintenance, "
    "~2 % yellow, a few with configuration issues, eight clusters, 10–60 % in use already) and 10,000 VMs of "
    "five templates (1 vCPU/2 GiB and 2/4 on any CPU, 4/8 on Intel family 6, 2/4 needing `avx2`, 8/32 needing "
    "`avx512f`) in a random, interleaved order. corral's figure is one `Scheduler.place` call with "
    "`reserve=True` on a fresh scheduler with the default settings (policy \"even\": CPU × 2 + memory; "
    "reservations on), best (median) of 5, with the garbage collector set as `corral serve` sets it. In the "
    "same run: the *numpy greedy*, one vectorised scan of every host per VM (best of 3, its time including "
    "the loads and static masks), and the *plain greedy*, `Scheduler.place_greedy`, timed on the first 400 "
    "VMs. corral must pick the same host as the numpy greedy for every VM and as the plain greedy for the "
    "400 (\"identical\"), or the run fails. Ratios are corral's "
    "placements/s over the baseline's."
)
QUALITY_TABLE_HEADER = (
    "| date | hosts | VMs | refresh | demand % CPU / memory | max use % fewest VMs / least-used / corral | "
    "max CPU % | max memory % | σ CPU % | σ memory % | hosts > 90 % | unplaced | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
QUALITY_SECTION_INTRO = paragraph(
    "**Quality.** 64 hosts of one CPU model and widely varying size, 0–40 % in use, and 2,000 VMs of six "
    "sizes (1/2, 2/4, 4/8, 8/16 GiB, memory-heavy 2/16, CPU-heavy 8/8), sized so that with every VM placed "
    "the cluster is at about 76 % of its memory and 64 % of its CPU (\"demand\"; a VM's CPU is "
    "vCPUs × host MHz × 0.25). Every rule places the VMs one by one in the same order on the same load "
    "accounting: *fewest VMs* (the up host with the fewest VMs, vmpooler before PR #167); *least-used* "
    "(vmpooler's selection: of the hosts that are up, green and at or below 90 % CPU and memory, those whose "
    "CPU % + memory % is at or below their average, least used first, taken round-robin; the list is "
    "selected again every `refresh` clones, a model of `host_selection_max_age`; no check that a VM fits); "
    "*corral* (`Scheduler.place`, default policy). Columns with three figures give them in that order; "
    "\"max use\" is the highest CPU or memory % of any host at the end, σ the population standard deviation "
    "over the hosts. The run fails unless corral's max use is the lowest, no host is above 90 % under corral "
    "and corral placed every VM."
)
