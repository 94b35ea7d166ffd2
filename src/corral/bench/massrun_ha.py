"""``corral bench massrun``, part two: HA restarts when a host goes down, alone and behind refills.

On the mass run's cluster (:func:`corral.bench.massrun_settings.sim_settings`; ``start_vms`` costs
``start_call`` 2 s plus ``start_per_vm`` 10 ms per VM, one after another within a call) a real
pool manager (sqlite store, the real inventory, default settings but ``host_down_grace_s=0``, so
a host that stops answering is declared down at once, and a one-hour ``check_interval``, so the
safety-net sweep stays out of the measured second) fills an HA pool (``Pool(ha=True)``) with
``ha_vms`` (2,000) VMs, 200 per host, and checks every one of them out (the pool's size is set
to 0 in the same step, so nothing refills it). Boots are short for the fill (1 s, scaled)
and long (600 s) from then on, so no boot lands in the measurement.

At t0 the first host is taken down (``SimControls.set_host_down``). Two trials, each on a
fresh manager and cluster:

- **alone**: nothing else is asked for; the baseline;
- **with refills**: at the same moment ``pools`` refill pools are raised from 0 to ``refills``
  (1,000) VMs, so the HA restarts and the refills reach the runner together.

The clock stops when every VM of the dead host is restarted (``Creator.ha_restarts``); each
restarted VM's store record must be ``running`` on a host that is up, where the simulator has
it too. From the simulator's call log: whether every HA start call was dispatched before the
first refill create call, and when the refill creates had all returned. Each trial runs
``repeats`` times, alternating; the median counts. The physical limit is computed as for the
mass run: one start call per live host, all in parallel, for the fullest one.
"""

from __future__ import annotations

import asyncio
import math
import tempfile
import time
from pathlib import Path

from corral.bench.common import Say, ready_vms, until
from corral.bench.massrun_report import HaResult, HaTrial
from corral.bench.massrun_settings import (
    LONG_BOOT_S,
    START_CALL_S,
    START_PER_VM_S,
    WAIT_LIMIT_S,
    MassRunSettings,
    sim_settings,
    split,
)
from corral.domain.events import Event, HostDown
from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.store.sqlite import SqliteStore

FILL_BOOT_S = 1.0  # simulated boot while the HA pool fills (checkout needs ready VMs)
HA_POOL = "ha"
LIFETIME_S = 7 * 24 * 3600.0  # checked-out VMs outlive the run


def ha_pools(s: MassRunSettings) -> list[Pool]:
    return [Pool(name=HA_POOL, template="tmpl", size=0, provider="sim", ha=True, lifetime_s=LIFETIME_S),
            *[Pool(name=f"refill-{i:02d}", template="tmpl", size=0, provider="sim") for i in range(s.pools)]]


# -- waiting on a running manager -------------------------------------------------------------


def idle(manager: PoolManager) -> bool:
    """Nothing queued, placed or in flight in the runner, no clone or other task under way."""
    runner = manager.runner
    return (not runner.held and runner.gate.outstanding == 0 and manager.clones_in_flight == 0
            and manager.quiet())


async def settle(manager: PoolManager, limit_s: float = WAIT_LIMIT_S, quiet_s: float = 0.05) -> None:
    """Wait until the manager has been idle for ``quiet_s`` on end."""
    deadline = time.perf_counter() + limit_s
    quiet_since: float | None = None
    while True:
        now = time.perf_counter()
        if idle(manager):
            quiet_since = quiet_since or now
            if now - quiet_since >= quiet_s:
                return
        else:
            quiet_since = None
        if now > deadline:
            raise RuntimeError(f"the manager did not become idle within {limit_s:.0f} s")
        await asyncio.sleep(0.005)


async def ha_trial(s: MassRunSettings, *, with_refills: bool, say: Say) -> HaTrial:
    label = "with refills" if with_refills else "alone"
    with tempfile.TemporaryDirectory(prefix="corral-massrun-ha-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        sim = SimProvider("sim", sim_settings(s, boot=FILL_BOOT_S))
        pools = ha_pools(s)
        manager = PoolManager(pools, {"sim": sim}, store, ManagerSettings(host_down_grace_s=0.0,
                                                                          check_interval=3600.0))
        seen: list[float] = []

        async def host_down(event: Event) -> None:
            seen.append(time.monotonic())

        manager.bus.subscribe("bench-massrun", host_down, accepts=lambda e: isinstance(e, HostDown))
        await manager.start()
        try:
            await settle(manager)
            say(f"HA {label}: filling the HA pool with {s.ha_vms:,} VMs and checking them all out ...")
            manager.set_pool_size(HA_POOL, s.ha_vms)
            await until(lambda: ready_vms(store, HA_POOL) >= s.ha_vms, f"{s.ha_vms} ready HA VMs", WAIT_LIMIT_S,
                        poll_s=0.01)
            sim.settings.latency.boot = LONG_BOOT_S  # no boot inside the measurement
            manager.set_pool_size(HA_POOL, 0)  # in the same step as the checkout: nothing refills it
            held = manager.checkout([HA_POOL] * s.ha_vms)
            if held is None or len(held) != s.ha_vms:
                raise RuntimeError(f"could not check out {s.ha_vms} HA VMs")
            await settle(manager)
            hosts = sorted(h.name for h in await sim.list_hosts())
            dead = hosts[0]
            on_dead = sorted(v.name for v in store.list_vms(pool=HA_POOL, states=(VmState.RUNNING,))
                             if v.host == dead)
            runner, creator = manager.runner, manager.creator
            restarts_before, created_before = creator.ha_restarts, runner.stats.created
            calls_before = len(sim.call_log)
            refills = s.refills if with_refills else 0
            say(f"HA {label}: taking {dead} down ({len(on_dead)} checked-out HA VMs on it)"
                + (f", {refills:,} refills queued at the same moment" if refills else "") + " ...")
            t0, m0 = time.perf_counter(), time.monotonic()
            sim.controls.set_host_down(dead)
            if refills:
                for pool, size in zip(pools[1:], split(refills, s.pools), strict=True):
                    manager.set_pool_size(pool.name, size)
            limit = WAIT_LIMIT_S + 20 * (s.time_scale * 10)
            end = await until(lambda: creator.ha_restarts - restarts_before >= len(on_dead)
                              or creator.ha_failures > 0, f"{len(on_dead)} HA restarts", limit)
            restart_s = end - t0
            refills_s = None
            if refills:
                done = await until(lambda: runner.stats.created - created_before >= refills
                                   or runner.stats.failed + runner.stats.unplaced > 0, f"{refills} refills", limit)
                refills_s = done - t0
            up = {h.name: h.up for h in await sim.list_hosts()}
            where = {v.name: v.host for v in await sim.list_vms()}
            records = [store.get_vm(name) for name in on_dead]
            live = [r for r in records if r is not None and r.state is VmState.RUNNING and r.host != dead
                    and up.get(r.host or "", False) and where.get(r.name) == r.host]
            calls = list(sim.call_log)[calls_before:]
            starts = [c.at - m0 for c in calls if c.op == "start"]
            creates = [c.at - m0 for c in calls if c.op == "create"]
            last_start = max(starts, default=0.0)
            trial = HaTrial(
                label=label, dead_host=dead, dead_vms=len(on_dead), restarted=creator.ha_restarts - restarts_before,
                ha_failures=creator.ha_failures, on_live_hosts=len(live),
                new_hosts=len({r.host for r in live}), restart_s=restart_s,
                host_down_seen_s=(seen[0] - m0) if seen else None,
                start_calls=len(starts), start_vms_per_call=[len(c.names) for c in calls if c.op == "start"],
                first_start_s=min(starts, default=None), last_start_s=max(starts, default=None),
                refills=refills, refills_created=runner.stats.created - created_before, refills_s=refills_s,
                refill_calls=len(creates), first_refill_call_s=min(creates, default=None),
                refill_calls_before_last_start=sum(1 for at in creates if at < last_start),
                limit_s=(START_CALL_S + math.ceil(len(on_dead) / (len(hosts) - 1)) * START_PER_VM_S) * s.time_scale,
            )
            say(f"HA {label}: {trial.restarted} restarted in {restart_s:.3f} s"
                + (f"; refills done at {refills_s:.3f} s" if refills_s is not None else ""))
        finally:
            await manager.stop()
            store.close()
    return trial


def _median(trials: list[HaTrial]) -> HaTrial:
    """The trial of median restart time, knowing every repeat's time and whether each was ok."""
    chosen = sorted(trials, key=lambda t: t.restart_s)[len(trials) // 2]
    chosen.runs_s = [t.restart_s for t in trials]
    chosen.runs_ok = all(t.ok for t in trials)
    return chosen


def run_ha(settings: MassRunSettings, say: Say) -> HaResult:
    """``repeats`` of each trial, alternating; the median of each is reported."""
    alone: list[HaTrial] = []
    loaded: list[HaTrial] = []
    for _ in range(settings.repeats):
        alone.append(asyncio.run(ha_trial(settings, with_refills=False, say=say)))
        loaded.append(asyncio.run(ha_trial(settings, with_refills=True, say=say)))
    return HaResult(hosts=settings.hosts, ha_vms=settings.ha_vms, refills=settings.refills,
                    time_scale=settings.time_scale, alone=_median(alone), with_refills=_median(loaded))
