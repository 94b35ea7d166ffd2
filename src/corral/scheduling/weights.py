"""Weights: each scores a host for one VM, as if the VM were already on it; lower is better.

A policy combines weights by factors. A host's score depends only on that host and the VM,
so placing a VM changes the score of the one host it went to. ``monotone`` says the score
never improves as load is added (true for the spreading weights, false for packing); the
scheduler relies on it to re-score lazily. Like a dynamic filter, a weight states its score
as an expression over the load's fields, computed in the same order as ``score`` so both
give the same float.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

from corral.scheduling.model import Demand, HostLoad


class Weight(ABC):
    """One way to score a host for a VM. A weight sets ``name`` and implements ``score``; the
    other members keep these defaults unless it has something to say."""

    name: ClassVar[str]
    #: True when the score never improves as load is added to the host (the scheduler then
    #: re-scores lazily); False is always correct, only slower
    monotone: ClassVar[bool] = False

    @abstractmethod
    def score(self, load: HostLoad, demand: Demand) -> float:
        """The host's score for a VM of ``demand``, as if the VM were on it; lower is better."""

    def expression(self, demand: Demand) -> str | None:
        """``score`` as an expression over the load's fields; None when the weight states none
        (a bulk placement then calls ``score``)."""
        return None


class EvenCpu(Weight):
    """Spread CPU: the host's CPU use with the VM, as a fraction of its capacity."""

    name = "cpu"
    monotone = True

    def score(self, load: HostLoad, demand: Demand) -> float:
        return (load.cpu_used + demand.cpus * load.vcpu_mhz) / load.cpu_cap

    def expression(self, demand: Demand) -> str:
        return f"(cpu_used + {demand.cpus!r} * vcpu_mhz) / cpu_cap"


class EvenMemory(Weight):
    """Spread memory: the host's memory use with the VM, as a fraction of its memory."""

    name = "memory"
    monotone = True

    def score(self, load: HostLoad, demand: Demand) -> float:
        return (load.mem_used + demand.memory_mb) / load.mem_cap

    def expression(self, demand: Demand) -> str:
        return f"(mem_used + {demand.memory_mb!r}) / mem_cap"


class EvenCount(Weight):
    """Spread VMs: the host's VM count with the VM."""

    name = "count"
    monotone = True

    def score(self, load: HostLoad, demand: Demand) -> float:
        return float(load.vm_count + 1)

    def expression(self, demand: Demand) -> str:
        return "float(vm_count + 1)"


class Pack(Weight):
    """Power saving: the busiest host that still passes the filters (mean of CPU and memory use)."""

    name = "pack"
    monotone = False

    def score(self, load: HostLoad, demand: Demand) -> float:
        cpu = (load.cpu_used + demand.cpus * load.vcpu_mhz) / load.cpu_cap
        memory = (load.mem_used + demand.memory_mb) / load.mem_cap
        return -(cpu + memory) / 2

    def expression(self, demand: Demand) -> str:
        return (f"-((cpu_used + {demand.cpus!r} * vcpu_mhz) / cpu_cap"
                f" + (mem_used + {demand.memory_mb!r}) / mem_cap) / 2")


#: Every weight by name: the factors a policy or ``:scheduling: weights`` may name.
WEIGHTS: dict[str, type[Weight]] = {w.name: w for w in (EvenCpu, EvenMemory, EvenCount, Pack)}

#: The factors of each policy by name. "even" is oVirt's default: CPU twice as much as memory.
POLICIES: dict[str, dict[str, float]] = {
    "even": {"cpu": 2.0, "memory": 1.0},
    "pack": {"pack": 1.0},
    "count": {"count": 1.0},
}


def policy_weights(policy: str = "even", factors: dict[str, float] | None = None) -> list[tuple[float, Weight]]:
    """The (factor, weight) pairs of ``policy``, with ``factors`` replacing its factors when given."""
    if policy not in POLICIES:
        raise ValueError(f"unknown placement policy {policy!r} (known: {', '.join(POLICIES)})")
    chosen = factors if factors else POLICIES[policy]
    unknown = sorted(set(chosen) - set(WEIGHTS))
    if unknown:
        raise ValueError(f"unknown weight {', '.join(map(repr, unknown))} (known: {', '.join(WEIGHTS)})")
    return [(factor, WEIGHTS[name]()) for name, factor in sorted(chosen.items()) if factor]
