"""The results of ``corral bench vsphere`` and how they are shown: the ``rich`` tables, the JSON,
the summary and the rows :meth:`VsphereBenchResult.append_markdown` adds to
``docs/benchmarks.md``. The set-up is described in :mod:`corral.bench.vsphere`, the floor in
:mod:`corral.bench.vsphere_floor`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.common import append_row, paragraph
from corral.bench.vsphere_settings import VsphereBenchSettings

FEED = "WaitForUpdatesEx"  # the change feed's long poll: one per session, not per VM
TASKS = ("CloneVM_Task", "RelocateVM_Task", "ReconfigVM_Task", "PowerOnVM_Task")
CORRAL_FLOOR_MAX = 1.3  # the target: corral's fill at most this many times the floor's


def _r(value: float) -> float:
    return round(value, 3)


@dataclass
class RunResult:
    """One fill of every pool from empty, on a fresh vcsim."""

    label: str  # corral | floor | baseline | wide
    providers: int  # vSphere providers (each one session); the floor has none, one bare session
    concurrency: int  # calls in flight per provider
    task_limit: int  # the runner's create calls in flight
    vms: int
    ready: int  # VMs ready in the store when the clock stopped
    wall_s: float  # the manager's start until every VM was ready
    start_s: float  # of which the manager's start (providers logging in, first inventory read)
    peak_sessions: int  # vcsim's open sessions at most, the observer's not counted
    session_samples: int
    calls: dict[str, int] = field(default_factory=dict)  # vSphere calls per method, every provider together
    logins: int = 0
    relogins: int = 0
    clone_failures: int = 0
    runner_calls: int = 0  # create calls the runner sent (one VM each on vSphere)
    probes: int = 0  # readiness probes of the listener
    peak_creates: int = 0  # create calls under way in the providers at once, at most
    corral_cpu_s: float = 0.0  # CPU time of this process (every thread) during the run
    vcsim_cpu_s: float = 0.0  # CPU time of vcsim during the run
    steps: dict[str, float] = field(default_factory=dict)  # mean seconds per VM of each step (vsphere_timeline)
    slot_use: float = 0.0  # the share of task_limit × wall the create calls held a slot

    @property
    def ok(self) -> bool:
        return self.ready == self.vms and self.relogins == 0

    @property
    def calls_without_feed(self) -> int:
        return sum(n for method, n in self.calls.items() if method != FEED)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _r(v) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["calls_without_feed"] = self.calls_without_feed
        out["ok"] = self.ok
        return out


@dataclass
class VsphereBenchResult:
    settings: VsphereBenchSettings
    runs: list[RunResult]
    machine: str = ""

    def run(self, label: str) -> RunResult | None:
        return next((r for r in self.runs if r.label == label), None)

    @property
    def corral(self) -> RunResult:
        found = self.run("corral")
        assert found is not None
        return found

    @property
    def baseline(self) -> RunResult:
        found = self.run("baseline")
        assert found is not None
        return found

    @property
    def floor(self) -> RunResult:
        found = self.run("floor")
        assert found is not None
        return found

    @property
    def floor_ratio(self) -> float:
        """corral's wall time over the floor's."""
        return round(self.corral.wall_s / self.floor.wall_s, 3)

    @property
    def targets_met(self) -> bool:
        """corral within :data:`CORRAL_FLOOR_MAX` × the floor (reported apart from :attr:`ok`)."""
        return self.floor_ratio <= CORRAL_FLOOR_MAX

    @property
    def ok(self) -> bool:
        """Every VM of every run ready, no session lost."""
        return all(r.ok for r in self.runs)

    def ratios(self) -> dict[str, float]:
        c, b, w = self.corral, self.baseline, self.run("wide")
        out = {"sessions_baseline_corral": round(b.peak_sessions / max(c.peak_sessions, 1), 3),
               "wall_baseline_corral": round(b.wall_s / c.wall_s, 3), "wall_corral_floor": self.floor_ratio}
        if w is not None:
            out["wall_corral_wide"] = round(c.wall_s / w.wall_s, 3)
        return out

    def as_dict(self) -> dict[str, Any]:
        s = self.settings
        return {"ok": self.ok, "targets_met": self.targets_met, "targets": {"corral_floor_max": CORRAL_FLOOR_MAX},
                "floor_s": _r(self.floor.wall_s), "floor_ratio": self.floor_ratio,
                "settings": {**asdict(s), "vms": s.vms, "baseline_concurrency": s.baseline_concurrency},
                "machine": self.machine, "runs": {r.label: r.as_dict() for r in self.runs},
                "ratios": self.ratios()}

    # -- text ------------------------------------------------------------------------------

    def _title(self) -> str:
        s = self.settings
        return (f"vcsim, {s.hosts} hosts, CloneVM_Task held {s.clone_delay_ms / 1000:g} s: "
                f"{s.pools} pools × {s.vms_per_pool} VMs filled from empty")

    def tables(self) -> list[Any]:
        return [self.runs_table(), self.steps_table(), self.calls_table()]

    def runs_table(self) -> Any:
        from rich.table import Table

        table = Table(title=self._title())
        for col in ("run", "providers × concurrency", "task_limit", "creates in flight", "ready", "wall s",
                    "of which start s", "peak sessions", "logins", "CPU s corral / vcsim", "× corral wall"):
            table.add_column(col, justify="left" if col == "run" else "right")
        for r in self.runs:
            table.add_row(r.label, f"{r.providers} × {r.concurrency}" if r.providers else f"1 bare × {r.concurrency}",
                          str(r.task_limit), str(r.peak_creates), f"{r.ready}/{r.vms}", f"{r.wall_s:.2f}",
                          f"{r.start_s:.2f}", str(r.peak_sessions),
                          f"{r.logins}" + (f" ({r.relogins} again)" if r.relogins else ""),
                          f"{r.corral_cpu_s:.1f} / {r.vcsim_cpu_s:.1f}", f"{r.wall_s / self.corral.wall_s:.2f}")
        return table

    def steps_table(self) -> Any:
        from rich.table import Table

        table = Table(title="where a VM's time goes: mean ms per VM of each step (vsphere_timeline)")
        for col in ("run", *STEP_COLUMNS.values(), "slot use"):
            table.add_column(col, justify="left" if col == "run" else "right")
        for r in self.runs:
            table.add_row(r.label, *(f"{r.steps.get(k, 0.0) * 1000:.0f}" for k in STEP_COLUMNS),
                          f"{r.slot_use:.0%}")
        return table

    def calls_table(self) -> Any:
        from rich.table import Table

        table = Table(title="vSphere calls per method, every provider of a run together")
        table.add_column("method")
        for r in self.runs:
            table.add_column(r.label, justify="right")
        methods = sorted({m for r in self.runs for m in r.calls}, key=lambda m: (m == FEED, m))
        for method in methods:
            table.add_row(method, *(str(r.calls.get(method, 0)) for r in self.runs))
        table.add_row(f"all but {FEED}", *(str(r.calls_without_feed) for r in self.runs))
        return table

    def summary(self) -> str:
        c, b, w, f = self.corral, self.baseline, self.run("wide"), self.floor
        ratios = self.ratios()
        lines = [
            f"floor (the same clones through one bare pyvmomi session) {f.wall_s:.1f} s: corral/floor "
            f"{self.floor_ratio:.2f} (target <= {CORRAL_FLOOR_MAX:g}: {'met' if self.targets_met else 'MISSED'}); "
            f"per VM corral {c.steps.get('vm_s', 0):.2f} s, of which {_waits(c):.2f} s waiting for its tasks, "
            f"floor {f.steps.get('vm_s', 0):.2f} s, {_waits(f):.2f} s",
            f"corral {c.wall_s:.1f} s on {c.peak_sessions} session{'s' if c.peak_sessions != 1 else ''}; "
            f"baseline (one session per pool) {b.wall_s:.1f} s on {b.peak_sessions}: "
            f"sessions baseline/corral {ratios['sessions_baseline_corral']:g}, "
            f"wall baseline/corral {ratios['wall_baseline_corral']:.2f} (both {c.task_limit} calls in flight)",
        ]
        if w is not None:
            lines.append(f"wide: {w.wall_s:.1f} s with task_limit {w.task_limit} on {w.peak_sessions} "
                         f"session{'s' if w.peak_sessions != 1 else ''} ({ratios['wall_corral_wide']:.2f} x faster "
                         "than corral at the narrow limit)")
        if not self.ok:
            lines.append("NOT OK: " + "; ".join(f"{r.label}: {r.ready}/{r.vms} ready, {r.relogins} re-logins"
                                                for r in self.runs if not r.ok))
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row to the vSphere table of ``path`` (making the section when missing)."""
        s, c, b, w = self.settings, self.corral, self.baseline, self.run("wide")
        ratios = self.ratios()
        tasks = " / ".join(
            "·".join(str(r.calls.get(t, 0)) for t in TASKS) for r in (c, b, *([w] if w else [])))
        row = (f"| {time.strftime('%Y-%m-%d')} | {s.pools} × {s.vms_per_pool} | {s.hosts} | "
               f"{s.clone_delay_ms / 1000:g} | {s.task_limit} | {c.wall_s:.2f} | {b.wall_s:.2f} | "
               f"{ratios['wall_baseline_corral']:.2f} | {c.peak_sessions} / {b.peak_sessions} | "
               f"{ratios['sessions_baseline_corral']:g} | {c.vcsim_cpu_s:.1f} / {b.vcsim_cpu_s:.1f} | "
               + (f"{w.wall_s:.2f} ({w.task_limit}; {w.peak_sessions}) | " if w else "| ")
               + f"{tasks} | {c.calls_without_feed} / {b.calls_without_feed} | "
               f"{c.calls.get(FEED, 0)} / {b.calls.get(FEED, 0)} | {'yes' if self.ok else 'NO'} | `{command}` |\n")
        append_row(path, TABLE_HEADER, row, intro=SECTION_INTRO)
        f = self.floor
        per_vm = " / ".join(f"{r.steps.get('vm_s', 0):.2f} ({r.steps.get('clone_call_s', 0):.2f} + {_waits(r):.2f})"
                            for r in (c, f))
        floor_row = (f"| {time.strftime('%Y-%m-%d')} | {s.pools} × {s.vms_per_pool} | {s.hosts} | "
                     f"{s.clone_delay_ms / 1000:g} | {s.task_limit} | {c.wall_s:.2f} | {f.wall_s:.2f} | "
                     f"{self.floor_ratio:.2f} | {'yes' if self.targets_met else 'no'} | "
                     f"{ratios['wall_baseline_corral']:.2f} | {per_vm} | {c.slot_use:.0%} / {f.slot_use:.0%} | "
                     f"{c.calls_without_feed} / {f.calls_without_feed} | {c.corral_cpu_s:.1f} / {f.corral_cpu_s:.1f} | "
                     f"{c.vcsim_cpu_s:.1f} / {f.vcsim_cpu_s:.1f} | `{command}` |\n")
        # a new floor table goes under the section's table, not at the end of the file
        append_row(path, FLOOR_TABLE_HEADER, floor_row, intro=FLOOR_INTRO, after=TABLE_HEADER)


def _waits(r: RunResult) -> float:
    """Mean seconds per VM waiting for its tasks to be seen finished (the clone's and the follow-ups')."""
    return r.steps.get("clone_wait_s", 0.0) + r.steps.get("settle_waits_s", 0.0)


STEP_COLUMNS = {
    "clone_call_s": "slot to CloneVM_Task returned",
    "clone_wait_s": "to its task seen done",
    "settle_s": "settling: read, move, notes, power-on",
    "settle_waits_s": "of which task waits",
    "probe_s": "to the probe's connect",
    "store_s": "to ready in the store",
    "vm_s": "VM",
}


TABLE_HEADER = (
    "| date | pools × VMs | hosts | clone delay s | task_limit | corral s | baseline s | baseline/corral | "
    "peak sessions corral / baseline | sessions baseline/corral | vcsim CPU s corral / baseline | "
    "wide s (task_limit; peak sessions) | Clone·Relocate·Reconfig·PowerOn calls corral / baseline / wide | "
    "calls but the feed corral / baseline | WaitForUpdatesEx corral / baseline | all ready | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
SECTION_HEADING = "## `corral bench vsphere`: one vCenter session against one session per pool\n\n"
SECTION_INTRO = SECTION_HEADING + paragraph(
    "vcsim, VMware's vCenter simulator, with 10 hosts in one cluster and every `CloneVM_Task` call held "
    "2 s (vcsim's method delay; the delays of concurrent calls overlap). The real pool manager (sqlite "
    "store in a temporary directory, the real runner, scheduler and inventory) fills 10 pools × 20 VMs "
    "from empty, three times, each on a fresh vcsim with the same hosts and template (a fourth run, the "
    "floor, is described under the second table): *corral*, one "
    "vSphere provider, so one session, serving every pool, task_limit 10 and provider concurrency 10; "
    "*baseline*, vmpooler's model of one session per pool: one provider per pool, each with concurrency "
    "1, so the same 10 calls in flight over 10 sessions (vmpooler: task_limit 10 and a pool of "
    "max(pools, task_limit, 2) = 10 connections, one session each); *wide*, corral with task_limit and "
    "concurrency 40 on its one session (the runner's 4 calls per host × 10 hosts allow 40). The clock "
    "runs from the manager's start (logins and the first inventory read included) until all 200 VMs are "
    "`ready` in the store. A thread counts vcsim's sessions every 50 ms through an observer session of "
    "its own, which is not counted; the peak is reported, with the CPU time vcsim used during the run. "
    "vcsim runs no guests: the clones carry an extraConfig key that makes vcsim report VMware Tools "
    "running, and the readiness probe connects to a TCP listener of the benchmark's instead of port 22. "
    "vcsim also ignores the clone spec's host, annotation and power-on: a clone lands on its template's "
    "host, powered off, so the provider follows up with `RelocateVM_Task` (unless the chosen host is the "
    "template's), `ReconfigVM_Task` for the annotation and `PowerOnVM_Task`, up to three more tasks per "
    "VM, each seen finished when vcsim's change feed reports it, at its next 250 ms tick at the earliest "
    "(the floor's table shows how long it takes); against a real vCenter the clone call does all three and "
    "the provider only reads the result."
)

FLOOR_TABLE_HEADER = (
    "| date | pools × VMs | hosts | clone delay s | task_limit | corral s | floor s | corral/floor | ≤ 1.3 | "
    "baseline/corral | s per VM corral / floor (clone call + task waits) | slot use corral / floor | "
    "calls but the feed corral / floor | CPU s of the bench process corral / floor | vcsim CPU s corral / floor | "
    "command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
FLOOR_INTRO = "### The floor: the same clones through one bare session\n\n" + paragraph(
    "Recorded by the same command, on a fresh vcsim of its own: the same number of clones of the same "
    "template with the same clone delay and hosts, `task_limit` at a time, issued back to back by "
    "`task_limit` threads through one pyvmomi session, with nothing of corral's running (no manager, store, "
    "runner, placement or change feed). Each VM gets what corral's provider does to it: the clone call with "
    "corral's clone spec, one read of the clone, the move, notes and power-on vcsim leaves out, and the "
    "readiness probe's TCP connect; each task is waited for by one read of its state (vcsim's tasks end "
    "within their call). *corral/floor* is corral's wall time over the floor's (target ≤ 1.3); *s per VM* is "
    "a VM's time from its call slot to ready, and in brackets the clone call and the time spent waiting "
    "for its tasks to be seen finished (corral: through its change feed); *slot use* is the share of "
    "task_limit × wall time the VMs' calls held a slot."
)
