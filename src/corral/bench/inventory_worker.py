"""The measuring process of ``corral bench inventory``: one system in a process of its own.

The parent (:func:`corral.bench.inventory.run_system`) starts ``python -m
corral.bench.inventory_worker --worker corral|baseline --settings JSON --result PATH``;
:func:`worker_main` builds the simulated cluster, loads the inventory, runs the idle, churn
and step phases (:class:`Worker`, with :class:`Churn` making the changes and matching each
to its event) and writes the :class:`~corral.bench.inventory_report.SystemResult` as JSON
to ``PATH``; its progress lines go to stderr. Also here: the resident-memory readings
(:func:`rss_mb`, :func:`hwm_mb`) and :func:`tune_gc`. The phases are described in
:mod:`corral.bench.inventory`.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import random
import sys
import time
from array import array
from pathlib import Path
from typing import Any

from corral.bench.common import Say, counted, percentile
from corral.bench.inventory_report import PhaseResult, SystemResult
from corral.bench.inventory_settings import InventoryBenchSettings

TICK_S = 0.005  # the churn driver's period
MAX_BURST_S = 0.25  # a late driver tick catches up on at most this much of the rate; the rest is lost


def _status_mb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return 0.0


def rss_mb() -> float:
    return _status_mb("VmRSS")


def hwm_mb() -> float:
    return _status_mb("VmHWM")


def tune_gc() -> None:
    """What ``corral serve`` does once the service has started (``corral.api.app.tune_gc``)."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


class Churn:
    """Makes guest-state changes at a rate and matches each to its event; see :mod:`corral.bench.inventory`."""

    def __init__(self, provider: Any, names: list[str], seed: int) -> None:
        self.provider = provider
        self.names = names
        self.ready = [True] * len(names)  # every VM starts powered on and booted
        self.pending: dict[str, float] = {}  # VM -> perf_counter() of its change not seen yet
        self.rng = random.Random(seed)
        self.unmatched = 0
        self.repicked = 0
        self._start = time.perf_counter()
        self.latency: array[float] = array("d")  # seconds, per event seen
        self.changed_at: array[float] = array("d")  # when its change was made, seconds after the start

    def window(self) -> None:
        """Start a new phase: forget the latencies and counters of the last one."""
        self._start = time.perf_counter()
        self.latency = array("d")
        self.changed_at = array("d")
        self.unmatched = 0
        self.repicked = 0

    def seen(self, vm: str) -> None:
        """An event for ``vm`` arrived (the bus subscriber calls this)."""
        made = self.pending.pop(vm, None)
        if made is None:
            self.unmatched += 1
            return
        self.latency.append(time.perf_counter() - made)
        self.changed_at.append(made - self._start)

    async def drive(self, rate: float, seconds: float) -> tuple[int, float, float]:
        """Changes at ``rate``/s for ``seconds``: (changes made, wall seconds, driver CPU seconds)."""
        names, ready, pending, rng, provider = self.names, self.ready, self.pending, self.rng, self.provider
        n = len(names)
        limit = max(1, n // 2)  # never have more than half the VMs waiting: picking would crawl
        burst = max(1, int(rate * MAX_BURST_S))
        chunk = int(rate * TICK_S) + 1  # changes made before the loop gets a turn
        perf, thread_time = time.perf_counter, time.thread_time
        start = perf()
        done = owed = 0
        cpu = 0.0
        while True:
            elapsed = perf() - start
            due = int(rate * min(elapsed, seconds)) - done - owed
            if due > burst:  # the driver is far behind: what it could not make is lost, not bunched up
                owed += due - burst
                due = burst
            now = min(due, chunk)  # behind: catch up a tick's worth at a time, letting the monitor run between
            c0 = thread_time()
            for _ in range(now):
                if len(pending) >= limit:
                    owed += 1
                    continue
                i = rng.randrange(n)
                while names[i] in pending:
                    self.repicked += 1
                    i = rng.randrange(n)
                name = names[i]
                ready[i] = not ready[i]
                pending[name] = perf()
                provider.controls.set_guest_ready(name, ready[i])
                done += 1
            cpu += thread_time() - c0
            if elapsed >= seconds:
                return done, elapsed, cpu
            await asyncio.sleep(TICK_S if due <= now else 0)

    async def drain(self, timeout: float) -> None:
        """Wait until every change was seen, or ``timeout`` seconds."""
        deadline = time.perf_counter() + timeout
        while self.pending and time.perf_counter() < deadline:
            await asyncio.sleep(0.01)

    def oldest_unseen_ms(self) -> float:
        if not self.pending:
            return 0.0
        return 1000.0 * (time.perf_counter() - min(self.pending.values()))


class Worker:
    """One system, its simulator, the churn and the measurements, in this process."""

    def __init__(self, system: str, settings: InventoryBenchSettings, say: Say) -> None:
        self.system = system
        self.s = settings
        self.say = say
        self.monitor: Any = None
        self.poller: Any = None
        self.bus: Any = None
        self.churner: Churn | None = None

    async def _build(self) -> tuple[Any, list[str]]:
        from corral.providers.sim import SimProvider, SimSettings

        s = self.s
        settings = SimSettings.model_validate({"hosts": s.hosts, "time_scale": 0.001, "seed": s.seed})
        provider = SimProvider("sim", settings)
        await provider.connect()
        hosts = [h.name for h in await provider.list_hosts()]
        names = [f"bench-{i:05d}" for i in range(s.vms)]
        for i, name in enumerate(names):
            provider.controls.inject_vm(name, hosts[i % len(hosts)], f"pool-{i % s.pools:03d}")
        return provider, names

    def _counters(self) -> tuple[int, int, int]:
        """(feed resnapshots, subscriber overflows, poll cycles) so far."""
        resnapshots = self.monitor.stats.resnapshots if self.monitor is not None else 0
        cycles = self.poller.cycles if self.poller is not None else 0
        overflows = self.bus.stats["bench"].overflows
        return resnapshots, overflows, cycles

    async def _phase_start(self) -> None:
        """The baseline's phases start as a poll cycle starts."""
        if self.poller is not None:
            await self.poller.cycle_start()

    def _length(self, seconds: float) -> float:
        """The baseline's phases last whole poll intervals."""
        if self.poller is None:
            return seconds
        return max(1, round(seconds / self.s.poll_interval)) * self.s.poll_interval

    def _drain_timeout(self) -> float:
        if self.poller is None:
            return 5.0
        return self.s.poll_interval + 3 * max(self.poller.cycle_seconds[-5:]) + 2.0

    async def idle(self) -> PhaseResult:
        await self._phase_start()
        seconds = self._length(self.s.idle)
        before = self._counters()
        cpu0, t0 = time.process_time(), time.perf_counter()
        await asyncio.sleep(seconds)
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - t0
        after = self._counters()
        return PhaseResult("idle", 0.0, round(wall, 4), cpu_s=cpu, resnapshots=after[0] - before[0],
                           overflows=after[1] - before[1], cycles=after[2] - before[2])

    async def churn(self, name: str, rate: float, seconds: float) -> PhaseResult:
        churn = self.churner
        assert churn is not None
        await self._phase_start()
        seconds = self._length(seconds)
        churn.window()
        before = self._counters()
        cpu0 = time.process_time()
        changes, wall, driver_cpu = await churn.drive(rate, seconds)
        cpu = time.process_time() - cpu0
        backlog, oldest = len(churn.pending), churn.oldest_unseen_ms()
        await churn.drain(self._drain_timeout())
        after = self._counters()
        missing = len(churn.pending)
        churn.pending.clear()  # their events, if they come later, count as unmatched
        lat = sorted(churn.latency)
        third = seconds / 3
        first = sorted(v for v, at in zip(churn.latency, churn.changed_at, strict=True) if at < third)
        last = sorted(v for v, at in zip(churn.latency, churn.changed_at, strict=True) if at >= 2 * third)
        result = PhaseResult(
            name, rate, round(wall, 4), changes=changes, achieved_rate=changes / wall if wall else 0.0,
            events=len(lat), missing=missing, unmatched=churn.unmatched, repicked=churn.repicked,
            p50_ms=1000 * percentile(lat, 50), p90_ms=1000 * percentile(lat, 90), p99_ms=1000 * percentile(lat, 99),
            max_ms=1000 * (lat[-1] if lat else 0.0), p99_first_third_ms=1000 * percentile(first, 99),
            p99_last_third_ms=1000 * percentile(last, 99), backlog_end=backlog, oldest_unseen_end_ms=oldest,
            cpu_s=cpu, driver_cpu_s=driver_cpu, resnapshots=after[0] - before[0], overflows=after[1] - before[1],
            cycles=after[2] - before[2])
        result.judge()
        return result

    def _report(self, phase: PhaseResult) -> None:
        if not phase.rate:
            self.say(f"{self.system}: idle {phase.seconds:.1f} s: CPU {phase.cpu_percent:.2f} % of a core")
            return
        self.say(f"{self.system}: {phase.rate:,.0f} changes/s for {phase.seconds:.1f} s: {phase.changes:,} changes, "
                 f"{phase.events:,} events, {phase.missing} missing; p50 {phase.p50_ms:.2f} ms, "
                 f"p99 {phase.p99_ms:.2f} ms, max {phase.max_ms:.1f} ms; CPU {phase.cpu_percent:.1f} % "
                 f"({phase.net_cpu_percent:.1f} % without the driver)"
                 + ("" if phase.name == "churn" else f"; {'sustained' if phase.sustained else 'NOT sustained'}"
                    + (f" ({phase.why})" if phase.why else "")))

    async def run(self) -> SystemResult:
        from corral.bench.inventory_baseline import PollingInventory
        from corral.domain.events import VmStateChanged
        from corral.inventory import EventBus, MonitorSettings, ProviderMonitor

        s, say = self.s, self.say
        rss_start = rss_mb()
        t0 = time.perf_counter()
        provider, names = await self._build()
        setup = time.perf_counter() - t0
        rss_sim = rss_mb()
        say(f"{self.system}: {counted(s.hosts, 'host')} and {counted(s.vms, 'VM')} simulated in {setup:.1f} s, "
            f"RSS {rss_sim:.0f} MB")
        settings = MonitorSettings()
        self.bus = bus = EventBus(queue_size=settings.queue_size, history=settings.history)
        cpu0, t0 = time.process_time(), time.perf_counter()
        if self.system == "corral":
            self.monitor = ProviderMonitor("sim", provider, bus, settings)
            await self.monitor.load()
            load = time.perf_counter() - t0
            hosts, vms = len(self.monitor.repo.hosts), len(self.monitor.repo.vms)
        else:
            self.poller = PollingInventory(provider, bus, threads=s.threads, interval=s.poll_interval)
            load = await self.poller.load()
            hosts, vms = self.poller.hosts, self.poller.vms
        load_cpu = time.process_time() - cpu0
        rss_loaded, hwm_loaded = rss_mb(), hwm_mb()
        say(f"{self.system}: loaded {counted(hosts, 'host')} and {counted(vms, 'VM')} in {load:.3f} s, "
            f"RSS {rss_loaded:.0f} MB (peak {hwm_loaded:.0f} MB)")
        tune_gc()
        self.churner = Churn(provider, names, s.seed)

        churner = self.churner

        async def on_event(event: Any) -> None:
            churner.seen(event.vm)

        bus.subscribe("bench", on_event, accepts=lambda e: isinstance(e, VmStateChanged))
        task = asyncio.create_task(self.monitor.run() if self.monitor is not None else self.poller.run())
        try:
            await asyncio.sleep(0.2)  # the first long poll is waiting
            idle = await self.idle()
            self._report(idle)
            churn = await self.churn("churn", s.rate, s.duration)
            self._report(churn)
            rss_after, hwm = rss_mb(), hwm_mb()
            steps: list[PhaseResult] = []
            if self.monitor is not None:
                for rate in s.steps:
                    step = await self.churn(f"step-{rate:g}", rate, s.step_duration)
                    self._report(step)
                    steps.append(step)
                    if not step.sustained:
                        break
        finally:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            await bus.close()
            if self.poller is not None:
                self.poller.close()
            await provider.close()
        poll = self.poller
        cycles_idle = poll.cycle_seconds[1:1 + max(1, idle.cycles)] if poll is not None else []
        cycles_churn = poll.cycle_seconds[-max(1, churn.cycles):] if poll is not None else []
        loop_name = type(asyncio.get_running_loop()).__module__.split(".")[0]
        return SystemResult(
            system=self.system, hosts=hosts, vms=vms, setup_s=setup, load_s=load, load_cpu_s=load_cpu,
            rss_start_mb=rss_start, rss_sim_mb=rss_sim, rss_loaded_mb=rss_loaded, hwm_loaded_mb=hwm_loaded,
            rss_after_churn_mb=rss_after, hwm_mb=hwm, idle=idle, churn=churn, steps=steps, loop=loop_name,
            cycle_s_mean_idle=sum(cycles_idle) / len(cycles_idle) if cycles_idle else None,
            cycle_s_mean_churn=sum(cycles_churn) / len(cycles_churn) if cycles_churn else None,
            cycle_s_max=max(poll.cycle_seconds) if poll is not None else None,
            late_cycles=poll.late_cycles if poll is not None else None)


def _run_loop(coro: Any) -> Any:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        return asyncio.run(coro)
    return uvloop.run(coro)


def worker_main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="One system of corral bench inventory (internal).")
    parser.add_argument("--worker", choices=("corral", "baseline"), required=True)
    parser.add_argument("--settings", required=True, help="InventoryBenchSettings as JSON")
    parser.add_argument("--result", required=True, help="where to write the result as JSON")
    args = parser.parse_args(argv)
    settings = InventoryBenchSettings(**json.loads(args.settings))

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    result = _run_loop(Worker(args.worker, settings, say).run())
    Path(args.result).write_text(json.dumps(result.as_dict()))
    return 0


if __name__ == "__main__":
    raise SystemExit(worker_main())
