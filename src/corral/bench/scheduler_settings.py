"""The settings of ``corral bench scheduler``: the sizes of its two parts, full and quick. The
set-up they drive is described in :mod:`corral.bench.scheduler`."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class SchedulerBenchSettings:
    hosts: int = 2_500
    vms: int = 10_000
    plain_vms: int = 400  # the prefix the plain greedy places
    repeats: int = 5  # corral's
    numpy_repeats: int = 3
    quality_hosts: int = 64
    quality_vms: int = 2_000
    refresh: int = 20  # vmpooler's least-used list is re-selected every this many clones
    seed: int = 1
    quick: bool = False

    @classmethod
    def quick_settings(cls, seed: int = 1) -> SchedulerBenchSettings:
        return cls(hosts=200, vms=1_000, plain_vms=200, repeats=3, numpy_repeats=1, quality_hosts=16,
                   quality_vms=300, seed=seed, quick=True)

    def check(self) -> None:
        if self.hosts < 1 or self.vms < 1 or self.quality_hosts < 1 or self.quality_vms < 1:
            raise ValueError("need at least 1 host and 1 VM in each part")
        if self.repeats < 1 or self.numpy_repeats < 1 or self.refresh < 1:
            raise ValueError("need repeats and refresh of at least 1")
        if not 0 < self.plain_vms <= self.vms:
            raise ValueError("the plain greedy's prefix must be between 1 and the number of VMs")
