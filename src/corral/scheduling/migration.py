"""Migration decisions: at checkout (vmpooler's ``migration_limit``) and by rebalancing.

Both are pure: they read host records and the scheduler's view, and name a target or say
why there is none. Running the migration is the pool manager's business.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace

from corral.domain.models import HostInfo
from corral.scheduling.model import CpuNeed, Demand, HostLoad, Request
from corral.scheduling.scheduler import Scheduler


@dataclass(frozen=True, slots=True)
class Decision:
    """Move the VM to ``target``, or leave it (``target`` None); ``reason`` says why."""

    vm: str
    source: str
    target: str | None
    reason: str


def _utilisation(load: HostLoad) -> float:
    return load.cpu_percent + load.memory_percent


def movable(demand: Demand, source: HostInfo) -> Demand:
    """``demand`` as a VM running on ``source`` has it: it needs a CPU it can move to live."""
    return replace(demand, cpu=CpuNeed.to_stay_on(source, demand.cpu))


def checkout_target(scheduler: Scheduler, hosts: Iterable[HostInfo], vm: str, source: str, demand: Demand,
                    pool_counts: Mapping[str, Mapping[str, int]] | None = None) -> Decision:
    """Where a VM just checked out should run.

    It stays when its host is among the least used hosts it could run on: those whose CPU %
    plus memory % is at or below the average of them all (vmpooler's rule). Otherwise it goes
    to the host the scheduler likes best for it, if that one scores better than its own.
    """
    loads = scheduler.loads(hosts, pool_counts)
    current = loads.get(source)
    if current is None:
        return Decision(vm, source, None, f"host {source} is not up")
    demand = movable(demand, current.info)
    score = scheduler.scorer(demand)
    current.add(demand, -1)  # scored as if it were placed there: the host as it is now
    own_score = score(current)
    current.add(demand)
    own = _utilisation(current)
    utilisations = [own]
    for load in loads.values():
        if load is not current and score(load) is not None:
            load.add(demand)
            utilisations.append(_utilisation(load))
            load.add(demand, -1)
    if len(utilisations) == 1:
        return Decision(vm, source, None, "no other compatible host has room")
    average = sum(utilisations) / len(utilisations)
    if own <= average:
        return Decision(vm, source, None,
                        f"{source} is among the least used hosts ({own:.0f}% CPU+memory, average {average:.0f}%)")
    (placement,) = scheduler.place(loads, [Request(vm, demand, frozenset({source}))], reserve=False)
    target = placement.host
    if target is None:
        return Decision(vm, source, None, placement.why())
    loads[target].add(demand, -1)
    target_score = score(loads[target])
    if own_score is not None and target_score is not None and target_score >= own_score:
        return Decision(vm, source, None, f"{target} would not be better than {source}")
    return Decision(vm, source, target,
                    f"{source} is above the average use ({own:.0f}% against {average:.0f}% CPU+memory)")


class Rebalancer:
    """Moves load off hosts that stay above ``threshold`` percent (CPU or memory) too long.

    :meth:`plan` is called once a cycle. A host counts as over once its reported use has been
    above the threshold for ``sustain`` seconds; per cluster, the busiest such host gives up
    its lightest VM that can move to a host that stays at or below the threshold with it.
    At most one move per cluster per cycle, as oVirt's balancing does.
    """

    def __init__(self, threshold: float = 80.0, sustain: float = 120.0) -> None:
        self.threshold = threshold
        self.sustain = sustain
        self.over_since: dict[str, float] = {}

    def observe(self, hosts: Iterable[HostInfo], now: float) -> list[HostInfo]:
        """Note which hosts are over; return those over for at least ``sustain`` seconds."""
        sustained = []
        seen = set()
        for host in hosts:
            seen.add(host.name)
            if max(host.cpu_percent, host.memory_percent) > self.threshold:
                since = self.over_since.setdefault(host.name, now)
                if now - since >= self.sustain:
                    sustained.append(host)
            else:
                self.over_since.pop(host.name, None)
        for gone in set(self.over_since) - seen:
            del self.over_since[gone]
        return sustained

    def plan(self, scheduler: Scheduler, hosts: list[HostInfo], now: float,
             vms_on: Callable[[str], list[tuple[str, Demand]]]) -> list[Decision]:
        """The moves of this cycle. ``vms_on(host)`` lists the (VM, demand) pairs that may move."""
        over = self.observe(hosts, now)
        if not over:
            return []
        loads = scheduler.loads(hosts)
        by_cluster: dict[str, list[HostInfo]] = {}
        for host in over:
            by_cluster.setdefault(host.cluster, []).append(host)
        moves = []
        for cluster, busy in sorted(by_cluster.items()):
            for source in sorted(busy, key=lambda h: (-max(h.cpu_percent, h.memory_percent), h.name)):
                move = self._lightest_move(scheduler, loads, source, cluster, vms_on(source.name))
                if move is not None:
                    moves.append(move)
                    break
        return moves

    def _lightest_move(self, scheduler: Scheduler, loads: dict[str, HostLoad], source: HostInfo, cluster: str,
                       candidates: list[tuple[str, Demand]]) -> Decision | None:
        for vm, demand in sorted(candidates, key=lambda c: (c[1].memory_mb, c[1].cpus, c[0])):
            need = replace(movable(demand, source), cluster=cluster)
            (placement,) = scheduler.place(loads, [Request(vm, need, frozenset({source.name}))], reserve=False)
            if placement.host is None:
                continue
            target = loads[placement.host]  # place() counted the VM there already
            if max(target.cpu_percent, target.memory_percent) > self.threshold:
                target.add(need, -1)
                continue
            loads[source.name].add(need, -1)
            return Decision(vm, source.name, target.name,
                            f"{source.name} above {self.threshold:g}% for {self.sustain:g}s or more")
        return None
