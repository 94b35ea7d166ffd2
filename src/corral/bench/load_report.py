"""The result of ``corral bench load``: its verdict, targets, tables and docs/benchmarks.md rows."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.api_client import LoadResult
from corral.bench.common import append_row, machine, paragraph
from corral.bench.load_clients import Held, SteadyResult

#: A phase's checkout p99 may be at most this many times the quiet one.
MAX_P99_RATIO = 2.0


@dataclass
class LoadRow:
    setup: str
    load: LoadResult

    def as_dict(self) -> dict[str, Any]:
        return {"setup": self.setup, "server_errors": self.load.server_errors,
                "duplicates": len(self.load.duplicates), **self.load.as_dict()}


@dataclass
class SlowPhase:
    name: str
    sse: int
    idle: int
    slow: int
    steady: SteadyResult
    held: Held

    def problems(self) -> list[str]:
        """What the slow clients did not get as asked: streams or keep-alives not held open,
        slow bodies answered other than 408 (or closed)."""
        out = []
        if self.held.sse_open < self.sse:
            out.append(f"{self.name}: {self.held.sse_open}/{self.sse} event streams opened")
        if self.held.idle_open - self.held.idle_closed < self.idle:
            out.append(f"{self.name}: {self.held.idle_open - self.held.idle_closed}/{self.idle} idle connections "
                       "stayed open")
        wrong = {k: n for k, n in self.held.statuses.items() if k.startswith("slow ") and k not in ("slow 408",
                                                                                                  "slow closed")}
        if wrong:
            out.append(f"{self.name}: slow bodies answered {wrong}")
        out += [f"{self.name}: {e}" for e in self.held.errors[:3]]
        return out

    def as_dict(self, quiet_p99: float) -> dict[str, Any]:
        return {"name": self.name, "sse": self.sse, "idle": self.idle, "slow": self.slow,
                "p99_ratio": ratio(self.steady.p99_ms, quiet_p99), "steady": self.steady.as_dict(),
                "held": self.held.as_dict()}


def ratio(value: float, quiet: float) -> float | None:
    return round(value / quiet, 3) if quiet > 0 else None


@dataclass
class LoadBenchResult:
    settings: dict[str, Any]
    rows: list[LoadRow]
    phases: list[SlowPhase]
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    machine: str = field(default_factory=machine)

    @property
    def quiet_p99(self) -> float:
        return self.phases[0].steady.p99_ms if self.phases else 0.0

    @property
    def duplicates(self) -> int:
        return sum(len(r.load.duplicates) for r in self.rows) + sum(len(p.steady.duplicates) for p in self.phases)

    @property
    def server_errors(self) -> int:
        return sum(r.load.server_errors for r in self.rows) + sum(p.steady.server_errors for p in self.phases)

    @property
    def worst_ratio(self) -> float | None:
        ratios = [r for p in self.phases[1:] if (r := ratio(p.steady.p99_ms, self.quiet_p99)) is not None]
        return max(ratios) if ratios else None

    @property
    def problems(self) -> list[str]:
        out = [problem for p in self.phases for problem in p.problems()]
        out += [f"{r.setup}: no checkout measured" for r in self.rows if not r.load.pairs]
        out += [f"{p.name}: no checkout measured" for p in self.phases if not p.steady.checkouts]
        return out

    @property
    def targets_met(self) -> dict[str, bool | None]:
        worst = self.worst_ratio
        return {"zero_duplicates": self.duplicates == 0, "zero_5xx": self.server_errors == 0,
                "slow_p99_within_2x": None if worst is None else worst <= MAX_P99_RATIO}

    @property
    def ok(self) -> bool:
        return all(v is not False for v in self.targets_met.values()) and not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "targets_met": self.targets_met, "problems": self.problems,
                "duplicates": self.duplicates, "server_errors": self.server_errors,
                "quiet_p99_ms": self.quiet_p99, "worst_p99_ratio": self.worst_ratio,
                "settings": self.settings, "cores": self.cores, "machine": self.machine,
                "load": [r.as_dict() for r in self.rows],
                "slow": [p.as_dict(self.quiet_p99) for p in self.phases]}

    # -- showing it ---------------------------------------------------------------------------
    def tables(self) -> list[Any]:
        from rich.table import Table

        s = self.settings
        load = Table(title=f"{s['clients']} clients checking out and returning, {s['seconds']:g} s; {self.machine}")
        for col in ("setup", "pairs/s", "checkout p50 ms", "checkout p99 ms", "pair p99 ms", "duplicates",
                    "answers >= 500", "of them pool empty", "errors"):
            load.add_column(col, justify="left" if col == "setup" else "right")
        for r in self.rows:
            x = r.load
            load.add_row(r.setup, f"{x.pairs_per_s:,.0f}", f"{x.checkout_p50_ms:.2f}", f"{x.checkout_p99_ms:.2f}",
                         f"{x.p99_ms:.2f}", str(len(x.duplicates)), str(x.server_errors), str(x.empty),
                         str(x.errors))
        slow = Table(title=f"steady client ({s['steady_rate']:g} pairs/s) beside slow clients, "
                           f"{s['phase_seconds']:g} s each, sqlite-1")
        for col in ("phase", "streams", "idle", "slow bodies", "checkouts", "p50 ms", "p99 ms", "p99 / quiet",
                    "slow bodies cut after s", "answers >= 500"):
            slow.add_column(col, justify="left" if col == "phase" else "right")
        for p in self.phases:
            cut = p.held.slow_cut_s
            r = ratio(p.steady.p99_ms, self.quiet_p99)
            slow.add_row(p.name, str(p.held.sse_open), str(p.held.idle_open - p.held.idle_closed),
                         str(p.held.slow_started), str(p.steady.checkouts), f"{p.steady.p50_ms:.2f}",
                         f"{p.steady.p99_ms:.2f}", "" if r is None else f"{r:.2f}",
                         f"{max(cut):.1f}" if cut else "", str(p.steady.server_errors))
        return [load, slow]

    def summary(self) -> str:
        met = self.targets_met
        lines = [f"duplicates: {self.duplicates} ({'met' if met['zero_duplicates'] else 'NOT met'}), answers >= 500: "
                 f"{self.server_errors} ({'met' if met['zero_5xx'] else 'NOT met'})"]
        if empty := sum(r.load.empty for r in self.rows):
            lines.append(f"{empty} of the answers >= 500 were 503s for a pool run dry: the clients took VMs faster "
                         "than the pool was refilled; a bigger --pool-size lasts the run")
        if self.worst_ratio is not None:
            lines.append(f"worst checkout p99 beside slow clients: {self.worst_ratio:.2f} x quiet "
                         f"({self.quiet_p99:.2f} ms); target <= {MAX_P99_RATIO:g} x "
                         f"{'met' if met['slow_p99_within_2x'] else 'NOT met'}")
        lines += [f"problem: {p}" for p in self.problems]
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        date = time.strftime("%Y-%m-%d")
        s = self.settings
        for r in self.rows:
            x = r.load
            append_row(path, LOAD_TABLE_HEADER,
                       f"| {date} | {r.setup} | {s['clients']} | {s['seconds']:g} | {x.pairs_per_s:,.0f} | "
                       f"{x.checkout_p50_ms:.2f} | {x.checkout_p99_ms:.2f} | {len(x.duplicates)} | "
                       f"{x.server_errors} | {x.empty} | {x.errors} | {self.cores} | `{command}` |\n",
                       intro=LOAD_SECTION_INTRO)
        for p in self.phases:
            r = ratio(p.steady.p99_ms, self.quiet_p99)
            cut = p.held.slow_cut_s
            append_row(path, SLOW_TABLE_HEADER,
                       f"| {date} | {p.name} | {p.held.sse_open} | {p.held.idle_open - p.held.idle_closed} | "
                       f"{p.held.slow_started} | {p.steady.checkouts} | {p.steady.p50_ms:.2f} | "
                       f"{p.steady.p99_ms:.2f} | {'' if r is None else f'{r:.2f}'} | "
                       f"{f'{max(cut):.1f}' if cut else ''} | {p.steady.server_errors} | `{command}` |\n",
                       after=LOAD_TABLE_HEADER)


LOAD_TABLE_HEADER = (
    "| date | setup | clients | s | pairs/s | checkout p50 ms | checkout p99 ms | duplicates | answers >= 500 | "
    "of them pool empty | errors | cores | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SLOW_TABLE_HEADER = (
    "| date | phase | streams | idle keep-alives | slow bodies | checkouts | p50 ms | p99 ms | p99 / quiet | "
    "slow bodies cut after s | answers >= 500 | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
LOAD_SECTION_INTRO = "## `corral bench load`: many clients, and slow ones\n\n" + paragraph(
    "First table: `clients` connections each checking out and returning back to back, against one `--role all` "
    "process on sqlite (`sqlite-1`) and against two `--role api` processes and one `--role manager` on a "
    "redis-server (`redis-2`). A hostname handed out twice over the whole run is a duplicate (returned VMs are "
    "destroyed); the target is none, and no answer of 500 or above. Second table: one process on sqlite, a steady "
    "client checking out and returning at a fixed rate, first alone (quiet), then beside clients sending a body "
    "one byte a second (cut by `:api: body_timeout` with a 408), idle keep-alive connections and event streams "
    "(each following one VM), each alone and all together; its checkout p99 must stay within 2x of the quiet "
    "one. See the module docstring of `corral.bench.load`."
)
