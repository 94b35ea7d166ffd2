"""The placements ``corral bench scheduler`` measures corral's scheduler against.

Speed (the same answers as :meth:`Scheduler.place`, found the straightforward way):

- :func:`numpy_greedy`: for each VM, one vectorised scan of every host (numpy): the dynamic
  filters and the score of the "even" policy, the first lowest score wins; the static
  filters are one boolean mask per kind of VM, computed once;
- :func:`plain_greedy`: :meth:`Scheduler.place_greedy` (plain Python, the plug-in filters and
  weights, one VM at a time over every host), in chunks so that progress can be shown.

Quality (other rules, on the same :class:`~corral.scheduling.model.HostLoad` accounting):

- :func:`place_by_count`: the up host with the fewest VMs (vmpooler before its PR #167);
- :func:`place_least_used`: vmpooler's least-used host selection, re-read every ``refresh``
  clones (a model of its ``host_selection_max_age``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from corral.bench.common import Say
from corral.domain.models import HostInfo
from corral.scheduling.model import Demand, HostLoad, Request, model_word
from corral.scheduling.scheduler import Scheduler, SchedulerSettings


def _up(info: HostInfo) -> bool:
    """What the scheduler's host-only filters ask: up, not in maintenance, green, no config issues."""
    return info.up and not info.maintenance and info.health == "green" and not info.config_issues


class _Hosts:
    """The hosts' static facts as arrays, in ``HostLoad.index`` order (hosts in name order)."""

    def __init__(self, ordered: Sequence[HostLoad]) -> None:
        infos = [load.info for load in ordered]
        self.names = [load.name for load in ordered]
        self.usable = np.array([_up(info) for info in infos], dtype=bool)
        self.vendor = np.array([info.cpu_vendor for info in infos], dtype=object)
        self.family = np.array([-1 if info.cpu_family is None else info.cpu_family for info in infos])
        self.has_flags = np.array([bool(info.cpu_flags) for info in infos], dtype=bool)
        self.model = np.array([model_word(info.cpu_model) for info in infos], dtype=object)
        self.cluster = np.array([info.cluster for info in infos], dtype=object)
        self._flags = [info.cpu_flags for info in infos]
        self._flag_masks: dict[str, np.ndarray] = {}

    def flag(self, name: str) -> np.ndarray:
        mask = self._flag_masks.get(name)
        if mask is None:
            mask = self._flag_masks[name] = np.array([name in flags for flags in self._flags], dtype=bool)
        return mask

    def static_mask(self, demand: Demand, exclude: frozenset[str]) -> np.ndarray:
        """The hosts the static filters let this VM go to (the rules of ``corral.scheduling.filters``)."""
        mask = self.usable.copy()
        need = demand.cpu
        if need.vendor:
            mask &= (self.vendor == need.vendor) | (self.vendor == "")
        if need.family is not None:
            mask &= (self.family == need.family) | (self.family == -1)
        if need.flags:
            has_all = np.ones(len(mask), dtype=bool)
            for name in need.flags:
                has_all &= self.flag(name)
            # a host that reports no flags is judged by the model word, or fails without one
            mask &= np.where(self.has_flags, has_all, bool(need.model))
        if need.model:
            model_ok = self.model == need.model
            mask &= model_ok if not need.flags else (self.has_flags | model_ok)
        if demand.cluster is not None:
            mask &= self.cluster == demand.cluster
        for name in exclude:
            if name in self.names:
                mask[self.names.index(name)] = False
        return mask


@dataclass
class _Kind:
    """One kind of VM for the numpy greedy: its static mask and its numbers."""

    static: np.ndarray
    add_cpu: np.ndarray  # cpus * vcpu_mhz of every host: the MHz the VM would add there
    memory: int


def numpy_greedy(loads: Mapping[str, HostLoad], requests: Sequence[Request],
                 settings: SchedulerSettings | None = None) -> list[str | None]:
    """The greedy of :meth:`Scheduler.place_greedy`, one vectorised scan of all hosts per VM.

    Written for the default filters and the "even" policy (CPU × 2 + memory × 1); the
    arithmetic is in the order of the scheduler's fused score, so the floats are the same.
    ``loads`` (from :meth:`Scheduler.loads`) give the starting numbers; they are not changed.
    """
    s = settings or SchedulerSettings()
    if s.policy != "even" or s.weights:
        raise ValueError("the numpy greedy implements the 'even' policy with its own factors only")
    if any(r.demand.max_per_host is not None for r in requests):
        raise ValueError("the numpy greedy does not implement anti-affinity (max_per_host)")
    ordered = sorted(loads.values(), key=lambda load: load.index)
    hosts = _Hosts(ordered)
    cpu_used = np.array([load.cpu_used for load in ordered], dtype=np.float64)
    cpu_cap = np.array([load.cpu_cap for load in ordered], dtype=np.float64)
    vcpu_mhz = np.array([load.vcpu_mhz for load in ordered], dtype=np.float64)
    mem_used = np.array([load.mem_used for load in ordered], dtype=np.float64)
    mem_alloc = np.array([load.mem_alloc for load in ordered], dtype=np.float64)
    mem_cap = np.array([load.mem_cap for load in ordered], dtype=np.float64)
    mem_room = mem_cap * s.memory_overcommit  # the MemoryFits filter: mem_cap * overcommit - mem_alloc
    limit = s.utilization_limit
    inf = np.inf
    kinds: dict[tuple[int, int], _Kind] = {}
    names = hosts.names
    out: list[str | None] = []
    for request in requests:
        demand = request.demand
        key = (id(demand), id(request.exclude))
        kind = kinds.get(key)
        if kind is None:
            kind = kinds[key] = _Kind(hosts.static_mask(demand, request.exclude), demand.cpus * vcpu_mhz,
                                      demand.memory_mb)
        mem = kind.memory
        cpu_new = cpu_used + kind.add_cpu
        mem_new = mem_used + mem
        ok = kind.static & ~(mem > mem_room - mem_alloc)
        ok &= ~(100.0 * cpu_new / cpu_cap > limit)
        ok &= ~(100.0 * mem_new / mem_cap > limit)
        score = (0.0 + 2.0 * (cpu_new / cpu_cap)) + 1.0 * (mem_new / mem_cap)
        best = int(np.where(ok, score, inf).argmin())  # the first lowest: hosts are in name order
        if not ok[best]:
            out.append(None)
            continue
        cpu_used[best] += kind.add_cpu[best]
        mem_used[best] += mem
        mem_alloc[best] += mem
        out.append(names[best])
    return out


def plain_greedy(scheduler: Scheduler, loads: Mapping[str, HostLoad], requests: Sequence[Request],
                 say: Say | None = None, chunk: int = 50) -> list[str | None]:
    """:meth:`Scheduler.place_greedy` over ``requests``, ``chunk`` at a time (the same answers:
    the loads carry over), saying how far it got after each chunk."""
    out: list[str | None] = []
    for start in range(0, len(requests), chunk):
        out += scheduler.place_greedy(loads, requests[start:start + chunk])
        if say is not None:
            say(f"  plain greedy: {len(out):,} / {len(requests):,} VMs")
    return out


# -- quality -------------------------------------------------------------------------------


def place_by_count(loads: Mapping[str, HostLoad], requests: Sequence[Request]) -> list[str | None]:
    """Each VM to the up host with the fewest VMs (ties: the name that sorts first).

    vmpooler before its PR #167: no look at CPU or memory, so nothing stops a host from
    going over the limit. ``loads`` are updated in place.
    """
    hosts = sorted((load for load in loads.values() if load.info.up and not load.info.maintenance),
                   key=lambda load: load.index)
    out: list[str | None] = []
    for request in requests:
        if not hosts:
            out.append(None)
            continue
        best = min(hosts, key=lambda load: (load.vm_count, load.index))
        best.add(request.demand)
        out.append(best.name)
    return out


def least_used_targets(loads: Mapping[str, HostLoad], limit: float) -> list[HostLoad]:
    """vmpooler's least-used hosts: of the candidates (not in maintenance, green, no config
    issues, CPU and memory use at or below ``limit`` %), those whose utilisation (CPU % +
    memory %) is at or below the candidates' average, least used first."""
    candidates = []
    for load in sorted(loads.values(), key=lambda load: load.index):
        cpu, memory = load.cpu_percent, load.memory_percent
        if _up(load.info) and cpu <= limit and memory <= limit:
            candidates.append((cpu + memory, load.index, load))
    if not candidates:
        return []
    average = sum(c[0] for c in candidates) / len(candidates)
    return [c[2] for c in sorted(candidates, key=lambda c: (c[0], c[1])) if c[0] <= average]


def place_least_used(loads: Mapping[str, HostLoad], requests: Sequence[Request], *, limit: float = 90.0,
                     refresh: int = 20) -> list[str | None]:
    """vmpooler's selection: clones take the least-used hosts round-robin; the list is worked
    out again (from the loads as they are then, VMs placed so far included) every ``refresh``
    clones, as vmpooler re-selects hosts once its list is ``host_selection_max_age`` old. No
    check that the VM fits. ``loads`` are updated in place."""
    out: list[str | None] = []
    targets: list[HostLoad] = []
    turn = 0
    for i, request in enumerate(requests):
        if i % refresh == 0:
            targets, turn = least_used_targets(loads, limit), 0
        if not targets:
            out.append(None)
            continue
        load = targets[turn % len(targets)]
        turn += 1
        load.add(request.demand)
        out.append(load.name)
    return out
