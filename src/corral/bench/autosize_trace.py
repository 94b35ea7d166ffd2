"""The day ``corral bench autosize`` replays: checkouts of one pool, generated from a seed.

The shape over a day (hours of the clock; with ``day_hours`` below 24 the same shape is
squeezed into that many hours, at the same rates per hour):

- a quiet night, 00:00–06:00 and 20:00–24:00: 4 checkouts/h;
- a morning ramp, 06:00–09:00, from 4/h up to ``busy_per_hour``; the same ramp down 17:00–20:00;
- working hours, 09:00–12:00 and 13:30–17:00, at ``busy_per_hour``; a lunch dip 12:00–13:30
  at a third of it;
- on top, ``bursts`` bursts of ``burst_size`` checkouts within one minute (a CI run fanning
  out), at random times between 08:30 and 17:00.

Arrivals outside the bursts are a Poisson process of that rate (drawn by thinning). Each
checkout holds its VM for a log-normal time (a long tail: most jobs are short, a few hold a VM
for hours), at most ``hold_max_s``.

The two fixed sizes the autosizer is compared with are read off the trace, ``T`` being the mean
replenishment time: *average demand* is the mean number of checkouts in one replenishment
time over the day, ``ceil(checkouts × T / day)``, at least 1; *peak* is the most checkouts in
any window of ``T`` seconds during the day.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from corral.bench.autosize_settings import AutosizeBenchSettings

NIGHT_PER_HOUR = 4.0
BURST_FROM_H, BURST_TO_H = 8.5, 17.0
BURST_SPAN_S = 60.0


@dataclass(frozen=True)
class Trace:
    """One day of checkouts: their times (seconds since midnight, sorted), each one's hold
    time, and when each burst started."""

    arrivals: list[float]
    holds: list[float]
    bursts: list[float]
    day_s: float

    def average_size(self, ready_s: float) -> int:
        """The mean checkouts in one replenishment time over the day, rounded up; at least 1."""
        return max(1, math.ceil(len(self.arrivals) * ready_s / self.day_s))

    def held_most(self) -> int:
        """The most VMs checked out at once (each held from its checkout for its hold time)."""
        ends = sorted(at + hold for at, hold in zip(self.arrivals, self.holds, strict=True))
        most, done = 0, 0
        for taken, at in enumerate(self.arrivals, start=1):
            while done < len(ends) and ends[done] <= at:
                done += 1
            most = max(most, taken - done)
        return most

    def peak_size(self, ready_s: float) -> int:
        """The most checkouts within any ``ready_s`` seconds of the day."""
        most, start = 0, 0
        for end, at in enumerate(self.arrivals):
            while self.arrivals[start] <= at - ready_s:
                start += 1
            most = max(most, end - start + 1)
        return most


def rate_per_hour(hour: float, busy: float) -> float:
    """Checkouts/h at ``hour`` of the clock (0 ≤ hour < 24), outside the bursts."""
    night = NIGHT_PER_HOUR
    if 6 <= hour < 9:
        return night + (busy - night) * (hour - 6) / 3
    if 17 <= hour < 20:
        return busy - (busy - night) * (hour - 17) / 3
    if 12 <= hour < 13.5:
        return busy / 3
    if 9 <= hour < 17:
        return busy
    return night


def generate(settings: AutosizeBenchSettings) -> Trace:
    """The day of ``settings``, the same for the same seed."""
    rng = random.Random(settings.seed)
    day_s, squeeze = settings.day_s, 24.0 / settings.day_hours
    top = max(settings.busy_per_hour, NIGHT_PER_HOUR) / 3_600.0
    arrivals: list[float] = []
    at = 0.0
    while True:
        at += rng.expovariate(top)
        if at >= day_s:
            break
        if rng.random() * top * 3_600.0 <= rate_per_hour(at / day_s * 24.0, settings.busy_per_hour):
            arrivals.append(at)
    bursts = sorted(rng.uniform(BURST_FROM_H, BURST_TO_H) * 3_600.0 / squeeze for _ in range(settings.bursts))
    for start in bursts:
        arrivals += [min(start + rng.uniform(0.0, BURST_SPAN_S), day_s) for _ in range(settings.burst_size)]
    arrivals.sort()
    mu = math.log(settings.hold_median_s)
    holds = [min(rng.lognormvariate(mu, settings.hold_sigma), settings.hold_max_s) for _ in arrivals]
    return Trace(arrivals, holds, bursts, day_s)
