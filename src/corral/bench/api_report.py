"""The results of ``corral bench api`` and how they are shown: corral in one set-up and the
baseline at one client count (:class:`ApiRow`), the comparisons between set-ups (Redis against
sqlite, several processes against one) with what the CPU of each process says about them, the
targets, the ``rich`` tables, the JSON, the summary and the rows
:meth:`ApiBenchResult.append_markdown` adds to ``docs/benchmarks.md``. The set-ups are
described in :mod:`corral.bench.api` and :mod:`corral.bench.api_setups`."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.bench.api_client import LoadResult
from corral.bench.api_cpu import cores_busy, scaling_note
from corral.bench.common import append_row, counted, format_ratio, machine, paragraph

if TYPE_CHECKING:
    from matplotlib.figure import Figure

TARGET_CLIENTS = 32
TARGET_PAIRS_PER_S = 1500.0
TARGET_P99_MS = 25.0
TARGET_REDIS_VS_SQLITE = 0.8  # Redis in one process against sqlite in one, pairs/s at 32 clients
SQLITE = "sqlite-1"  # the set-up the sqlite targets are of
REDIS = "redis-1"


@dataclass
class ApiRow:
    """corral in set-up ``setup`` (``store-processes``) and the baseline at one client count."""

    clients: int
    corral: LoadResult
    baseline: LoadResult
    setup: str = SQLITE

    @property
    def throughput_ratio(self) -> float:
        """corral's pairs/s over the baseline's (1.0: as fast as the bare HTTP stack)."""
        return self.corral.pairs_per_s / self.baseline.pairs_per_s if self.baseline.pairs_per_s else 0.0

    @property
    def p99_ratio(self) -> float:
        """corral's p99 over the baseline's (1.0: no slower than the bare HTTP stack)."""
        return self.corral.p99_ms / self.baseline.p99_ms if self.baseline.p99_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"setup": self.setup, "clients": self.clients, "corral": self.corral.as_dict(),
                "baseline": self.baseline.as_dict(), "throughput_ratio": round(self.throughput_ratio, 3),
                "p99_ratio": round(self.p99_ratio, 3), "cores_busy": cores_busy(self.corral)}


def one_process(setup: str) -> str | None:
    """The one-process set-up of the same store (``redis-2`` -> ``redis-1``); None for one of
    one process."""
    store, _, processes = setup.rpartition("-")
    return None if processes == "1" else f"{store}-1"


@dataclass
class ApiBenchResult:
    duration_s: float
    warmup_s: float
    pool_size: int
    rows: list[ApiRow]
    cores: int = field(default_factory=lambda: os.cpu_count() or 1)
    machine: str = field(default_factory=machine)

    def row(self, setup: str, clients: int) -> ApiRow | None:
        return next((r for r in self.rows if r.setup == setup and r.clients == clients), None)

    def ratio(self, setup: str, versus: str, clients: int) -> float | None:
        """pairs/s of ``setup`` over those of ``versus`` at ``clients``; None unless both were
        measured (and ``versus`` served any)."""
        mine, theirs = self.row(setup, clients), self.row(versus, clients)
        if mine is None or theirs is None or not theirs.corral.pairs_per_s:
            return None
        return mine.corral.pairs_per_s / theirs.corral.pairs_per_s

    @property
    def comparisons(self) -> dict[str, dict[int, float]]:
        """``"redis-1/sqlite-1"`` (Redis against sqlite, one process each) and, for each
        several-process set-up, ``"redis-2/redis-1"`` (scaling): the ratio of pairs/s at each
        client count both were measured at."""
        pairs = [(REDIS, SQLITE)] + [(r.setup, base) for r in self.rows if (base := one_process(r.setup))]
        out: dict[str, dict[int, float]] = {}
        for setup, versus in dict.fromkeys(pairs):
            for row in self.rows:
                if row.setup == setup and (value := self.ratio(setup, versus, row.clients)) is not None:
                    out.setdefault(f"{setup}/{versus}", {})[row.clients] = round(value, 3)
        return out

    @property
    def errors(self) -> int:
        """Errors of every corral run and of each baseline run (shared by the set-ups) once."""
        baselines = {row.clients: row.baseline.errors for row in self.rows}
        return sum(row.corral.errors for row in self.rows) + sum(baselines.values())

    @property
    def ok(self) -> bool:
        """No errors and no non-200 answers, from either server."""
        return self.errors == 0

    @property
    def targets_met(self) -> dict[str, bool | None]:
        """Each target at 32 clients on its own: sqlite in one process >= 1,500 pairs/s and
        p99 <= 25 ms; Redis in one process >= 0.8 of sqlite's pairs/s. None where not measured."""
        row = self.row(SQLITE, TARGET_CLIENTS)
        versus = self.ratio(REDIS, SQLITE, TARGET_CLIENTS)
        return {
            f"pairs_per_s_{TARGET_CLIENTS}": None if row is None else row.corral.pairs_per_s >= TARGET_PAIRS_PER_S,
            f"p99_ms_{TARGET_CLIENTS}": None if row is None else row.corral.p99_ms <= TARGET_P99_MS,
            f"redis_vs_sqlite_{TARGET_CLIENTS}": None if versus is None else versus >= TARGET_REDIS_VS_SQLITE,
        }

    @property
    def target_met(self) -> bool | None:
        """Every target measured at 32 clients met; None if none was measured."""
        met = [value for value in self.targets_met.values() if value is not None]
        return all(met) if met else None

    @property
    def scaling(self) -> str:
        """What the several-process set-up did against one process, and why, from the CPU of
        each process; empty when only one of them was measured."""
        several = [r.setup for r in self.rows if one_process(r.setup) == REDIS]
        if not several:
            return ""
        setup = max(several, key=lambda name: int(name.rpartition("-")[2]))
        clients = max((r.clients for r in self.rows if r.setup == setup and self.row(REDIS, r.clients)), default=None)
        if clients is None:
            return ""
        return scaling_note(self.row(setup, clients), self.row(REDIS, clients), self.cores)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": self.errors, "target_met": self.target_met, "targets_met": self.targets_met,
                "target": {"clients": TARGET_CLIENTS, "pairs_per_s": TARGET_PAIRS_PER_S, "p99_ms": TARGET_P99_MS,
                           "redis_vs_sqlite": TARGET_REDIS_VS_SQLITE},
                "duration_s": self.duration_s, "warmup_s": self.warmup_s, "pool_size": self.pool_size,
                "cores": self.cores, "machine": self.machine,
                "comparisons": {k: {str(n): v for n, v in per.items()} for k, per in self.comparisons.items()},
                "scaling": self.scaling, "rows": [row.as_dict() for row in self.rows]}

    def versus(self, row: ApiRow) -> tuple[float | None, float | None]:
        """``row``'s pairs/s against sqlite in one process, and against one process of its store."""
        base = one_process(row.setup)
        return (None if row.setup == SQLITE else self.ratio(row.setup, SQLITE, row.clients),
                None if base is None else self.ratio(row.setup, base, row.clients))

    def table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"checkout + return pairs over HTTP, {self.duration_s:g} s per run "
                            f"(after {self.warmup_s:g} s warm-up); {self.machine}")
        for col in ("clients", "server", "pairs/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors",
                    "server CPU ms/pair", "cores busy", "pairs/s vs baseline", "p99 vs baseline",
                    f"pairs/s vs {SQLITE}", "vs 1 process"):
            table.add_column(col, justify="left" if col == "server" else "right")
        for clients in dict.fromkeys(row.clients for row in self.rows):
            rows = [row for row in self.rows if row.clients == clients]
            for name, load, row in (("baseline", rows[0].baseline, None), *((r.setup, r.corral, r) for r in rows)):
                ratios = ["", "", "", ""]
                if row is not None:
                    ratios = [f"{row.throughput_ratio:.2f}x", f"{row.p99_ratio:.2f}x",
                              *(format_ratio(v) for v in self.versus(row))]
                cpu = "?" if load.server_cpu_ms_per_pair is None else f"{load.server_cpu_ms_per_pair:.3f}"
                busy = cores_busy(load).get("total")
                table.add_row(str(clients), name, f"{load.pairs_per_s:,.0f}", f"{load.p50_ms:.2f}",
                              f"{load.p95_ms:.2f}", f"{load.p99_ms:.2f}", f"{load.max_ms:.2f}", str(load.errors),
                              cpu, "?" if busy is None else f"{busy:.2f}", *ratios)
        return table

    def cpu_table(self) -> Any:
        """The cores each process kept busy during each corral run."""
        from rich.table import Table

        busy = [(row, cores_busy(row.corral)) for row in self.rows]
        names = list(dict.fromkeys(name for _, per in busy for name in per))
        table = Table(title=f"cores busy per process during each corral run ({self.cores} cores)")
        for col in ("setup", "clients", *names):
            table.add_column(col, justify="left" if col == "setup" else "right")
        for row, per in busy:
            table.add_row(row.setup, str(row.clients), *(f"{per[n]:.2f}" if n in per else "" for n in names))
        return table

    def tables(self) -> list[Any]:
        return [self.table(), self.cpu_table()]

    def figure(self) -> Figure:
        """pairs/s and p99 against clients: one curve per set-up and one for the baseline."""
        from corral.bench.plots import ThroughputCurve, api_figure

        def curve(label: str, loads: dict[int, LoadResult]) -> ThroughputCurve:
            counts = sorted(loads)
            return ThroughputCurve(label, counts, [loads[n].pairs_per_s for n in counts],
                                   [loads[n].p99_ms for n in counts])

        curves = [curve(setup, {r.clients: r.corral for r in self.rows if r.setup == setup})
                  for setup in dict.fromkeys(r.setup for r in self.rows)]
        curves.append(curve("baseline", {r.clients: r.baseline for r in self.rows}))
        return api_figure(curves, target_clients=TARGET_CLIENTS, target_pairs_per_s=TARGET_PAIRS_PER_S,
                          target_p99_ms=TARGET_P99_MS,
                          title=f"Checkout + return over HTTP, {self.duration_s:g} s per point; {self.machine}")

    def summary(self) -> str:
        lines = []
        if not self.ok:
            lines.append(f"NOT OK: {counted(self.errors, 'error')}")
            for row in self.rows:
                for name, load in (("baseline", row.baseline), (row.setup, row.corral)):
                    at = counted(row.clients, "client")
                    lines += [f"  {name} at {at}: {sample}" for sample in load.error_samples]
        dry = list(dict.fromkeys(row.setup for row in self.rows if row.corral.statuses.get("POST 503")))
        if dry:
            lines.append(f"corral answered 503 in {', '.join(dry)}: its pool ran dry, handed out faster than its "
                         "manager refilled it; a bigger --pool-size keeps it from running dry for a run this long")
        for name, per in self.comparisons.items():
            lines.append(f"pairs/s {name}: " + ", ".join(f"{v:.2f} at {counted(n, 'client')}" for n, v in per.items()))
        if self.scaling:
            lines.append(self.scaling)
        met = self.targets_met
        if met[f"pairs_per_s_{TARGET_CLIENTS}"] is not None:
            lines.append(f"{SQLITE} targets at {TARGET_CLIENTS} clients: >= {TARGET_PAIRS_PER_S:,.0f} pairs/s "
                         f"{_met(met[f'pairs_per_s_{TARGET_CLIENTS}'])}, p99 <= {TARGET_P99_MS:g} ms "
                         f"{_met(met[f'p99_ms_{TARGET_CLIENTS}'])}")
        if (versus := met[f"redis_vs_sqlite_{TARGET_CLIENTS}"]) is not None:
            lines.append(f"target at {TARGET_CLIENTS} clients: {REDIS} >= {TARGET_REDIS_VS_SQLITE:g} x {SQLITE} "
                         f"pairs/s {_met(versus)}")
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row per set-up and client count (with the command) to the API table of ``path``."""
        date = time.strftime("%Y-%m-%d")
        for row in self.rows:
            c, b = row.corral, row.baseline
            cpu = "?" if c.server_cpu_ms_per_pair is None else f"{c.server_cpu_ms_per_pair:.2f}"
            vs_sqlite, vs_one = (format_ratio(v) for v in self.versus(row))
            line = (f"| {date} | {row.setup} | {row.clients} | {self.pool_size} | {self.duration_s:g} | "
                    f"{c.pairs_per_s:,.0f} | {c.p50_ms:.2f} | {c.p99_ms:.2f} | {cpu} | {b.pairs_per_s:,.0f} | "
                    f"{b.p99_ms:.2f} | {row.throughput_ratio:.2f} | {row.p99_ratio:.2f} | {vs_sqlite} | {vs_one} | "
                    f"{c.errors + b.errors} | {self.cores} | `{command}` |\n")
            append_row(path, API_TABLE_HEADER, line, intro=API_SECTION_INTRO)


def _met(value: bool | None) -> str:
    return "met" if value else "NOT met"


API_TABLE_HEADER = (
    "| date | setup | clients | pool | s | corral pairs/s | corral p50 ms | corral p99 ms | corral CPU ms/pair | "
    "baseline pairs/s | baseline p99 ms | pairs/s corral/baseline | p99 corral/baseline | pairs/s vs sqlite-1 | "
    "pairs/s vs 1 process | errors | cores | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
API_SECTION_INTRO = "## `corral bench api` on both stores, in one and in several processes\n\n" + paragraph(
    "Checkout + return pairs as in the section on `corral bench api` above, one run measuring each set-up "
    "against the same baseline. Set-ups: `sqlite-1` (one `--role all` process on sqlite), `redis-1` (one on a "
    "redis-server with persistence), `redis-N` (N `--role api` processes and one `--role manager` on it, the "
    "client's connections spread over the N ports). CPU ms/pair counts every server-side process, the "
    "redis-server included; the last columns compare pairs/s with `sqlite-1` and with one process of the same "
    "store. See the module docstrings of `corral.bench.api` and `corral.bench.api_setups`."
)
