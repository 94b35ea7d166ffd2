"""The results of ``corral bench libvirt`` and how they are shown: the ``rich`` tables, the JSON,
the summary and the row :meth:`LibvirtBenchResult.append_markdown` adds to
``docs/benchmarks.md``. The set-up is described in :mod:`corral.bench.libvirt`.

There is no numeric target; the bar this benchmark holds corral to, reported as
``targets_met`` apart from ``ok``, is that corral makes fewer libvirt calls per VM than the
naive client.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.common import append_row, counted, paragraph, percentile
from corral.bench.libvirt_settings import HOSTS, LibvirtBenchSettings

POLL_METHODS = frozenset({"listAllDomains", "state"})  # the baseline's way of learning states


def _r(value: float) -> float:
    return round(value, 3)


def spread(per_host: dict[str, int]) -> str:
    """VMs per host, short: "200 each" when every host has as many, else "199·201·200"."""
    counts = list(per_host.values())
    if counts and len(set(counts)) == 1:
        return f"{counts[0]} each"
    return "·".join(map(str, counts))


@dataclass
class Latencies:
    """Domain changes timed from the libvirt call's return to the change feed (or poll) showing them."""

    changes: int = 0  # changes made
    seen: list[float] = field(default_factory=list)  # seconds, one per change seen
    calls: int = 0  # libvirt calls the side made while the changes were timed

    @property
    def missing(self) -> int:
        return self.changes - len(self.seen)

    def figures(self) -> dict[str, float]:
        ordered = sorted(self.seen)
        return {"p50_ms": _r(1000 * percentile(ordered, 50)), "p99_ms": _r(1000 * percentile(ordered, 99)),
                "max_ms": _r(1000 * ordered[-1]) if ordered else 0.0}


@dataclass
class SideResult:
    """One side of a run (corral, or the naive client): its fill and its timed changes."""

    label: str  # corral | baseline
    vms: int  # asked for
    ready: int  # VMs ready (corral: in the store; baseline: seen running by its poller) when the clock stopped
    per_host: dict[str, int]  # of those, on each host
    wall_s: float  # start (connections included) until the last VM was ready
    calls: dict[str, int]  # libvirt calls of the fill by method
    leaked_domains: int = 0  # domains on the hosts that are neither a template nor one of the side's VMs
    leaked_volumes: int = 0  # volumes likewise
    lost: int = 0  # the side's VMs that are not a domain on the host they are recorded on
    latency: Latencies = field(default_factory=Latencies)
    poll_interval_s: float = 0.0  # baseline: the measured time between two polls' starts
    poll_cycle_s: float = 0.0  # baseline: a poll of every host, mean seconds

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    @property
    def calls_per_vm(self) -> float:
        return self.total_calls / self.vms if self.vms else 0.0

    @property
    def poll_calls_per_vm(self) -> float:
        return sum(n for m, n in self.calls.items() if m in POLL_METHODS) / self.vms if self.vms else 0.0

    @property
    def leaked(self) -> int:
        return self.leaked_domains + self.leaked_volumes + self.lost

    @property
    def ok(self) -> bool:
        """Filled (every VM ready, as many on each host), nothing leaked, every change seen."""
        even = len(self.per_host) == HOSTS and len(set(self.per_host.values())) == 1
        return self.ready == self.vms and even and self.leaked == 0 and self.latency.missing == 0

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _r(v) if isinstance(v, float) else v for k, v in asdict(self).items()
                               if k != "latency"}
        out.update(total_calls=self.total_calls, calls_per_vm=_r(self.calls_per_vm),
                   poll_calls_per_vm=_r(self.poll_calls_per_vm), leaked=self.leaked, ok=self.ok,
                   changes=self.latency.changes, changes_seen=len(self.latency.seen),
                   changes_missing=self.latency.missing, change_calls=self.latency.calls, **self.latency.figures())
        return out


@dataclass
class LibvirtBenchResult:
    settings: LibvirtBenchSettings
    corral: SideResult
    baseline: SideResult
    machine: str = ""

    @property
    def ratio(self) -> float:
        """The baseline's libvirt calls per VM over corral's."""
        return _r(self.baseline.calls_per_vm / self.corral.calls_per_vm) if self.corral.calls_per_vm else 0.0

    @property
    def targets_met(self) -> bool:
        """corral makes fewer libvirt calls per VM than the naive client (reported apart from :attr:`ok`)."""
        return self.corral.calls_per_vm < self.baseline.calls_per_vm

    @property
    def ok(self) -> bool:
        return self.corral.ok and self.baseline.ok

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {"ok": self.ok, "targets_met": self.targets_met,
                "targets": {"calls_per_vm": "corral below the baseline"},
                "calls_per_vm_ratio": self.ratio, "settings": {**asdict(s), "hosts": HOSTS, "vms": s.vms},
                "machine": self.machine, "runs": {r.label: r.as_dict() for r in (self.corral, self.baseline)}}

    # -- text ------------------------------------------------------------------------------

    def tables(self) -> list[Any]:
        return [self.runs_table(), self.calls_table()]

    def runs_table(self) -> Any:
        from rich.table import Table

        s = self.settings
        table = Table(title=f"libvirt's test driver, {HOSTS} hosts × {s.vms_per_host} VMs filled from empty, then "
                            f"{counted(s.changes, 'domain change')} timed")
        for col in ("run", "ready", "per host", "leaked", "fill s", "libvirt calls", "per VM", "of which polling",
                    "changes seen", "p50 ms", "p99 ms", "max ms", "calls while changing"):
            table.add_column(col, justify="left" if col == "run" else "right")
        for r in (self.corral, self.baseline):
            figures = r.latency.figures()
            table.add_row(r.label, f"{r.ready}/{r.vms}", spread(r.per_host),
                          str(r.leaked), f"{r.wall_s:.2f}", f"{r.total_calls:,}", f"{r.calls_per_vm:.2f}",
                          f"{r.poll_calls_per_vm:.2f}", f"{len(r.latency.seen)}/{r.latency.changes}",
                          f"{figures['p50_ms']:.1f}", f"{figures['p99_ms']:.1f}", f"{figures['max_ms']:.1f}",
                          f"{r.latency.calls:,}")
        return table

    def calls_table(self) -> Any:
        from rich.table import Table

        table = Table(title="libvirt calls of the fill, by method")
        table.add_column("method")
        for r in (self.corral, self.baseline):
            table.add_column(r.label, justify="right")
        for method in sorted({m for r in (self.corral, self.baseline) for m in r.calls}):
            table.add_row(method, *(str(r.calls.get(method, 0)) for r in (self.corral, self.baseline)))
        return table

    def summary(self) -> str:
        c, b = self.corral, self.baseline
        cf, bf = c.latency.figures(), b.latency.figures()
        lines = [
            f"libvirt calls per VM: corral {c.calls_per_vm:.2f}, baseline {b.calls_per_vm:.2f} "
            f"({b.poll_calls_per_vm:.2f} of them polling): baseline/corral {self.ratio:.2f} "
            f"(bar: corral below the baseline: {'met' if self.targets_met else 'MISSED'})",
            f"domain change to the change feed: corral p50 {cf['p50_ms']:.2f} ms, p99 {cf['p99_ms']:.2f} ms "
            f"({c.latency.calls} libvirt calls over {c.latency.changes} changes); baseline poller every "
            f"{b.poll_interval_s:.2f} s: p50 {bf['p50_ms']:.0f} ms, p99 {bf['p99_ms']:.0f} ms "
            f"({b.latency.calls:,} calls)",
        ]
        if not self.ok:
            lines.append("NOT OK: " + "; ".join(
                f"{r.label}: {r.ready}/{r.vms} ready ({spread(r.per_host)} per host), "
                f"{r.leaked_domains} domains and {r.leaked_volumes} volumes leaked, {r.lost} VMs lost, "
                f"{r.latency.missing} changes unseen" for r in (c, b) if not r.ok))
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row to the libvirt table of ``path`` (making the section when missing)."""
        s, c, b = self.settings, self.corral, self.baseline
        cf, bf = c.latency.figures(), b.latency.figures()
        row = (f"| {time.strftime('%Y-%m-%d')} | {HOSTS} × {s.vms_per_host} | {c.calls_per_vm:.2f} | "
               f"{b.calls_per_vm:.2f} ({b.poll_calls_per_vm:.2f}) | {self.ratio:.2f} | "
               f"{'yes' if self.targets_met else 'no'} | {c.wall_s:.2f} / {b.wall_s:.2f} | {s.changes} | "
               f"{cf['p50_ms']:.2f} / {cf['p99_ms']:.2f} | {c.latency.calls} | {b.poll_interval_s:.2f} | "
               f"{bf['p50_ms']:.0f} / {bf['p99_ms']:.0f} | {b.latency.calls:,} | {'yes' if self.ok else 'NO'} | "
               f"{self.machine} | `{command}` |\n")
        append_row(path, TABLE_HEADER, row, intro=SECTION_INTRO)


TABLE_HEADER = (
    "| date | hosts × VMs | libvirt calls per VM corral | baseline (of which polling) | baseline/corral | "
    "corral below | fill s corral / baseline | changes | change to feed ms p50 / p99 corral | corral calls while "
    "changing | baseline poll interval s | change to poll ms p50 / p99 baseline | baseline calls while changing | "
    "ok | machine | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SECTION_HEADING = "## `corral bench libvirt`: libvirt calls per VM and domain events, on libvirt's test driver\n\n"
SECTION_INTRO = SECTION_HEADING + paragraph(
    "Three KVM hosts played by libvirt's test driver (`test:///` files the benchmark writes: a big host, a "
    "`default` storage pool with one small template volume, one shut-off template domain). *corral*: the "
    "real pool manager (sqlite store in a temporary directory, the real runner, scheduler and inventory) on "
    "one libvirt provider fills a pool of 3 × N VMs, at most N per host, from empty; every libvirt call the "
    "provider makes from the manager's start until the last VM is `ready` is counted (the provider's own "
    "counter: connecting, reading the hosts, the template and each create call). The readiness probe is a "
    "stand-in that answers yes at once (the test driver runs no guests). *baseline*: a deliberately naive "
    "client on fresh copies of the same hosts, making the same domains and volumes with one libvirt call "
    "per operation and nothing kept between VMs (per VM: look up the template domain, read its XML, look "
    "up the storage pool and the template's volume, read the volume's XML, clone it, define the domain, "
    "start it: 8 calls) from `task_limit` threads, and learning what runs by polling every host (its domain "
    "list and one state call per domain) every poll interval (3 s, oVirt's `VdsRefreshRate`); its fill ends "
    "when its poller has seen every VM running, and its polling is counted with its calls. There is no "
    "numeric target; the bar, `targets_met`, is corral making fewer calls per VM than the baseline (corral's "
    "figure nears 3 per VM, clone, define and start, as N grows: its other calls are per host). "
    "Then domains are changed (stopped or started in turn) through the same test-driver connection each "
    "side holds, outside its counter, and each change is timed from the call's return until the side "
    "shows it: corral, one change at a time, until the provider's change feed (`wait_for_updates`) "
    "reports the VM in its new power state, after the manager has stopped (so that nothing reacts to the "
    "changes); the baseline, the same number of changes spread over 5 poll intervals, until a poll of the "
    "VM's host returns the new state. *ok*: both fills complete with as many VMs on each host, no domain "
    "or volume on a host beyond the templates and the side's VMs, every VM a domain on the host its record "
    "names, and every change seen."
)
