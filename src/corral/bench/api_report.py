"""The results of ``corral bench api`` and how they are shown: corral and the baseline at each
client count (:class:`ApiRow`), the targets, the ``rich`` table, the JSON, the summary and the
rows :meth:`ApiBenchResult.append_markdown` adds to ``docs/benchmarks.md``. The set-up is
described in :mod:`corral.bench.api`."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.bench.api_client import LoadResult
from corral.bench.common import append_row

TARGET_CLIENTS = 32
TARGET_PAIRS_PER_S = 1500.0
TARGET_P99_MS = 25.0


@dataclass
class ApiRow:
    """corral and the baseline at one client count."""

    clients: int
    corral: LoadResult
    baseline: LoadResult

    @property
    def throughput_ratio(self) -> float:
        """corral's pairs/s over the baseline's (1.0: as fast as the bare HTTP stack)."""
        return self.corral.pairs_per_s / self.baseline.pairs_per_s if self.baseline.pairs_per_s else 0.0

    @property
    def p99_ratio(self) -> float:
        """corral's p99 over the baseline's (1.0: no slower than the bare HTTP stack)."""
        return self.corral.p99_ms / self.baseline.p99_ms if self.baseline.p99_ms else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"clients": self.clients, "corral": self.corral.as_dict(), "baseline": self.baseline.as_dict(),
                "throughput_ratio": round(self.throughput_ratio, 3), "p99_ratio": round(self.p99_ratio, 3)}


@dataclass
class ApiBenchResult:
    duration_s: float
    warmup_s: float
    pool_size: int
    rows: list[ApiRow]

    @property
    def errors(self) -> int:
        return sum(row.corral.errors + row.baseline.errors for row in self.rows)

    @property
    def ok(self) -> bool:
        """No errors and no non-200 answers, from either server."""
        return self.errors == 0

    @property
    def targets_met(self) -> dict[str, bool | None]:
        """Each target of corral at 32 clients on its own (>= 1,500 pairs/s; p99 <= 25 ms);
        None where 32 clients were not measured."""
        row = next((r for r in self.rows if r.clients == TARGET_CLIENTS), None)
        return {
            f"pairs_per_s_{TARGET_CLIENTS}": None if row is None else row.corral.pairs_per_s >= TARGET_PAIRS_PER_S,
            f"p99_ms_{TARGET_CLIENTS}": None if row is None else row.corral.p99_ms <= TARGET_P99_MS,
        }

    @property
    def target_met(self) -> bool | None:
        """Both targets met at 32 clients; None if not measured."""
        met = list(self.targets_met.values())
        return None if None in met else all(met)

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "errors": self.errors, "target_met": self.target_met, "targets_met": self.targets_met,
                "target": {"clients": TARGET_CLIENTS, "pairs_per_s": TARGET_PAIRS_PER_S, "p99_ms": TARGET_P99_MS},
                "duration_s": self.duration_s, "warmup_s": self.warmup_s, "pool_size": self.pool_size,
                "rows": [row.as_dict() for row in self.rows]}

    def table(self) -> Any:
        from rich.table import Table

        table = Table(title=f"checkout + return pairs over HTTP, {self.duration_s:g} s per run "
                            f"(after {self.warmup_s:g} s warm-up)")
        for col in ("clients", "server", "pairs/s", "p50 ms", "p95 ms", "p99 ms", "max ms", "errors",
                    "server CPU ms/pair", "pairs/s vs baseline", "p99 vs baseline"):
            table.add_column(col, justify="left" if col == "server" else "right")
        for row in self.rows:
            for name, load in (("baseline", row.baseline), ("corral", row.corral)):
                ratios = ([f"{row.throughput_ratio:.2f}x", f"{row.p99_ratio:.2f}x"] if name == "corral"
                          else ["", ""])
                cpu = "?" if load.server_cpu_ms_per_pair is None else f"{load.server_cpu_ms_per_pair:.3f}"
                table.add_row(str(row.clients), name, f"{load.pairs_per_s:,.0f}", f"{load.p50_ms:.2f}",
                              f"{load.p95_ms:.2f}", f"{load.p99_ms:.2f}", f"{load.max_ms:.2f}", str(load.errors),
                              cpu, *ratios)
        return table

    def summary(self) -> str:
        lines = []
        if not self.ok:
            lines.append(f"NOT OK: {self.errors} errors")
            for row in self.rows:
                for name, load in (("baseline", row.baseline), ("corral", row.corral)):
                    lines += [f"  {name} at {row.clients} clients: {sample}" for sample in load.error_samples]
        if any(row.corral.statuses.get("POST 503") for row in self.rows):
            lines.append("corral answered 503: its pool ran dry; a bigger --pool-size keeps it from running dry")
        rate, p99 = self.targets_met.values()
        if rate is not None:
            lines.append(f"targets at {TARGET_CLIENTS} clients: >= {TARGET_PAIRS_PER_S:,.0f} pairs/s "
                         f"{'met' if rate else 'NOT met'}, p99 <= {TARGET_P99_MS:g} ms {'met' if p99 else 'NOT met'}")
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row per client count (with the command) to the API table of ``path``."""
        date = time.strftime("%Y-%m-%d")
        for row in self.rows:
            c, b = row.corral, row.baseline
            cpu = "?" if c.server_cpu_ms_per_pair is None else f"{c.server_cpu_ms_per_pair:.2f}"
            line = (f"| {date} | {row.clients} | {self.pool_size} | {self.duration_s:g} | {c.pairs_per_s:,.0f} | "
                    f"{c.p50_ms:.2f} | {c.p99_ms:.2f} | {cpu} | {b.pairs_per_s:,.0f} | {b.p99_ms:.2f} | "
                    f"{row.throughput_ratio:.2f} | {row.p99_ratio:.2f} | {c.errors + b.errors} | `{command}` |\n")
            append_row(path, API_TABLE_HEADER, line, intro=API_SECTION_INTRO)


API_TABLE_HEADER = (
    "| date | clients | pool | s | corral pairs/s | corral p50 ms | corral p99 ms | corral CPU ms/pair | "
    "baseline pairs/s | baseline p99 ms | pairs/s corral/baseline | p99 corral/baseline | errors | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
API_SECTION_INTRO = (
    "## `corral bench api`: checkout + return over HTTP\n\n"
    "See the module docstring of `corral.bench.api` for the set-up.\n\n"
)
