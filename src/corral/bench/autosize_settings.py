"""The settings of ``corral bench autosize``: the generated day, the replenishment time drawn
as the simulator draws it, and the autosizing keys. The replay they drive is described in
:mod:`corral.bench.autosize`."""

from __future__ import annotations

from dataclasses import dataclass

from corral.providers.sim.settings import SimLatency

DAY_S = 86_400.0


@dataclass
class AutosizeBenchSettings:
    seed: int = 1
    day_hours: float = 24.0  # the day's shape squeezed into this many hours (a short trace for tests)
    bursts: int = 6  # bursts of ``burst_size`` checkouts within a minute, in working hours
    burst_size: int = 50
    busy_per_hour: float = 180.0  # checkouts/h in working hours (the night has 4, the lunch dip a third)
    hold_median_s: float = 1_200.0  # hold times: log-normal, this median ...
    hold_sigma: float = 1.2  # ... and this sigma (a long tail), at most ``hold_max_s``
    hold_max_s: float = 8 * 3_600.0
    latency_scale: float = 1.0  # the simulator's latencies multiplied by it (1.0: its defaults)
    jitter: float = 0.2  # each latency times a random factor in 1 ± jitter, as the simulator does
    min_size: int = 1
    max_size: int = 100
    target_wait: float = 0.01
    scale_down_after: float = 900.0
    window: float = 600.0  # Demand's long window, seconds
    tick_s: float = 10.0  # the autosizer decides at each checkout and every tick

    @property
    def day_s(self) -> float:
        return self.day_hours * 3_600.0

    def latencies(self) -> tuple[float, float, float]:
        """The simulator's create call, clone and boot seconds (its defaults), times ``latency_scale``."""
        latency = SimLatency()
        return (latency.create_call * self.latency_scale, latency.create_per_vm * self.latency_scale,
                latency.boot * self.latency_scale)

    @property
    def ready_mean_s(self) -> float:
        """The mean replenishment time: create call + clone + boot (the jitter is symmetric)."""
        return sum(self.latencies())

    def check(self) -> None:
        if not 0 < self.day_hours <= 24 * 7:
            raise ValueError("--day-hours must be above 0 and at most a week (168)")
        if self.bursts < 0 or self.burst_size < 1 or self.busy_per_hour <= 0:
            raise ValueError("--bursts must be 0 or more, --burst-size and --busy-per-hour above 0")
        if self.hold_median_s <= 0 or self.hold_sigma < 0 or self.hold_max_s < self.hold_median_s:
            raise ValueError("hold times need a positive median, a sigma of 0 or more and a maximum above the median")
        if self.latency_scale <= 0 or not 0 <= self.jitter < 1:
            raise ValueError("--latency-scale must be above 0 and --jitter within [0, 1)")
        if not 0 <= self.min_size <= self.max_size or self.max_size < 1:
            raise ValueError(f"need 0 <= --min-size <= --max-size and --max-size >= 1, got {self.min_size} and "
                             f"{self.max_size}")
        if not 0 < self.target_wait < 1:
            raise ValueError(f"--target-wait must be between 0 and 1 (exclusive), got {self.target_wait}")
        if self.scale_down_after < 0 or self.window <= 0 or self.tick_s <= 0:
            raise ValueError("--scale-down-after must be 0 or more, --window and --tick above 0")
