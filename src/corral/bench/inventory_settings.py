"""The settings of ``corral bench inventory`` (:class:`InventoryBenchSettings`) and the maximums
they default to. The set-up they drive is described in :mod:`corral.bench.inventory`."""

from __future__ import annotations

from dataclasses import dataclass, field

MAX_HOSTS = 2_500  # vCenter's published maximums (hosts and powered-on VMs per vCenter)
MAX_VMS = 45_000
TARGET_RATE = 2_000.0  # changes/s at which the latency target holds
OVIRT_REFRESH_S = 3.0  # oVirt engine's VdsRefreshRate: its per-host VM status poll
DEFAULT_STEPS = (2_000, 5_000, 10_000, 20_000, 40_000, 60_000, 80_000, 100_000, 120_000, 160_000)


@dataclass
class InventoryBenchSettings:
    hosts: int = MAX_HOSTS
    vms: int = MAX_VMS
    pools: int = 300
    rate: float = TARGET_RATE
    duration: float = 10.0
    idle: float = 5.0
    poll_interval: float = OVIRT_REFRESH_S
    threads: int = 16
    steps: list[float] = field(default_factory=lambda: [float(s) for s in DEFAULT_STEPS])
    step_duration: float = 4.0
    seed: int = 1

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, for settings a run cannot use."""
        if self.hosts < 1 or self.vms < 1 or self.pools < 1:
            raise ValueError("need at least 1 host, 1 VM and 1 pool")
        if self.rate <= 0 or self.duration <= 0 or self.idle <= 0:
            raise ValueError("need --rate, --duration and --idle above 0")
        if self.poll_interval <= 0 or self.threads < 1:
            raise ValueError("need --poll-interval above 0 and --threads >= 1")
        if any(s <= 0 for s in self.steps) or self.step_duration <= 0:
            raise ValueError("need every step rate and --step-duration above 0")
