"""The settings of ``corral bench vsphere`` and the template every run clones. The set-up they
drive is described in :mod:`corral.bench.vsphere`."""

from __future__ import annotations

from dataclasses import dataclass

TEMPLATE = "Templates/corral-bench"
#: vcsim runs no VMware Tools; this extraConfig key makes it report them running in a clone.
TOOLS_RUNNING = {"SET.guest.toolsRunningStatus": "guestToolsRunning"}


@dataclass
class VsphereBenchSettings:
    pools: int = 10
    vms_per_pool: int = 20
    clone_delay_ms: int = 2000
    hosts: int = 10
    task_limit: int = 10  # create calls in flight, corral and baseline
    wide: bool = True
    wide_limit: int = 40  # the wide run's task_limit and concurrency

    @property
    def vms(self) -> int:
        return self.pools * self.vms_per_pool

    @property
    def baseline_concurrency(self) -> int:
        """Calls per pool's session: the pools' sessions together take ``task_limit`` calls."""
        return max(1, self.task_limit // self.pools)

    def check(self) -> None:
        if self.pools < 1 or self.vms_per_pool < 1:
            raise ValueError("need --pools >= 1 and --vms-per-pool >= 1")
        if self.clone_delay_ms < 0:
            raise ValueError("--clone-delay-ms must be 0 or more")
        if self.hosts < 1:
            raise ValueError("--hosts must be at least 1")
        if not 1 <= self.task_limit <= 100 or not 1 <= self.wide_limit <= 100:
            raise ValueError("--task-limit and the wide limit must be between 1 and 100 (provider concurrency)")
