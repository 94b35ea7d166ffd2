"""Filters: each decides whether one host may take one VM, and says why not.

A filter's ``check`` returns None when the host passes, or a :class:`Rejection` (its kind
and details). Static filters look only at the host's record and the VM's demand, so a bulk
placement checks them once per host and kind of VM. Dynamic filters look at the load, which
grows with every placement; adding load never turns a failing host into a passing one. A
filter may say it ``applies`` to some demands only, and a static filter whose answer does
not depend on the demand says ``host_only``, so a bulk placement checks it once per host. A
dynamic filter also states its rule as a Python expression over the load's fields
(:data:`corral.scheduling.model.LOAD_FIELDS`) with the demand's numbers written in, which
the scheduler fuses into one function per kind of VM (see ``kinds.py``); a test holds
``check`` and ``expression`` to the same answers.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from corral.domain.models import HostHealth
from corral.scheduling.model import Demand, HostLoad, Rejection, model_word


class Filter(ABC):
    """One rule a host must pass to take a VM. A filter sets ``name`` and implements ``check``;
    the other members keep these defaults unless it has something to say."""

    name: ClassVar[str]
    #: True when the answer depends on the load, which grows with every placement
    dynamic: ClassVar[bool] = False
    #: True for a static filter whose answer does not depend on the demand
    host_only: ClassVar[bool] = False

    def applies(self, demand: Demand) -> bool:
        """Whether the filter has anything to say about VMs of ``demand``."""
        return True

    @abstractmethod
    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        """None when the host may take a VM of ``demand``, else why not."""

    def expression(self, demand: Demand) -> str | None:
        """The pass condition of ``check`` as an expression over the load's fields; None when
        the filter states none (a bulk placement then calls ``check``)."""
        return None


IN_MAINTENANCE = Rejection("in maintenance")
NOT_RESPONDING = Rejection("health", "not responding")


class CpuCompatible(Filter):
    """The host's CPU offers what the VM's template needs: vendor, family and flags.

    A host that reports no flags (a vSphere host whose feature capabilities were not read)
    is judged by vmpooler's rule instead: its model word must equal the one asked for.
    """

    name = "cpu"

    def applies(self, demand: Demand) -> bool:
        need = demand.cpu
        return bool(need.vendor or need.family is not None or need.flags or need.model)

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        need = demand.cpu
        host = load.info
        if need.vendor and host.cpu_vendor and need.vendor != host.cpu_vendor:
            return Rejection("cpu", f"vendor {host.cpu_vendor}, needs {need.vendor}")
        if need.family is not None and host.cpu_family is not None and need.family != host.cpu_family:
            return Rejection("cpu", f"family {host.cpu_family}, needs {need.family}")
        if need.flags:
            if host.cpu_flags:
                missing = need.flags - host.cpu_flags
                if missing:
                    return Rejection("cpu", f"lacks {','.join(sorted(missing))}")
            elif not need.model:
                return Rejection("cpu", f"reports no flags, needs {','.join(sorted(need.flags))}")
        if need.model and (not need.flags or not host.cpu_flags):
            word = model_word(host.cpu_model)
            if word != need.model:
                return Rejection("cpu", f"model {word or '?'} ({host.cpu_model!r}), needs {need.model}")
        return None


class NotInMaintenance(Filter):
    name = "maintenance"
    host_only = True

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        return IN_MAINTENANCE if load.info.maintenance else None


class Healthy(Filter):
    """Connected and responding, overall status green, no configuration issues (as vmpooler)."""

    name = "health"
    host_only = True

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        host = load.info
        if not host.up:
            return NOT_RESPONDING
        if host.health != HostHealth.GREEN:
            return Rejection("health", f"status {host.health}")
        if host.config_issues:
            issues = host.config_issues
            return Rejection("health", f"{issues} configuration issue{'s' if issues > 1 else ''}")
        return None


class InCluster(Filter):
    """The pool's ``clone_target`` names the cluster its VMs go to."""

    name = "cluster"

    def applies(self, demand: Demand) -> bool:
        return demand.cluster is not None

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        if demand.cluster is not None and load.info.cluster != demand.cluster:
            return Rejection("cluster", f"in {load.info.cluster or '(none)'}, pool wants {demand.cluster}")
        return None


class MemoryFits(Filter):
    """The memory configured for the host's VMs stays within its memory times ``overcommit``."""

    name = "memory"
    dynamic = True

    def __init__(self, overcommit: float = 1.0) -> None:
        self.overcommit = overcommit

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        room = load.mem_cap * self.overcommit - load.mem_alloc
        if demand.memory_mb > room:
            return Rejection("memory", f"{max(room, 0):.0f} MB free, needs {demand.memory_mb} MB")
        return None

    def expression(self, demand: Demand) -> str:
        return f"not ({demand.memory_mb!r} > mem_cap * {self.overcommit!r} - mem_alloc)"


class UtilizationLimit(Filter):
    """CPU and memory use, with the new VM counted, stay at or below ``limit`` percent."""

    name = "utilization"
    dynamic = True

    def __init__(self, limit: float = 90.0) -> None:
        self.limit = limit

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        cpu = 100.0 * (load.cpu_used + demand.cpus * load.vcpu_mhz) / load.cpu_cap
        if cpu > self.limit:
            return Rejection("utilization", f"CPU would reach {cpu:.1f}% (limit {self.limit:g}%)")
        memory = 100.0 * (load.mem_used + demand.memory_mb) / load.mem_cap
        if memory > self.limit:
            return Rejection("utilization", f"memory would reach {memory:.1f}% (limit {self.limit:g}%)")
        return None

    def expression(self, demand: Demand) -> str:
        return (f"not (100.0 * (cpu_used + {demand.cpus!r} * vcpu_mhz) / cpu_cap > {self.limit!r}) and "
                f"not (100.0 * (mem_used + {demand.memory_mb!r}) / mem_cap > {self.limit!r})")


class AntiAffinity(Filter):
    """A pool with ``max_per_host`` keeps at most that many of its VMs on one host."""

    name = "anti-affinity"
    dynamic = True

    def applies(self, demand: Demand) -> bool:
        return demand.max_per_host is not None

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        limit = demand.max_per_host
        held = load.pools.get(demand.pool, 0)
        if limit is not None and held >= limit:
            return Rejection("anti-affinity", f"holds {held} VMs of {demand.pool} (limit {limit})")
        return None

    def expression(self, demand: Demand) -> str:
        return f"not (pools.get({demand.pool!r}, 0) >= {demand.max_per_host!r})"


def default_filters(*, utilization_limit: float = 90.0, memory_overcommit: float = 1.0) -> list[Filter]:
    """Every filter, cheap static ones first."""
    return [NotInMaintenance(), Healthy(), InCluster(), CpuCompatible(),
            MemoryFits(memory_overcommit), UtilizationLimit(utilization_limit), AntiAffinity()]


#: Every filter by name.
FILTERS: dict[str, type[Filter]] = {f.name: type(f) for f in default_filters()}
