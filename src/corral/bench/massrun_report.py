"""The results of ``corral bench massrun`` and how they are shown: the ``rich`` tables, the JSON,
the summary and the rows :meth:`MassRunBenchResult.append_markdown` adds to
``docs/benchmarks.md``. The set-up is described in :mod:`corral.bench.massrun` and
:mod:`corral.bench.massrun_ha`."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.common import append_row, paragraph
from corral.bench.massrun_settings import MassRunSettings

TARGET_CORRAL_VS_LIMIT = 1.2  # corral's mass run at most this many times the physical limit
TARGET_SERIAL_VS_CORRAL = 100.0  # ... and at least this many times faster than one call per VM


def _r(value: float | None, digits: int = 4) -> float | None:
    return None if value is None else round(value, digits)


def _ms(value: float | None) -> str:
    return "" if value is None else f"{value * 1000:.1f}"


@dataclass
class SerialResult:
    """One create call per VM, one after another: ``sample_calls`` measured, extrapolated to ``vms``."""

    sample_calls: int
    sample_s: float
    vms: int
    calls: int  # create calls the simulator logged (== sample_calls)

    @property
    def per_call_s(self) -> float:
        return self.sample_s / self.sample_calls

    @property
    def full(self) -> bool:
        """Every VM's call was run: nothing is extrapolated."""
        return self.sample_calls >= self.vms

    @property
    def extrapolated_s(self) -> float:
        return self.sample_s if self.full else self.per_call_s * self.vms

    def as_dict(self) -> dict[str, Any]:
        return {"sample_calls": self.sample_calls, "sample_s": _r(self.sample_s), "per_call_s": _r(self.per_call_s, 5),
                "vms": self.vms, "full": self.full, "extrapolated_s": _r(self.extrapolated_s, 3), "calls": self.calls}


@dataclass
class MassRunResult:
    vms: int
    hosts: int
    pools: int
    time_scale: float
    corral_s: float  # t0 (pool sizes raised) until every create call returned
    limit_s: float  # one call per host, all hosts in parallel (computed)
    calls: int  # create calls the simulator logged
    vms_per_call: list[int]
    batches: int  # batches the runner took
    first_call_s: float  # when the first and the last create call were dispatched, after t0
    last_call_s: float
    created: int
    failed: int
    hosts_used: int
    serial: SerialResult | None = None
    runs_s: list[float] = field(default_factory=list)  # every repeat's corral_s (this is the median one)
    runs_ok: bool = True  # every repeat created every VM

    @property
    def corral_vs_limit(self) -> float:
        return self.corral_s / self.limit_s

    @property
    def serial_vs_corral(self) -> float:
        return self.serial.extrapolated_s / self.corral_s if self.serial else 0.0

    @property
    def limit_met(self) -> bool:
        return self.corral_vs_limit <= TARGET_CORRAL_VS_LIMIT

    @property
    def serial_met(self) -> bool:
        return self.serial_vs_corral >= TARGET_SERIAL_VS_CORRAL

    @property
    def ok(self) -> bool:
        """Every VM created, none failed, and fewer calls than VMs when there are more VMs than hosts."""
        return (self.created >= self.vms and self.failed == 0 and (self.vms <= self.hosts or self.calls < self.vms)
                and self.runs_ok)

    def as_dict(self) -> dict[str, Any]:
        return {
            "vms": self.vms, "hosts": self.hosts, "pools": self.pools, "time_scale": self.time_scale,
            "serial": self.serial.as_dict() if self.serial else None,
            "corral": {"seconds": _r(self.corral_s), "runs_s": [_r(r) for r in self.runs_s or [self.corral_s]],
                       "calls": self.calls,
                       "vms_per_call": round(self.vms / self.calls, 2) if self.calls else 0.0,
                       "vms_per_call_min": min(self.vms_per_call, default=0),
                       "vms_per_call_max": max(self.vms_per_call, default=0), "hosts_used": self.hosts_used,
                       "batches": self.batches, "first_call_s": _r(self.first_call_s),
                       "last_call_s": _r(self.last_call_s), "created": self.created, "failed": self.failed},
            "limit_s": _r(self.limit_s),
            "ratios": {"corral_limit": round(self.corral_vs_limit, 3),
                       "serial_corral": round(self.serial_vs_corral, 1)},
            "targets": {"corral_limit_max": TARGET_CORRAL_VS_LIMIT, "corral_limit_met": self.limit_met,
                        "serial_corral_min": TARGET_SERIAL_VS_CORRAL, "serial_corral_met": self.serial_met},
            "ok": self.ok,
        }


@dataclass
class HaTrial:
    """One host taken down under a checked-out HA pool; times in seconds after t0 (host down)."""

    label: str
    dead_host: str
    dead_vms: int  # checked-out HA VMs on it at t0
    restarted: int
    ha_failures: int
    on_live_hosts: int  # restarted VMs whose record is running on a live host, where the simulator has them
    new_hosts: int  # how many hosts they went to
    restart_s: float  # until every one of them was restarted
    limit_s: float  # computed: one start call per live host, all in parallel, for the fullest one
    host_down_seen_s: float | None  # the HostDown event reached the bus
    start_calls: int
    start_vms_per_call: list[int]
    first_start_s: float | None  # dispatch of the first and last HA start call
    last_start_s: float | None
    refills: int  # refill creates asked for at t0
    refills_created: int
    refills_s: float | None  # until every refill create returned
    refill_calls: int
    first_refill_call_s: float | None
    refill_calls_before_last_start: int  # refill create calls dispatched before the last HA start call
    runs_s: list[float] = field(default_factory=list)  # every repeat's restart_s (this is the median one)
    runs_ok: bool = True  # every repeat restarted every VM on a live host

    @property
    def vs_limit(self) -> float:
        return self.restart_s / self.limit_s

    @property
    def ha_first(self) -> bool:
        """Every HA start call went out before any refill create call."""
        return self.refill_calls_before_last_start == 0

    @property
    def ok(self) -> bool:
        return (self.restarted == self.dead_vms == self.on_live_hosts and self.ha_failures == 0
                and self.refills_created >= self.refills and self.runs_ok)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: _r(v) if isinstance(v, float) else v for k, v in asdict(self).items()}
        out["start_vms_per_call"] = sorted(self.start_vms_per_call)
        out["runs_s"] = [_r(r) for r in self.runs_s or [self.restart_s]]
        out["ha_first"] = self.ha_first
        out["restart_vs_limit"] = round(self.vs_limit, 3)
        out["ok"] = self.ok
        return out


@dataclass
class HaResult:
    hosts: int
    ha_vms: int
    refills: int
    time_scale: float
    alone: HaTrial
    with_refills: HaTrial

    @property
    def ratio(self) -> float:
        """HA restart time with the refills queued over that without."""
        return self.with_refills.restart_s / self.alone.restart_s

    @property
    def ok(self) -> bool:
        return self.alone.ok and self.with_refills.ok

    def as_dict(self) -> dict[str, Any]:
        return {"hosts": self.hosts, "ha_vms": self.ha_vms, "refills": self.refills, "time_scale": self.time_scale,
                "alone": self.alone.as_dict(), "with_refills": self.with_refills.as_dict(),
                "ratio_with_refills_alone": round(self.ratio, 3), "ha_first": self.with_refills.ha_first,
                "ok": self.ok}


@dataclass
class MassRunBenchResult:
    settings: MassRunSettings
    massrun: MassRunResult
    ha: HaResult
    machine: str = ""

    @property
    def ok(self) -> bool:
        """Everything asked for was created or restarted, on live hosts (the targets are reported apart)."""
        return self.massrun.ok and self.ha.ok

    @property
    def targets_met(self) -> bool:
        return self.massrun.limit_met and self.massrun.serial_met

    def as_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "targets_met": self.targets_met, "settings": asdict(self.settings),
                "machine": self.machine, "massrun": self.massrun.as_dict(), "ha": self.ha.as_dict()}

    # -- text ------------------------------------------------------------------------------

    def tables(self) -> list[Any]:
        return [self.massrun_table(), self.ha_table()]

    def massrun_table(self) -> Any:
        from rich.table import Table

        m, serial = self.massrun, self.massrun.serial
        assert serial is not None
        table = Table(title=f"mass run: {m.vms:,} VMs on {m.hosts} hosts; a create call costs 2 s + 10 ms per VM; "
                            f"time_scale {m.time_scale:g}")
        for col in ("way", "calls", "VMs/call", "seconds", "× corral", "how"):
            table.add_column(col, justify="left" if col in ("way", "how") else "right")
        per_call = f"{m.vms / m.calls:.1f} ({min(m.vms_per_call)}–{max(m.vms_per_call)})" if m.calls else ""
        if not serial.full:
            table.add_row(f"serial, sample of {serial.sample_calls:,}", f"{serial.sample_calls:,}", "1",
                          f"{serial.sample_s:.3f}", "", "measured")
        table.add_row(f"serial, {m.vms:,} VMs", f"{m.vms:,}", "1", f"{serial.extrapolated_s:.3f}",
                      f"{m.serial_vs_corral:,.1f}",
                      "measured (every call)" if serial.full
                      else f"extrapolated: {serial.per_call_s * 1000:.1f} ms/call × {m.vms:,}")
        runs = m.runs_s or [m.corral_s]
        table.add_row("corral", f"{m.calls:,}", per_call, f"{m.corral_s:.3f}", "1.0",
                      ("measured" if len(runs) == 1 else
                       f"median of {len(runs)} ({', '.join(f'{r:.3f}' for r in runs)})")
                      + f"; {m.batches} batch{'es' if m.batches != 1 else ''}, calls sent "
                      f"{_ms(m.first_call_s)}–{_ms(m.last_call_s)} ms after t0")
        table.add_row("physical limit", f"{m.hosts}", f"{m.vms / m.hosts:.0f}", f"{m.limit_s:.3f}",
                      f"{m.limit_s / m.corral_s:.2f}", "computed: one call per host, all hosts in parallel")
        return table

    def ha_table(self) -> Any:
        from rich.table import Table

        h = self.ha
        a, w = h.alone, h.with_refills
        table = Table(title=f"HA restarts: {h.ha_vms:,} checked-out HA VMs on {h.hosts} hosts, one host down at t0; "
                            "a start call costs 2 s + 10 ms per VM; times in ms after t0, of the median repeat")
        for col in ("", "alone", f"with {h.refills:,} refills"):
            table.add_column(col, justify="left" if not col else "right")
        rows: list[tuple[str, Any]] = [
            ("VMs on the dead host", lambda t: str(t.dead_vms)),
            ("restarted, on live hosts", lambda t: f"{t.restarted}, {t.on_live_hosts} (on {t.new_hosts} hosts)"),
            ("HostDown on the bus", lambda t: _ms(t.host_down_seen_s)),
            ("start calls (VMs each)", lambda t: f"{t.start_calls} ({min(t.start_vms_per_call, default=0)}–"
                                                 f"{max(t.start_vms_per_call, default=0)})"),
            ("first / last start call sent", lambda t: f"{_ms(t.first_start_s)} / {_ms(t.last_start_s)}"),
            ("all restarted (median)", lambda t: _ms(t.restart_s)),
            ("all restarted, every repeat", lambda t: ", ".join(_ms(r) for r in t.runs_s or [t.restart_s])),
            ("physical limit (one start call per live host)", lambda t: _ms(t.limit_s)),
            ("restart / limit", lambda t: f"{t.vs_limit:.2f}"),
            ("refill create calls", lambda t: str(t.refill_calls) if t.refills else ""),
            ("first refill call sent", lambda t: _ms(t.first_refill_call_s)),
            ("refill calls sent before the last start", lambda t: str(t.refill_calls_before_last_start)
             if t.refills else ""),
            ("all refills created", lambda t: _ms(t.refills_s)),
        ]
        for label, cell in rows:
            table.add_row(label, cell(a), cell(w))
        return table

    def summary(self) -> str:
        m, h = self.massrun, self.ha
        serial = m.serial
        assert serial is not None
        lines = [
            f"time_scale {m.time_scale:g}",
            f"mass run: corral {m.corral_s:.3f} s (median of {len(m.runs_s or [0])}) for {m.vms:,} VMs in "
            f"{m.calls} create calls "
            f"({m.vms / max(m.calls, 1):.1f} VMs/call); physical limit {m.limit_s:.3f} s; serial "
            + (f"{serial.extrapolated_s:.1f} s (measured)" if serial.full else
               f"{serial.extrapolated_s:.1f} s (extrapolated from {serial.sample_calls} calls measured in "
               f"{serial.sample_s:.2f} s)"),
            f"  corral/limit {m.corral_vs_limit:.2f} (target <= {TARGET_CORRAL_VS_LIMIT:g}: "
            f"{'met' if m.limit_met else 'NOT met'}); serial/corral {m.serial_vs_corral:,.0f} "
            f"(target >= {TARGET_SERIAL_VS_CORRAL:g}: {'met' if m.serial_met else 'NOT met'})",
            f"HA: {h.alone.dead_vms} VMs of the dead host restarted in {h.alone.restart_s:.3f} s alone "
            f"({h.alone.vs_limit:.2f} x the limit of {h.alone.limit_s:.3f} s), "
            f"{h.with_refills.restart_s:.3f} s with {h.refills:,} refills queued ({h.ratio:.2f} x the time alone); "
            f"every HA start call dispatched before the refill creates: "
            + ("yes" if h.with_refills.ha_first else
               f"NO ({h.with_refills.refill_calls_before_last_start} refill calls went first)")
            + (f"; refills done at {h.with_refills.refills_s:.3f} s" if h.with_refills.refills_s is not None else ""),
        ]
        if self.settings.quick:
            lines.append("(quick run: the targets are stated for 1,000 VMs on 10 hosts at time_scale 0.1)")
        if not self.ok:
            problems = []
            if not m.ok:
                problems.append(f"mass run: {m.created}/{m.vms} created, {m.failed} failed, {m.calls} calls")
            for t in (h.alone, h.with_refills):
                if not t.ok:
                    problems.append(f"HA {t.label}: {t.restarted}/{t.dead_vms} restarted, {t.on_live_hosts} on live "
                                    f"hosts, {t.ha_failures} failed, {t.refills_created}/{t.refills} refills")
            lines.append("NOT OK: " + "; ".join(problems))
        return "\n".join(lines)

    def append_markdown(self, path: Path, command: str) -> None:
        """Add one row to each of the two massrun tables of ``path`` (making them when missing)."""
        m, h = self.massrun, self.ha
        serial = m.serial
        assert serial is not None
        date = time.strftime("%Y-%m-%d")
        serial_cell = (f"{serial.extrapolated_s:.1f} (all {serial.sample_calls:,} measured)" if serial.full else
                       f"{serial.extrapolated_s:.1f} (extrapolated; {serial.sample_calls:,} measured: "
                       f"{serial.sample_s:.2f} s)")
        targets = (f"{'met' if m.limit_met else 'NOT met'} / {'met' if m.serial_met else 'NOT met'}")
        mass_row = (f"| {date} | {m.vms:,} | {m.hosts} | {m.time_scale:g} | {serial_cell} | "
                    f"{_runs(m.corral_s, m.runs_s)} | "
                    f"{m.limit_s:.3f} | {m.calls} | {m.vms / max(m.calls, 1):.0f} | {m.corral_vs_limit:.2f} | "
                    f"{m.serial_vs_corral:,.0f} | {targets} | `{command}` |\n")
        append_row(path, MASS_TABLE_HEADER, mass_row, intro=MASS_SECTION_INTRO)
        a, w = h.alone, h.with_refills
        ha_row = (f"| {date} | {h.hosts} | {h.ha_vms:,} | {a.dead_vms} | {h.refills:,} | {h.time_scale:g} | "
                  f"{a.limit_s:.3f} | {_runs(a.restart_s, a.runs_s)} | {_runs(w.restart_s, w.runs_s)} | "
                  f"{h.ratio:.2f} | {w.start_calls} | "
                  f"{'yes' if w.ha_first else f'NO ({w.refill_calls_before_last_start})'} | "
                  f"{'' if w.refills_s is None else f'{w.refills_s:.3f}'} | "
                  f"{'yes' if a.on_live_hosts == a.dead_vms and w.on_live_hosts == w.dead_vms else 'NO'} | "
                  f"`{command}` |\n")
        append_row(path, HA_TABLE_HEADER, ha_row, intro=HA_SECTION_INTRO)


def _runs(median: float, runs: list[float]) -> str:
    """``0.334 (0.331, 0.334, 0.352)``: the median and every repeat, in seconds."""
    return f"{median:.3f}" + ("" if len(runs) <= 1 else f" ({', '.join(f'{r:.3f}' for r in runs)})")


MASS_TABLE_HEADER = (
    "| date | VMs | hosts | time_scale | serial s | corral s median (runs) | limit s | corral calls | VMs/call | "
    "corral/limit | serial/corral | targets ≤ 1.2 / ≥ 100 | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
MASS_SECTION_HEADING = "## `corral bench massrun`: mass VM runs and HA restarts through the central runner\n\n"
MASS_SECTION_INTRO = MASS_SECTION_HEADING + paragraph(
    "**Mass run.** 1,000 VMs on 10 simulated hosts whose create call costs 2 s plus 10 ms per VM, the VMs "
    "of one call cloned one after another (`host_clone_slots` 1); the endpoint takes 64 calls at once, so "
    "it does not limit; hosts of 128 cores and 1 TiB, a template of 1 vCPU and 1 GiB, so 100 VMs per host "
    "stay far below the 90 % utilisation limit; boots take 600 s and are not measured. All latencies are "
    "× `time_scale`. Three figures from one run: *serial*, one create call per VM, one after another, round "
    "robin over the hosts, on a fresh simulator: `--serial-sample` calls (100 by default) are measured and "
    "the time is extrapolated linearly to 1,000 (serial calls: linear; `--serial-sample 1000` measures all); "
    "*corral*, the real pool manager (sqlite store in a temporary directory, the real inventory, default "
    "settings: aggregation window 100 ms, batch_size 1,000, task_limit 10, 4 calls per host) started with "
    "10 pools of size 0 and left idle, then all 10 raised to 100 at t0; the clock stops when the runner "
    "has counted all 1,000 creates returned; three runs, each on a fresh manager and cluster, the median "
    "counts, with the garbage collector set as `corral serve` sets it and corral's log records going "
    "nowhere (see the logging cost below); *limit*, computed: one call per host, every host in "
    "parallel, (2 s + 100 × 10 ms) × `time_scale`. Targets: corral/limit ≤ 1.2, serial/corral ≥ 100."
)
HA_TABLE_HEADER = (
    "| date | hosts | HA VMs | on dead host | refills | time_scale | limit s | restart s alone, median (runs) | "
    "restart s with refills, median (runs) | "
    "with/alone | HA start calls | HA starts before refill creates | refills done s | restarted on live hosts | "
    "command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)
HA_SECTION_INTRO = paragraph(
    "**HA restarts.** The same cluster; `start_vms` costs 2 s plus 10 ms per VM, one after another. A real "
    "pool manager (default settings but `host_down_grace_s` 0, so a host that stops answering is down at "
    "once, and a one-hour sweep interval, so the safety net stays out of the measurement) fills an HA pool "
    "with 2,000 VMs, 200 per host, and checks every one out. At t0 the first host goes down "
    "(`set_host_down`); the clock stops when all of its VMs are restarted elsewhere (`ha_restarts`), and each "
    "restarted VM's record must be `running` on a live host, where the simulator has it. Two trials on fresh "
    "managers, three times each, alternating, the median counting: *alone*, and *with refills*, where 10 "
    "refill pools are raised to 1,000 VMs at the same moment, so both reach the runner together. "
    "\"HA starts before refill creates\" is read from the "
    "simulator's call log: every HA start call dispatched before the first refill create call; \"refills done\" "
    "is when the last refill create returned. The limit is computed: one start call per live host, all in "
    "parallel, (2 s + ⌈200 / 9⌉ × 10 ms) × `time_scale`."
)
