"""``corral bench autosize``: a generated day of checkouts replayed against three ways of
sizing one pool: (a) a fixed size at the average demand, (b) a fixed size at the peak, (c)
autosizing (:mod:`corral.pools.autosize`).

A day cannot run in real time, so this is a discrete-event replay in simulated time: no
provider, no clock, the same trace (:mod:`corral.bench.autosize_trace`) for every strategy. The
pool model is vmpooler's:

- the pool keeps ``size`` VMs ready or being made; a checkout takes a ready VM and a new one is
  asked for at once, so the pool is back at its size one replenishment time later;
- a checkout that finds no VM ready is *found empty*: it waits for the next VM to become ready
  (a VM is asked for on its behalf, as an on-demand request is) and its wait is recorded;
- a VM is returned after its hold time and destroyed (never reused);
- a VM takes what the simulator's latency model takes to be ready: its create call, one clone
  and the boot, each times a random factor within ``1 ± jitter`` (the simulator's defaults,
  times ``latency_scale``); clones run side by side (the hosts' room is not what is measured).

Autosizing feeds each checkout to a :class:`~corral.pools.autosize.Demand` and each measured
ready time to a :class:`~corral.pools.autosize.ReadyTime`, and asks
:meth:`~corral.pools.autosize.Autosizer.decide` at each checkout and every ``tick_s``; a rise
asks for VMs at once, a fall destroys ready VMs above the new size (a VM being made that finds
the pool above its size when it is ready is destroyed too): never a checked-out one. Every
strategy starts the day with its pool full. Idle ready VM-hours are the time integral of the
ready VMs; clones made count every VM asked for.
"""

from __future__ import annotations

import heapq
import random
from collections import deque
from dataclasses import dataclass, field

from corral.bench.autosize_report import AutosizeBenchResult, StrategyResult
from corral.bench.autosize_settings import AutosizeBenchSettings
from corral.bench.autosize_trace import Trace, generate
from corral.bench.common import Say, machine, sayer
from corral.pools.autosize import Autosizer, AutosizeSettings, Demand, ReadyTime

ARRIVE, READY, TICK = 0, 1, 2  # at the same time: the checkout first, then a VM becoming ready


@dataclass
class Pool:
    """One pool's VMs during the replay, and what is counted of them."""

    size: int
    ready: int = 0
    pending: int = 0
    waiting: deque[float] = field(default_factory=deque)  # when each checkout that found it empty came
    at: float = 0.0  # the time the counts are of
    idle_s: float = 0.0  # the time integral of ``ready``
    clones: int = 0
    surplus: int = 0  # VMs destroyed ready, the size having fallen
    waits: list[float] = field(default_factory=list)
    empty_at: list[float] = field(default_factory=list)  # when each checkout that found it empty came

    served: int = 0  # checkouts that got a VM, at once or after their wait

    def advance(self, now: float) -> None:
        """Count the ready VMs' time up to ``now`` (which a VM made after the day's end does not pass)."""
        if now > self.at:
            self.idle_s += self.ready * (now - self.at)
            self.at = now


class Replay:
    """One strategy over one trace: ``autosizer`` None keeps the pool at ``size``."""

    def __init__(self, trace: Trace, settings: AutosizeBenchSettings, size: int, autosizer: Autosizer | None) -> None:
        self.trace, self.settings, self.autosizer = trace, settings, autosizer
        self.rng = random.Random(settings.seed + 1)
        self.pool = Pool(size=size, ready=size)
        self.demand, self.ready_time = Demand(settings.window), ReadyTime()
        self.events: list[tuple[float, int, int, float]] = []
        self.sequence = 0
        self.ready_points: list[tuple[float, int]] = [(0.0, size)]
        self.size_points: list[tuple[float, int]] = [(0.0, size)]

    def push(self, at: float, kind: int, value: float = 0.0) -> None:
        self.sequence += 1
        heapq.heappush(self.events, (at, kind, self.sequence, value))

    def draw_ready_s(self) -> float:
        """One VM's replenishment time: each latency times its own factor in 1 ± jitter."""
        j = self.settings.jitter
        return sum(latency * (self.rng.uniform(1 - j, 1 + j) if j else 1.0) for latency in self.settings.latencies())

    def refill(self, now: float) -> None:
        pool = self.pool
        while pool.ready + pool.pending < pool.size + len(pool.waiting):
            pool.pending += 1
            pool.clones += 1
            self.push(now + (made := self.draw_ready_s()), READY, made)

    def resize(self, now: float) -> None:
        if self.autosizer is None:
            return
        target = self.autosizer.decide(now, self.demand.rate(now), self.ready_time.seconds)
        pool = self.pool
        if target.size != pool.size:
            pool.size = target.size
            self.size_points.append((now, pool.size))
            excess = min(pool.ready, pool.ready + pool.pending - pool.size)
            if excess > 0:
                pool.ready -= excess
                pool.surplus += excess

    def run(self, name: str, label: str) -> StrategyResult:
        for at in self.trace.arrivals:
            self.push(at, ARRIVE)
        tick = self.settings.tick_s
        for n in range(1, int(self.trace.day_s // tick) + 1):
            self.push(n * tick, TICK)
        pool = self.pool
        while self.events:
            now, kind, _, value = heapq.heappop(self.events)
            pool.advance(min(now, self.trace.day_s))
            if kind == ARRIVE:
                self.demand.arrive(now)
                self.resize(now)
                if pool.ready:
                    pool.ready -= 1
                    pool.served += 1
                else:
                    pool.waiting.append(now)
            elif kind == READY:
                pool.pending -= 1
                self.ready_time.record(value)
                if pool.waiting:
                    came = pool.waiting.popleft()
                    pool.served += 1
                    pool.waits.append(now - came)
                    pool.empty_at.append(came)
                elif pool.ready + pool.pending < pool.size:
                    pool.ready += 1
                else:
                    pool.surplus += 1
            else:
                self.resize(now)
            self.refill(now)
            if self.ready_points[-1][1] != pool.ready and now <= self.trace.day_s:
                self.ready_points.append((now, pool.ready))
        pool.advance(self.trace.day_s)
        return StrategyResult(
            name=name, label=label, size=None if self.autosizer else pool.size, checkouts=len(self.trace.arrivals),
            served=pool.served, waits=sorted(pool.waits), empty_at=pool.empty_at, idle_vm_hours=pool.idle_s / 3_600.0,
            clones=pool.clones, surplus=pool.surplus, ready_points=self.ready_points, size_points=self.size_points)


def replay(trace: Trace, settings: AutosizeBenchSettings, name: str, label: str, size: int | None) -> StrategyResult:
    """The day of ``trace`` against a pool of fixed ``size``, or autosized (None)."""
    autosizer = None
    if size is None:
        autosizer = Autosizer(AutosizeSettings(settings.min_size, settings.max_size, settings.target_wait,
                                               settings.scale_down_after), start=settings.min_size)
    return Replay(trace, settings, autosizer.size if autosizer else size or 0, autosizer).run(name, label)


def run_autosize(settings: AutosizeBenchSettings, progress: Say | None = None) -> AutosizeBenchResult:
    say = sayer(progress)
    trace = generate(settings)
    ready_s = settings.ready_mean_s
    average, peak = trace.average_size(ready_s), trace.peak_size(ready_s)
    say(f"a day of {len(trace.arrivals):,} checkouts (seed {settings.seed}); {ready_s:.1f} s to ready; "
        f"average size {average}, peak {peak}")
    strategies = [("average", f"(a) average, {average}", average), ("peak", f"(b) peak, {peak}", peak),
                  ("autosize", "(c) autosized", None)]
    results = []
    for name, label, size in strategies:
        say(f"replaying: {label}")
        results.append(replay(trace, settings, name, label, size))
    return AutosizeBenchResult(settings=settings, trace=trace, ready_s=ready_s, strategies=results, machine=machine())
