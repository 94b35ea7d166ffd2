"""``corral bench massrun``: the central runner's mass run and its HA restarts, on the simulator.

**Mass run.** ``vms`` (1,000) VMs on ``hosts`` (10) simulated hosts whose create call costs
``create_call`` (2 s) plus ``create_per_vm`` (10 ms) per VM, cloned one after another within a
call (``host_clone_slots`` 1); the endpoint takes 64 calls at once, so it is not what limits;
boots are long (600 s) and not measured: the clock stops when every create call has
returned. Hosts (128 cores, 1 TiB) and the template (1 vCPU, 1 GiB) leave 100 VMs per host
far under the 90 % utilisation limit. Three figures from one run, every latency × ``time_scale``:

- **serial**: one call per VM, one after another, round robin over the hosts, on a fresh
  simulator. Measured on ``serial_sample`` calls and extrapolated linearly to ``vms`` (the
  calls are serial, so the time is linear in their number);
- **corral**: a real :class:`~corral.pools.manager.PoolManager` (sqlite store in a temporary
  directory, the real inventory, default settings), started with ``pools`` pools of size 0
  and left until idle; at t0 the pools are raised to ``vms`` VMs together; the clock stops
  when the runner has counted every create as returned (``runner.stats.created``). Run
  ``repeats`` (3) times, each on a fresh manager and cluster; the median run is reported;
- **limit**: the physical limit, computed: one call per host, every host in parallel,
  ``(create_call + ceil(vms / hosts) × create_per_vm) × time_scale``.

Targets: corral/limit ≤ 1.2 and serial/corral ≥ 100. corral's parts run with the garbage
collector set as ``corral serve`` sets it (:func:`corral.bench.common.server_gc`), and its
log records go nowhere unless logging is set up (:func:`corral.bench.common.quiet_logs`).

The settings and the simulated cluster they describe are in :mod:`corral.bench.massrun_settings`;
**HA restarts** in :mod:`corral.bench.massrun_ha`; the results, tables and
``docs/benchmarks.md`` rows in :mod:`corral.bench.massrun_report`.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from pathlib import Path

from corral.bench.common import Say, counted, counter, machine, quiet_logs, sayer, server_gc, until
from corral.bench.massrun_ha import run_ha, settle
from corral.bench.massrun_report import MassRunBenchResult, MassRunResult, SerialResult
from corral.bench.massrun_settings import WAIT_LIMIT_S, MassRunSettings, limit_seconds, sim_settings, split
from corral.domain.models import Pool, VmSpec
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.store.sqlite import SqliteStore

# -- the mass run ----------------------------------------------------------------------------


async def serial_creates(s: MassRunSettings, say: Say) -> SerialResult:
    """One create call per VM, one after another, round robin over the hosts, on a fresh simulator."""
    sim = SimProvider("sim", sim_settings(s))
    await sim.connect()
    try:
        hosts = sorted(h.name for h in await sim.list_hosts())
        say(f"serial: {s.serial_sample} create calls of one VM each, one after another ...")
        count = counter(say)
        last = time.perf_counter()
        started = time.perf_counter()
        for i in range(s.serial_sample):
            await sim.create_vms(hosts[i % len(hosts)], [VmSpec(f"serial-{i:05d}", "serial", "tmpl")])
            count(i + 1, s.serial_sample)
            if time.perf_counter() - last > 5.0:
                last = time.perf_counter()
                say(f"  serial: {i + 1}/{s.serial_sample} calls")
        seconds = time.perf_counter() - started
        calls = sum(1 for c in sim.call_log if c.op == "create")
    finally:
        await sim.close()
    return SerialResult(sample_calls=s.serial_sample, sample_s=seconds, vms=s.vms, calls=calls)


def mass_pools(s: MassRunSettings) -> list[Pool]:
    return [Pool(name=f"mass-{i:02d}", template="tmpl", size=0, provider="sim") for i in range(s.pools)]


async def corral_mass_run(s: MassRunSettings, say: Say) -> MassRunResult:
    """The real pool manager: pools raised from 0 to ``vms`` VMs at t0; until every create returned."""
    with tempfile.TemporaryDirectory(prefix="corral-massrun-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        sim = SimProvider("sim", sim_settings(s))
        pools = mass_pools(s)
        manager = PoolManager(pools, {"sim": sim}, store, ManagerSettings())
        await manager.start()
        try:
            await settle(manager)
            say(f"corral: raising {counted(s.pools, 'pool')} to {counted(s.vms, 'VM')} ...")
            calls_before = len(sim.call_log)
            runner = manager.runner
            t0 = time.perf_counter()
            for pool, size in zip(pools, split(s.vms, s.pools), strict=True):
                manager.set_pool_size(pool.name, size)
            end = await until(lambda: runner.stats.created >= s.vms, f"{s.vms} creates",
                              WAIT_LIMIT_S + 10 * limit_seconds(s.vms, s.hosts, s.time_scale))
            seconds = end - t0
            calls = [c for c in list(sim.call_log)[calls_before:] if c.op == "create"]
            dispatched = [c.at - t0 for c in calls]
            result = MassRunResult(
                vms=s.vms, hosts=s.hosts, pools=s.pools, time_scale=s.time_scale, corral_s=seconds,
                limit_s=limit_seconds(s.vms, s.hosts, s.time_scale), calls=len(calls),
                vms_per_call=[len(c.names) for c in calls], batches=runner.stats.batches,
                first_call_s=min(dispatched, default=0.0), last_call_s=max(dispatched, default=0.0),
                created=runner.stats.created, failed=runner.stats.failed + runner.stats.unplaced,
                hosts_used=len({c.host for c in calls}),
            )
            say(f"corral: {seconds:.3f} s, {len(calls)} create calls")
        finally:
            await manager.stop()
            store.close()
    return result


# -- the whole run ---------------------------------------------------------------------------


def run_massrun(settings: MassRunSettings, progress: Say | None = None) -> MassRunBenchResult:
    settings.check()
    say = sayer(progress)
    say(f"time_scale {settings.time_scale} (every simulated latency is multiplied by it)")
    with quiet_logs():
        with server_gc():
            runs = [asyncio.run(corral_mass_run(settings, say)) for _ in range(settings.repeats)]
        corral = sorted(runs, key=lambda r: r.corral_s)[len(runs) // 2]  # the median run
        corral.runs_s = [r.corral_s for r in runs]
        corral.runs_ok = all(r.ok for r in runs)
        serial = asyncio.run(serial_creates(settings, say))
        corral.serial = serial
        say(f"serial: {serial.sample_s:.3f} s for {serial.sample_calls} calls; "
            f"{serial.extrapolated_s:.1f} s extrapolated to {settings.vms:,}")
        with server_gc():
            ha = run_ha(settings, say)
    return MassRunBenchResult(settings=settings, massrun=corral, ha=ha, machine=machine())
