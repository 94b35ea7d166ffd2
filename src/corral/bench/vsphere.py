"""``corral bench vsphere``: one vCenter session against one session per pool, on vcsim.

vcsim (VMware's vCenter simulator, :mod:`corral.bench.vcsim`) with ``hosts`` hosts in one
cluster and ``CloneVM_Task`` held ``clone_delay_ms`` (2 s) per call. ``pools`` (10) pools of
``vms_per_pool`` (20) VMs are filled from empty through the real
:class:`~corral.pools.manager.PoolManager` (sqlite store in a temporary directory, the real
runner, scheduler and inventory). Each run gets a fresh vcsim with the same hosts, template
and delay:

- **corral**: one :class:`~corral.providers.vsphere.VsphereProvider` (one session) serves every
  pool; ``task_limit`` (10) create calls in flight, provider ``concurrency`` the same;
- **baseline**: vmpooler's model, one session per pool: one provider per pool, each with
  ``concurrency`` ``task_limit // pools`` (1 by default), so the calls in flight are the same
  (vmpooler: task_limit 10 and a pool of max(pools, task_limit, 2) = 10 connections, one
  session each). Each of these providers runs its own change feed, as corral's provider does;
- **wide** (``--wide``): corral with ``wide_limit`` (40) in flight, on its one session still;
- **floor**: the same clones with no corral at all, through one bare pyvmomi session
  (:mod:`corral.bench.vsphere_floor`, which also says what bounds a fill on vcsim); corral's
  wall time over the floor's has a target, at most 1.3.

The clock runs from the manager's start (providers connecting included) until every VM is
``ready`` in the store. A thread polls vcsim's session list every 50 ms through an observer
session of its own (not counted) and keeps the peak. vcsim runs no guests: clones get an
extraConfig key that makes vcsim report VMware Tools running, and the readiness probe
connects to a TCP listener of this benchmark instead of the guests' port 22.

Every VM of every run is timed step by step (:mod:`corral.bench.vsphere_timeline`). The results
and tables are in :mod:`corral.bench.vsphere_report`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from corral.bench.common import Say, counter, machine, process_cpu_seconds, quiet_logs, ready_vms, sayer
from corral.bench.vcsim import Listener, SessionWatch, Vcsim
from corral.bench.vsphere_floor import measure_floor
from corral.bench.vsphere_report import RunResult, VsphereBenchResult
from corral.bench.vsphere_settings import TEMPLATE, TOOLS_RUNNING, VsphereBenchSettings
from corral.bench.vsphere_timeline import Timeline, mean_steps, slot_use
from corral.domain.models import Pool
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.base import Provider
from corral.providers.vsphere import VspherePool, VsphereProvider, VsphereSettings
from corral.store.sqlite import SqliteStore

TEMPLATE_MEMORY_MB = 64  # small, so 20+ clones fit on one of vcsim's 4 GiB hosts
FEED_MAX_WAIT = 2  # seconds of one WaitForUpdatesEx long poll: quick shutdowns, same answers


def _cpu_s(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far (0.0 when /proc cannot tell)."""
    return process_cpu_seconds(pid) or 0.0


def bench_pools(s: VsphereBenchSettings, *, per_pool: bool) -> list[Pool]:
    return [Pool(name=f"bench-{i:02d}", template=TEMPLATE, size=s.vms_per_pool,
                 provider=f"vsphere-{i:02d}" if per_pool else "vsphere") for i in range(s.pools)]


def vsphere_pool(pool: Pool) -> VspherePool:
    return VspherePool(name=pool.name, template=TEMPLATE, linked_clone=False, extra_config=dict(TOOLS_RUNNING))


def make_providers(sim: Vcsim, pools: list[Pool], concurrency: int, listener: Listener,
                   timeline: Timeline) -> dict[str, Provider]:
    """One provider per distinct ``pool.provider``, serving the pools that name it."""
    out: dict[str, Provider] = {}
    for name in dict.fromkeys(p.provider for p in pools):
        mine = {p.name: vsphere_pool(p) for p in pools if p.provider == name}
        settings = VsphereSettings.model_validate(sim.settings(concurrency=concurrency, feed_max_wait=FEED_MAX_WAIT))
        provider = VsphereProvider(name, settings, mine, probe=timeline.probe(listener.probe))
        timeline.watch(provider)
        out[name] = provider
    return out


async def fill(sim: Vcsim, s: VsphereBenchSettings, *, label: str, per_pool: bool, concurrency: int,
               task_limit: int, say: Say) -> RunResult:
    """Fill every pool from empty through a real pool manager; the run's figures."""
    pools = bench_pools(s, per_pool=per_pool)
    listener = Listener()
    await listener.start()
    timeline = Timeline()
    providers = make_providers(sim, pools, concurrency, listener, timeline)
    watch = SessionWatch(sim)
    watch.start()
    limit_s = 120.0 + 10 * s.vms * (s.clone_delay_ms / 1000 + 1.5) / task_limit  # a run this long has hung
    with tempfile.TemporaryDirectory(prefix="corral-bench-vsphere-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        # default settings but the task limit, and no periodic full read (every 300 s by default) in
        # the middle of a slow run: both sides make the same calls
        manager = PoolManager(pools, providers, store,
                              ManagerSettings(task_limit=task_limit, reconcile_interval=3600.0))
        say(f"{label}: {len(providers)} provider{'s' if len(providers) > 1 else ''}, concurrency {concurrency}, "
            f"task_limit {task_limit}: filling {s.pools} pools × {s.vms_per_pool} VMs ...")
        started = time.perf_counter()
        offset = time.time() - started
        cpu = time.process_time(), _cpu_s(sim.process.pid)
        try:
            await manager.start()
            connected = time.perf_counter()
            last = connected
            count = counter(say)
            while (ready := ready_vms(store)) < s.vms:
                count(ready, s.vms)
                now = time.perf_counter()
                if now - started > limit_s:
                    raise RuntimeError(f"{label}: {ready}/{s.vms} VMs ready after {limit_s:.0f} s")
                if now - last >= 5.0:
                    last = now
                    say(f"  {label}: {ready}/{s.vms} ready, {now - started:.0f} s, {watch.peak} sessions so far")
                await asyncio.sleep(0.02)
            finished = time.perf_counter()
            corral_cpu, vcsim_cpu = time.process_time() - cpu[0], _cpu_s(sim.process.pid) - cpu[1]
            ready = ready_vms(store)
            peak = watch.stop()
            calls: Counter[str] = Counter()
            for provider in providers.values():
                assert isinstance(provider, VsphereProvider)
                calls.update(provider.session.calls)
            sessions = [p.session for p in providers.values() if isinstance(p, VsphereProvider)]
            timeline.readied({v.name: v.ready_at for v in store.list_vms() if v.ready_at is not None}, offset)
            vms = list(timeline.vms.values())
            result = RunResult(
                label=label, providers=len(providers), concurrency=concurrency, task_limit=task_limit,
                vms=s.vms, ready=ready, wall_s=finished - started, start_s=connected - started, peak_sessions=peak,
                session_samples=len(watch.counts), calls=dict(sorted(calls.items())),
                logins=sum(x.logins for x in sessions), relogins=sum(x.relogins for x in sessions),
                clone_failures=manager.stats.clone_failures, runner_calls=manager.runner.stats.calls,
                probes=len(listener.asked), peak_creates=timeline.peak, corral_cpu_s=corral_cpu,
                vcsim_cpu_s=vcsim_cpu, steps=mean_steps(vms), slot_use=slot_use(vms, task_limit, finished - started),
            )
        finally:
            watch.stop()
            await manager.stop()
            store.close()
            await listener.close()
    say(f"{label}: {result.wall_s:.1f} s, peak {result.peak_sessions} session{'s' if peak != 1 else ''}, "
        f"{result.calls.get('CloneVM_Task', 0)} CloneVM_Task")
    return result


@contextmanager
def fresh_vcsim(s: VsphereBenchSettings) -> Iterator[Vcsim]:
    """A new vcsim with the bench's hosts, template and clone delay."""
    delays = {"CloneVM_Task": s.clone_delay_ms} if s.clone_delay_ms else None
    sim = Vcsim(clusters=1, hosts=s.hosts, vms=0, delays=delays)
    try:
        sim.make_template(TEMPLATE, snapshot=None, memory_mb=TEMPLATE_MEMORY_MB)
        yield sim
    finally:
        sim.close()


def run_one(s: VsphereBenchSettings, say: Say, **kwargs: Any) -> RunResult:
    """One run on a fresh vcsim with the bench's hosts, template and clone delay."""
    with fresh_vcsim(s) as sim:
        return asyncio.run(fill(sim, s, say=say, **kwargs))


def run_floor(s: VsphereBenchSettings, say: Say) -> RunResult:
    """The floor (:mod:`corral.bench.vsphere_floor`) on a fresh vcsim: the same clones, one bare session."""
    say(f"floor: one pyvmomi session, {s.task_limit} threads, no corral: {s.vms} clones ...")
    with fresh_vcsim(s) as sim:
        pid = sim.process.pid
        run = measure_floor(sim, template=TEMPLATE, vms=s.vms, task_limit=s.task_limit,
                            extra_config=dict(TOOLS_RUNNING), cpu=lambda: (time.process_time(), _cpu_s(pid)))
    ready = sum(vm.ready is not None for vm in run.vms)
    say(f"floor: {run.wall_s:.1f} s, {ready}/{s.vms} ready")
    return RunResult(
        label="floor", providers=0, concurrency=s.task_limit, task_limit=s.task_limit, vms=s.vms, ready=ready,
        wall_s=run.wall_s, start_s=run.start_s, peak_sessions=run.peak_sessions, session_samples=run.session_samples,
        calls=run.calls, logins=1, clone_failures=sum(vm.error is not None for vm in run.vms), probes=run.probes,
        peak_creates=run.peak_in_flight, corral_cpu_s=run.cpu_s, vcsim_cpu_s=run.vcsim_cpu_s,
        steps=mean_steps(run.vms), slot_use=slot_use(run.vms, s.task_limit, run.wall_s))


def run_vsphere(settings: VsphereBenchSettings, progress: Say | None = None) -> VsphereBenchResult:
    settings.check()
    say = sayer(progress)
    runs = []
    with quiet_logs():
        runs.append(run_one(settings, say, label="corral", per_pool=False, concurrency=settings.task_limit,
                            task_limit=settings.task_limit))
        runs.append(run_floor(settings, say))
        runs.append(run_one(settings, say, label="baseline", per_pool=True,
                            concurrency=settings.baseline_concurrency, task_limit=settings.task_limit))
        if settings.wide:
            runs.append(run_one(settings, say, label="wide", per_pool=False, concurrency=settings.wide_limit,
                                task_limit=settings.wide_limit))
    return VsphereBenchResult(settings=settings, runs=runs, machine=machine())
