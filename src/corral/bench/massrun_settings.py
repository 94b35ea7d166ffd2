"""The settings of ``corral bench massrun`` (:class:`MassRunSettings`) and the simulated cluster
they describe (:func:`sim_settings`), shared by the mass run (:mod:`corral.bench.massrun`), the
HA restarts (:mod:`corral.bench.massrun_ha`) and the report (:mod:`corral.bench.massrun_report`);
with :func:`split` and the physical limit of a mass run (:func:`limit_seconds`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from corral.providers.sim import SimSettings

CREATE_CALL_S = 2.0
CREATE_PER_VM_S = 0.01
START_CALL_S = 2.0
START_PER_VM_S = 0.01
LONG_BOOT_S = 600.0  # never reached while measuring: boots are not in the figures
HOST_CORES = 128
HOST_MEMORY_MB = 1024 * 1024
TEMPLATE_CPUS = 1
TEMPLATE_MEMORY_MB = 1024
SIM_CONCURRENCY = 64  # the endpoint's call limit: far above what either side sends at once
WAIT_LIMIT_S = 120.0  # a step that takes longer than this (plus its simulated time) has hung


@dataclass
class MassRunSettings:
    vms: int = 1_000
    hosts: int = 10
    pools: int = 10
    time_scale: float = 0.1
    serial_sample: int = 100  # serial calls measured; extrapolated to ``vms``
    repeats: int = 3  # corral's mass run, each on a fresh manager and cluster; the median counts
    ha_vms: int = 2_000  # checked-out VMs of the HA pool, spread over the hosts
    refills: int = 1_000  # refill creates queued at the moment the host goes down
    quick: bool = False

    @classmethod
    def quick_settings(cls, time_scale: float = 0.01, serial_sample: int = 10) -> MassRunSettings:
        return cls(vms=100, hosts=10, pools=4, time_scale=time_scale, serial_sample=serial_sample, repeats=1,
                   ha_vms=200, refills=100, quick=True)

    def check(self) -> None:
        if self.hosts < 2:
            raise ValueError("need at least 2 hosts (one goes down in the HA part)")
        if self.vms < 1 or self.pools < 1 or self.pools > self.vms:
            raise ValueError("need vms >= pools >= 1")
        if not 1 <= self.serial_sample <= self.vms:
            raise ValueError("--serial-sample must be between 1 and the number of VMs")
        if self.repeats < 1:
            raise ValueError("--repeats must be at least 1")
        if self.time_scale <= 0:
            raise ValueError("--time-scale must be above 0")
        if self.ha_vms < self.hosts or self.refills < 0:
            raise ValueError("need at least one HA VM per host and refills >= 0")


def sim_settings(s: MassRunSettings, *, boot: float = LONG_BOOT_S) -> SimSettings:
    """The simulated cluster of both parts: per-VM cost serial within a call, roomy hosts."""
    return SimSettings.model_validate({
        "time_scale": s.time_scale,
        "hosts": s.hosts,
        "concurrency": SIM_CONCURRENCY,
        "host_clone_slots": 1,
        "host_defaults": {"cores": HOST_CORES, "memory_mb": HOST_MEMORY_MB},
        "template_defaults": {"cpus": TEMPLATE_CPUS, "memory_mb": TEMPLATE_MEMORY_MB},
        "latency": {"create_call": CREATE_CALL_S, "create_per_vm": CREATE_PER_VM_S, "start_call": START_CALL_S,
                    "start_per_vm": START_PER_VM_S, "boot": boot, "destroy": 1.0},
    })


def split(total: int, parts: int) -> list[int]:
    """``total`` in ``parts`` sizes that differ by at most one."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def limit_seconds(vms: int, hosts: int, time_scale: float) -> float:
    """One call per host, every host in parallel: the fullest host's call."""
    return (CREATE_CALL_S + math.ceil(vms / hosts) * CREATE_PER_VM_S) * time_scale
