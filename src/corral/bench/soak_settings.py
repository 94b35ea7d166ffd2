"""The settings of ``corral bench soak``: how long, how hard, how often it samples, and the
time spans derived from them (warm-up, sampling interval, progress lines), as pure functions.
The run they drive is described in :mod:`corral.bench.soak`."""

from __future__ import annotations

from dataclasses import dataclass

WARMUP_SHARE = 0.1  # the first tenth of a run is warm-up ...
WARMUP_FLOOR_S = 60.0  # ... but at least a minute ...
WARMUP_CEILING_SHARE = 0.25  # ... and never more than a quarter of the run
SAMPLES_WANTED = 120  # samples over a run, at most one every MAX_INTERVAL_S, at least every MIN_INTERVAL_S
MAX_INTERVAL_S = 10.0
MIN_INTERVAL_S = 0.25
PROGRESS_EVERY_S = 60.0  # one progress line a minute (six over a run shorter than six minutes)
WINDOWS = 10  # the measured part (after the warm-up) is cut into this many windows for medians
MAX_MINUTES = 7 * 24 * 60.0


def warmup_s(run_s: float) -> float:
    """Seconds at the start of a run of ``run_s`` left out of the growth figures: a tenth of
    it, at least a minute, at most a quarter of it."""
    return max(run_s * WARMUP_SHARE, min(WARMUP_FLOOR_S, run_s * WARMUP_CEILING_SHARE))


def sample_interval_s(run_s: float) -> float:
    """Seconds between two samples of the server: about SAMPLES_WANTED over the run, every
    10 s at most often enough (a 30-minute run: every 10 s), every 0.25 s at the most."""
    return min(MAX_INTERVAL_S, max(MIN_INTERVAL_S, run_s / SAMPLES_WANTED))


def progress_every_s(run_s: float) -> float:
    """Seconds between two progress lines: a minute, or a sixth of a shorter run."""
    return min(PROGRESS_EVERY_S, max(run_s / 6, MIN_INTERVAL_S))


@dataclass(frozen=True)
class SoakSettings:
    minutes: float = 30.0
    seed: int = 1
    rate: float = 20.0  # checkouts/s, a fixed schedule
    clients: int = 4  # HTTP connections the checkouts and returns share
    pools: int = 3
    pool_size: int = 40  # ready VMs each pool is kept at
    hold_s: float = 1.0  # most VMs are returned within this many seconds (uniform) ...
    long_share: float = 0.1  # ... this share is held longer ...
    long_hold_s: float = 60.0  # ... up to this many seconds (uniform from a third of it)
    ready_s: float = 2.5  # real seconds a refilled VM takes to be ready (create call + clone + boot)
    data_ttl_minutes: float = 1.0  # destroyed VMs' history kept this long, so the store reaches a steady size

    @property
    def run_s(self) -> float:
        return self.minutes * 60.0

    @property
    def warmup_s(self) -> float:
        return warmup_s(self.run_s)

    @property
    def interval_s(self) -> float:
        return sample_interval_s(self.run_s)

    def check(self) -> None:
        if not 0 < self.minutes <= MAX_MINUTES:
            raise ValueError(f"--minutes must be above 0 and at most a week ({MAX_MINUTES:g}), got {self.minutes:g}")
        if self.run_s < 2.0:
            raise ValueError(f"--minutes must give a run of at least 2 seconds, got {self.run_s:g} s")
        if not 0 < self.rate <= 1000:
            raise ValueError(f"--rate must be above 0 and at most 1000 checkouts/s, got {self.rate:g}")
        if not 1 <= self.clients <= 256:
            raise ValueError(f"--clients must be between 1 and 256, got {self.clients}")
        if not 1 <= self.pools <= 100 or not 1 <= self.pool_size <= 10_000:
            raise ValueError(f"--pools must be between 1 and 100 and --pool-size between 1 and 10,000, got "
                             f"{self.pools} and {self.pool_size}")
        if self.hold_s < 0 or self.long_hold_s < self.hold_s or not 0 <= self.long_share <= 1:
            raise ValueError("hold times must be 0 or more, the long hold at least the short one, and the "
                             "long share within [0, 1]")
        if self.ready_s <= 0 or self.data_ttl_minutes < 0:
            raise ValueError("--ready-s must be above 0 and --data-ttl-minutes 0 or more")
