"""Filters: each decides whether one host may take one VM, and says why not.

A filter's ``check`` returns None when the host passes, or a short reason ("kind: detail").
Static filters look only at the host's record and the VM's demand, so a bulk placement
checks them once per host and kind of VM. Dynamic filters look at the load, which grows
with every placement; adding load never turns a failing host into a passing one. A filter
may say it ``applies`` to some demands only, and a static filter whose answer does not
depend on the demand says ``host_only``, so a bulk placement checks it once per host. A dynamic
filter also states its rule as a Python expression over the load's fields
(:data:`corral.scheduling.model.LOAD_FIELDS`) with the demand's numbers written in, which
the scheduler fuses into one function per kind of VM (see ``scheduler.py``); a test holds
``check`` and ``expression`` to the same answers.
"""

from __future__ import annotations

from typing import ClassVar, Protocol

from corral.domain.models import HostHealth
from corral.scheduling.model import Demand, HostLoad, model_word


class Filter(Protocol):
    name: ClassVar[str]
    dynamic: ClassVar[bool]

    def check(self, load: HostLoad, demand: Demand) -> str | None: ...


class DynamicFilter(Filter, Protocol):
    def expression(self, demand: Demand) -> str:
        """The pass condition of ``check`` as an expression over the load's fields."""


class CpuCompatible:
    """The host's CPU offers what the VM's template needs: vendor, family and flags.

    A host that reports no flags (a vSphere host whose feature capabilities were not read)
    is judged by vmpooler's rule instead: its model word must equal the one asked for.
    """

    name = "cpu"
    dynamic = False

    def applies(self, demand: Demand) -> bool:
        need = demand.cpu
        return bool(need.vendor or need.family is not None or need.flags or need.model)

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        need = demand.cpu
        host = load.info
        if need.vendor and host.cpu_vendor and need.vendor != host.cpu_vendor:
            return f"cpu: vendor {host.cpu_vendor}, needs {need.vendor}"
        if need.family is not None and host.cpu_family is not None and need.family != host.cpu_family:
            return f"cpu: family {host.cpu_family}, needs {need.family}"
        if need.flags:
            if host.cpu_flags:
                missing = need.flags - host.cpu_flags
                if missing:
                    return f"cpu: lacks {','.join(sorted(missing))}"
            elif not need.model:
                return f"cpu: reports no flags, needs {','.join(sorted(need.flags))}"
        if need.model and (not need.flags or not host.cpu_flags):
            word = model_word(host.cpu_model)
            if word != need.model:
                return f"cpu: model {word or '?'} ({host.cpu_model!r}), needs {need.model}"
        return None


class NotInMaintenance:
    name = "maintenance"
    dynamic = False
    host_only = True

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        return "in maintenance" if load.info.maintenance else None


class Healthy:
    """Connected and responding, overall status green, no configuration issues (as vmpooler)."""

    name = "health"
    dynamic = False
    host_only = True

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        host = load.info
        if not host.up:
            return "health: not responding"
        if host.health != HostHealth.GREEN:
            return f"health: status {host.health}"
        if host.config_issues:
            return f"health: {host.config_issues} configuration issue{'s' if host.config_issues > 1 else ''}"
        return None


class InCluster:
    """The pool's ``clone_target`` names the cluster its VMs go to."""

    name = "cluster"
    dynamic = False

    def applies(self, demand: Demand) -> bool:
        return demand.cluster is not None

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        if demand.cluster is not None and load.info.cluster != demand.cluster:
            return f"cluster: in {load.info.cluster or '(none)'}, pool wants {demand.cluster}"
        return None


class MemoryFits:
    """The memory configured for the host's VMs stays within its memory times ``overcommit``."""

    name = "memory"
    dynamic = True

    def __init__(self, overcommit: float = 1.0) -> None:
        self.overcommit = overcommit

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        room = load.mem_cap * self.overcommit - load.mem_alloc
        if demand.memory_mb > room:
            return f"memory: {max(room, 0):.0f} MB free, needs {demand.memory_mb} MB"
        return None

    def expression(self, demand: Demand) -> str:
        return f"not ({demand.memory_mb!r} > mem_cap * {self.overcommit!r} - mem_alloc)"


class UtilizationLimit:
    """CPU and memory use, with the new VM counted, stay at or below ``limit`` percent."""

    name = "utilization"
    dynamic = True

    def __init__(self, limit: float = 90.0) -> None:
        self.limit = limit

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        cpu = 100.0 * (load.cpu_used + demand.cpus * load.vcpu_mhz) / load.cpu_cap
        if cpu > self.limit:
            return f"utilization: CPU would reach {cpu:.1f}% (limit {self.limit:g}%)"
        memory = 100.0 * (load.mem_used + demand.memory_mb) / load.mem_cap
        if memory > self.limit:
            return f"utilization: memory would reach {memory:.1f}% (limit {self.limit:g}%)"
        return None

    def expression(self, demand: Demand) -> str:
        return (f"not (100.0 * (cpu_used + {demand.cpus!r} * vcpu_mhz) / cpu_cap > {self.limit!r}) and "
                f"not (100.0 * (mem_used + {demand.memory_mb!r}) / mem_cap > {self.limit!r})")


class AntiAffinity:
    """A pool with ``max_per_host`` keeps at most that many of its VMs on one host."""

    name = "anti-affinity"
    dynamic = True

    def applies(self, demand: Demand) -> bool:
        return demand.max_per_host is not None

    def check(self, load: HostLoad, demand: Demand) -> str | None:
        limit = demand.max_per_host
        if limit is not None and load.pools.get(demand.pool, 0) >= limit:
            return f"anti-affinity: holds {load.pools.get(demand.pool, 0)} VMs of {demand.pool} (limit {limit})"
        return None

    def expression(self, demand: Demand) -> str:
        return f"not (pools.get({demand.pool!r}, 0) >= {demand.max_per_host!r})"


def default_filters(*, utilization_limit: float = 90.0, memory_overcommit: float = 1.0) -> list[Filter]:
    """Every filter, cheap static ones first."""
    return [NotInMaintenance(), Healthy(), InCluster(), CpuCompatible(),
            MemoryFits(memory_overcommit), UtilizationLimit(utilization_limit), AntiAffinity()]
