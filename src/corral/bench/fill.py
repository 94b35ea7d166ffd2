"""``corral bench fill``: how long filling pools takes, against the ideal and a baseline.

Three figures come out of one run, on the same simulated cluster:

- **corral**: the real pool manager (sqlite store in a temporary directory, event-driven
  refill, bulk clone calls per host) fills the pools from empty;
- **baseline**: a vmpooler-style loop on a fresh copy of the same cluster: one clone call
  per VM, two fixed one-second pauses per clone, and each pool's pending VMs checked only
  when its pool loop comes round (every ``check_loop_delay_min`` = 5 s);
- **ideal**: the lower limit for bulk calls: every host gets its share of the VMs in one call,
  ``task_limit`` calls at a time, and a host clones ``host_clone_slots`` VMs side by side:
  ``ceil(hosts / task_limit) * (create_call + create_per_vm * ceil(ceil(vms / hosts) / slots)) + boot``.

All simulated latencies are multiplied by ``time_scale``; the ratios do not depend on it
as long as corral's own overhead stays small against the simulated times. Both fills also
record the VMs ready over time (:class:`Timeline`, at most :data:`TIMELINE_POINTS` points
each), which ``--plot`` draws.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from corral.bench.common import Count, Say, append_row, counted, counter, ready_vms, sayer
from corral.domain.models import Pool, VmSpec
from corral.pools.manager import PoolManager
from corral.pools.names import new_hostname
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider, SimSettings
from corral.store.sqlite import SqliteStore

if TYPE_CHECKING:
    from matplotlib.figure import Figure

VMPOOLER_CLONE_SLEEPS_S = 2.0  # two hard-coded 1 s sleeps per clone in vmpooler's clone task
VMPOOLER_POOL_CHECK_S = 5.0  # check_loop_delay_min: how often a pool's pending VMs are looked at
TIMELINE_POINTS = 400  # the most points of a timeline kept in a result


def thin(points: list[tuple[float, int]], limit: int) -> list[tuple[float, int]]:
    """At most ``limit`` (>= 2) of ``points``, evenly spread by position, the first and the
    last always kept."""
    if len(points) <= limit:
        return list(points)
    last = len(points) - 1
    picks = sorted({round(i * last / (limit - 1)) for i in range(limit)})
    return [points[i] for i in picks]


class Timeline:
    """VMs ready over time, one point per change of the count, seconds since ``started``."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.points: list[tuple[float, int]] = [(0.0, 0)]

    def note(self, ready: int, now: float) -> None:
        if ready != self.points[-1][1]:
            self.points.append((now - self.started, ready))

    def kept(self) -> list[tuple[float, int]]:
        return [(round(t, 4), n) for t, n in thin(self.points, TIMELINE_POINTS)]


@dataclass
class FillResult:
    vms: int
    pools: int
    task_limit: int
    time_scale: float
    ideal_s: float
    corral_s: float
    baseline_s: float
    corral_calls_per_vm: float
    baseline_calls_per_vm: float
    corral_ready: list[tuple[float, int]] = field(default_factory=list)  # (s since the start, VMs ready)
    baseline_ready: list[tuple[float, int]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Both timelines end with every VM ready."""
        return all(points and points[-1][1] >= self.vms for points in (self.corral_ready, self.baseline_ready))

    @property
    def corral_vs_ideal(self) -> float:
        return self.corral_s / self.ideal_s

    @property
    def baseline_vs_corral(self) -> float:
        return self.baseline_s / self.corral_s

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["corral_vs_ideal"] = round(self.corral_vs_ideal, 3)
        out["baseline_vs_corral"] = round(self.baseline_vs_corral, 3)
        out["ok"] = self.ok
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in out.items()}

    def tables(self) -> list[Any]:
        return [self.report()]

    def summary(self) -> str:
        return (f"corral filled {counted(self.vms, 'VM')} {self.baseline_vs_corral:.2f} x faster than the "
                "vmpooler-style loop")

    def figure(self) -> Figure:
        """VMs ready over time, corral against the vmpooler-style loop, with the ideal."""
        from corral.bench.plots import ReadyCurve, fill_figure

        return fill_figure([ReadyCurve("corral", self.corral_ready),
                            ReadyCurve("vmpooler-style loop (baseline)", self.baseline_ready)],
                           vms=self.vms, ideal_s=self.ideal_s,
                           title=f"Filling {self.sizes}, task_limit {self.task_limit}, time_scale {self.time_scale:g}")

    @property
    def sizes(self) -> str:
        return f"{counted(self.vms, 'VM')} in {counted(self.pools, 'pool')}"

    def report(self) -> str:
        return (
            f"fill {self.sizes}, task_limit {self.task_limit}, time_scale {self.time_scale}\n"
            f"  ideal    {self.ideal_s:8.3f} s\n"
            f"  corral   {self.corral_s:8.3f} s  ({self.corral_vs_ideal:.2f} x ideal, "
            f"{self.corral_calls_per_vm:.2f} provider calls per VM)\n"
            f"  baseline {self.baseline_s:8.3f} s  ({self.baseline_vs_corral:.2f} x corral, "
            f"{self.baseline_calls_per_vm:.2f} provider calls per VM)"
        )

    def append_markdown(self, path: Path, command: str) -> None:
        """Add a row (with the command that produced it) to the fill table of ``path``."""
        row = (f"| {time.strftime('%Y-%m-%d')} | {self.vms} | {self.pools} | {self.task_limit} | {self.time_scale} | "
               f"{self.ideal_s:.3f} | {self.corral_s:.3f} | {self.corral_vs_ideal:.2f} | {self.baseline_s:.3f} | "
               f"{self.baseline_vs_corral:.2f} | {self.corral_calls_per_vm:.2f} | {self.baseline_calls_per_vm:.2f} | "
               f"`{command}` |\n")
        append_row(path, FILL_TABLE_HEADER, row)


FILL_TABLE_HEADER = (
    "| date | VMs | pools | task_limit | time_scale | ideal s | corral s | corral/ideal | baseline s | "
    "baseline/corral | calls/VM corral | calls/VM baseline | command |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
)


def sim_settings(vms: int, time_scale: float) -> SimSettings:
    hosts = max(4, math.ceil(vms * 2048 / (262144 * 0.5)))  # hosts stay under half full
    return SimSettings.model_validate({
        "time_scale": time_scale,
        "hosts": hosts,
        "concurrency": 64,  # the endpoint limit must not throttle either side
        "template_defaults": {"cpus": 1, "memory_mb": 2048},
        "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0},
    })


def make_pools(vms: int, pools: int) -> list[Pool]:
    sizes = [vms // pools + (1 if i < vms % pools else 0) for i in range(pools)]
    return [Pool(name=f"pool-{i:03d}", template=f"tmpl-{i % 4}", size=s, provider="sim") for i, s in enumerate(sizes)]


def ideal_seconds(vms: int, task_limit: int, settings: SimSettings) -> float:
    lat = settings.latency
    hosts = len(settings.host_settings())
    rounds = math.ceil(math.ceil(vms / hosts) / settings.host_clone_slots)
    call = lat.create_call + lat.create_per_vm * rounds
    return (math.ceil(hosts / task_limit) * call + lat.boot) * settings.time_scale


def run_fill(*, vms: int = 500, pools: int = 10, task_limit: int = 10, time_scale: float = 0.02,
             progress: Say | None = None) -> FillResult:
    if vms < 1 or pools < 1 or pools > vms or task_limit < 1 or time_scale <= 0:
        raise ValueError("need vms >= pools >= 1, task_limit >= 1 and time_scale > 0")
    say = sayer(progress)
    settings = sim_settings(vms, time_scale)
    count = counter(progress)
    say(f"corral: filling {counted(vms, 'VM')} in {counted(pools, 'pool')} ...")
    corral_s, corral_calls, corral_ready = asyncio.run(_corral_fill(vms, pools, task_limit, settings, say, count))
    say(f"corral: {corral_s:.3f} s; baseline: filling the same pools ...")
    baseline_s, baseline_calls, baseline_ready = asyncio.run(
        _baseline_fill(vms, pools, task_limit, settings, say, count))
    say(f"baseline: {baseline_s:.3f} s")
    return FillResult(vms=vms, pools=pools, task_limit=task_limit, time_scale=time_scale,
                      ideal_s=ideal_seconds(vms, task_limit, settings), corral_s=corral_s, baseline_s=baseline_s,
                      corral_calls_per_vm=corral_calls / vms, baseline_calls_per_vm=baseline_calls / vms,
                      corral_ready=corral_ready, baseline_ready=baseline_ready)


async def _corral_fill(vms: int, pools: int, task_limit: int, settings: SimSettings, say: Say,
                       count: Count) -> tuple[float, int, list[tuple[float, int]]]:
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        provider = SimProvider("sim", settings)
        manager = PoolManager(make_pools(vms, pools), {"sim": provider}, store,
                              ManagerSettings(task_limit=task_limit, check_interval=1.0, feed_timeout=5.0))
        started = time.perf_counter()
        timeline = Timeline(started)
        await manager.start()
        last = 0.0
        try:
            while (ready := ready_vms(store)) < vms:
                now = time.perf_counter()
                timeline.note(ready, now)
                count(ready, vms)
                if now - last > 1.0:
                    last = now
                    say(f"  corral: {ready}/{vms} ready")
                await asyncio.sleep(0.005)
            elapsed = time.perf_counter() - started
            timeline.note(ready, started + elapsed)
            count(ready, vms)
            calls = sum(n for name, n in provider.calls.items() if name != "wait_for_updates")
        finally:
            await manager.stop()
            store.close()
    return elapsed, calls, timeline.kept()


async def _baseline_fill(vms: int, pools: int, task_limit: int, settings: SimSettings, say: Say,
                         count: Count) -> tuple[float, int, list[tuple[float, int]]]:
    """vmpooler's shape: per-pool loops, one clone call per VM, pending VMs polled per pool."""
    provider = SimProvider("sim", settings)
    await provider.connect()
    scale = settings.time_scale
    slots = asyncio.Semaphore(task_limit)
    cloning: dict[str, int] = {}
    pending: dict[str, set[str]] = {}
    ready: dict[str, set[str]] = {}
    hosts = await provider.list_hosts()
    tasks: set[asyncio.Task[None]] = set()

    async def clone(pool: Pool) -> None:
        try:
            async with slots:
                name = new_hostname()
                # the host list is never refreshed
                host = min(hosts, key=lambda h: ((h.memory_used_mb + 2048) / h.memory_mb, h.name)).name
                await provider.create_vms(host, [VmSpec(name, pool.name, pool.template)])
                await asyncio.sleep(VMPOOLER_CLONE_SLEEPS_S * scale)
                pending[pool.name].add(name)
        finally:
            cloning[pool.name] -= 1

    async def pool_loop(pool: Pool) -> None:
        cloning[pool.name], pending[pool.name], ready[pool.name] = 0, set(), set()
        while True:
            for name in list(pending[pool.name]):
                if await provider.vm_ready(name):
                    pending[pool.name].discard(name)
                    ready[pool.name].add(name)
            for _ in range(pool.size - cloning[pool.name] - len(pending[pool.name]) - len(ready[pool.name])):
                cloning[pool.name] += 1
                task = asyncio.create_task(clone(pool))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            await asyncio.sleep(VMPOOLER_POOL_CHECK_S * scale)

    started = time.perf_counter()
    timeline = Timeline(started)
    loops = [asyncio.create_task(pool_loop(p)) for p in make_pools(vms, pools)]
    last = 0.0
    try:
        while (done := sum(len(r) for r in ready.values())) < vms:
            now = time.perf_counter()
            timeline.note(done, now)
            count(done, vms)
            if now - last > 1.0:
                last = now
                say(f"  baseline: {done}/{vms} ready")
            await asyncio.sleep(0.005)
        elapsed = time.perf_counter() - started
        timeline.note(done, started + elapsed)
        count(done, vms)
    finally:
        for task in [*loops, *tasks]:
            task.cancel()
        await asyncio.gather(*loops, *tasks, return_exceptions=True)
        calls = sum(n for name, n in provider.calls.items() if name != "wait_for_updates")
        await provider.close()
    return elapsed, calls, timeline.kept()

