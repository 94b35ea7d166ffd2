"""The scheduler: filters and weights over the live hosts, with pending reservations.

:meth:`Scheduler.place` places many VMs in one call. Its result is exactly what the
straightforward greedy gives (:meth:`Scheduler.place_greedy`: one VM at a time, every host
checked by every filter, the lowest score wins, ties go to the host whose name sorts
first), but it does not re-check every host for every VM. VMs that ask the same
(``Demand`` and excluded hosts) share one heap of host scores. A placement changes the load
of one host only, so only that host is scored again; the other heaps learn of the change
when the host reaches their top (its version moved on), which is exact because with
monotone weights a score only worsens as load is added. With a non-monotone weight
(packing) the new score is pushed to every heap at once instead.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from corral.domain.models import HostInfo
from corral.scheduling.filters import Filter, default_filters
from corral.scheduling.kinds import NO_DEMAND, Fused, Kind, Scorer, fuse, host_only
from corral.scheduling.model import NO_ROOM, Demand, HostLoad, Placement, Rejection, Request
from corral.scheduling.reservations import Reservations
from corral.scheduling.weights import Weight, policy_weights


@dataclass(frozen=True, slots=True)
class SchedulerSettings:
    utilization_limit: float = 90.0
    memory_overcommit: float = 1.0
    vcpu_load: float = 0.25
    policy: str = "even"
    weights: Mapping[str, float] | None = None  # factors replacing the policy's
    reservation_timeout: float = 600.0


class Scheduler:
    """Places VMs on hosts. One per provider endpoint; it owns that endpoint's reservations."""

    def __init__(self, settings: SchedulerSettings | None = None, *, filters: Sequence[Filter] | None = None,
                 weights: Sequence[tuple[float, Weight]] | None = None,
                 reservations: Reservations | None = None) -> None:
        self.settings = s = settings or SchedulerSettings()
        self.filters: list[Filter] = list(filters) if filters is not None else default_filters(
            utilization_limit=s.utilization_limit, memory_overcommit=s.memory_overcommit)
        self.weights: list[tuple[float, Weight]] = (
            list(weights) if weights is not None else policy_weights(s.policy, dict(s.weights or {})))
        self.monotone = all(w.monotone for _, w in self.weights)
        self.reservations = reservations if reservations is not None else Reservations(s.reservation_timeout)
        self.placed = 0
        self.failed = 0
        # the fused functions by demand: building them compiles code (about 150 µs), and the
        # same few demands come back on every refill round, checkout and rebalancing cycle
        self._fused: dict[Demand, Fused | None] = {}

    FUSED_CACHE = 1024

    def _new_kind(self, demand: Demand, exclude: frozenset[str] = frozenset()) -> Kind:
        if demand not in self._fused:
            if len(self._fused) >= self.FUSED_CACHE:
                self._fused.clear()
            dynamic = [f for f in self.filters if f.dynamic and f.applies(demand)]
            self._fused[demand] = fuse(dynamic, self.weights, demand)
        return Kind(demand, exclude, self.filters, self.weights, self._fused[demand], fusing=False)

    # -- the host loads ------------------------------------------------------------------
    def loads(self, hosts: Iterable[HostInfo], pool_counts: Mapping[str, Mapping[str, int]] | None = None,
              *, reserved: bool = True) -> dict[str, HostLoad]:
        """Each host's load in name order: reported use, VMs per pool, reservations."""
        vcpu_load = self.settings.vcpu_load
        loads = {h.name: HostLoad(h, i, vcpu_load) for i, h in enumerate(sorted(hosts, key=lambda h: h.name))}
        for pool, per_host in (pool_counts or {}).items():
            for host, count in per_host.items():
                load = loads.get(host)
                if load is not None:
                    load.pools[pool] = count
        if reserved:
            self.reservations.apply(loads)
        return loads

    # -- placement -------------------------------------------------------------------------
    def place(self, hosts: Iterable[HostInfo] | Mapping[str, HostLoad], requests: Sequence[Request], *,
              pool_counts: Mapping[str, Mapping[str, int]] | None = None, reserve: bool = True) -> list[Placement]:
        """Place ``requests`` in order; each placement counts for the ones after it.

        ``hosts`` is the live host list (or loads from :meth:`loads`, which are updated in
        place). With ``reserve`` each placement is also held as a reservation.
        """
        loads = hosts if isinstance(hosts, Mapping) else self.loads(hosts, pool_counts)
        ordered = sorted(loads.values(), key=lambda load: load.index)  # heap entries hold positions
        versions = [0] * len(ordered)
        once = [f for f in self.filters if host_only(f)]
        usable = [(position, load) for position, load in enumerate(ordered)
                  if all(f.check(load, NO_DEMAND) is None for f in once)]
        kinds: dict[tuple[Demand, frozenset[str]], Kind] = {}
        by_identity: dict[tuple[int, int], Kind] = {}  # requests usually share their demand objects
        out: list[Placement] = []
        heappop, heapreplace, heappush = heapq.heappop, heapq.heapreplace, heapq.heappush
        lazy = self.monotone
        append = out.append
        failed = 0
        for request in requests:
            demand = request.demand
            kind = by_identity.get((id(demand), id(request.exclude)))
            if kind is None:
                key = (demand, request.exclude)
                kind = kinds.get(key)
                if kind is None:
                    kind = kinds[key] = self._kind(demand, request.exclude, usable, versions)
                by_identity[(id(demand), id(request.exclude))] = kind
            heap = kind.heap
            while heap:
                _, idx, version = heap[0]
                if version == versions[idx]:
                    break
                if not lazy:
                    heappop(heap)  # the fresh entry was pushed when the host changed
                    continue
                score = kind.score(ordered[idx])
                if score is None:
                    heappop(heap)
                else:
                    heapreplace(heap, (score, idx, versions[idx]))
            if not heap:
                if kind.why is None:
                    kind.why = {load.name: kind.rejection(load) or NO_ROOM for load in ordered}
                append(Placement(request, None, kind.why))
                failed += 1
                continue
            idx = heap[0][1]
            load = ordered[idx]
            versions[idx] += 1
            score = kind.take(load)
            if score is None:
                heappop(heap)
            else:
                heapreplace(heap, (score, idx, versions[idx]))
            if not lazy:
                for other in kinds.values():
                    if other is not kind and other.passes_static(load):
                        other_score = other.score(load)
                        if other_score is not None:
                            heappush(other.heap, (other_score, idx, versions[idx]))
            append(Placement(request, load.name))
        if reserve:
            self.reservations.reserve_many(out)
        self.placed += len(out) - failed
        self.failed += failed
        return out

    def _kind(self, demand: Demand, exclude: frozenset[str], usable: list[tuple[int, HostLoad]],
              versions: list[int]) -> Kind:
        """The kind's heap over the ``usable`` (position, load) pairs: those the host-only filters pass."""
        kind = self._new_kind(demand, exclude)
        heap = kind.heap
        for position, load in usable:
            if kind.passes_static(load):
                score = kind.score(load)
                if score is not None:
                    heap.append((score, position, versions[position]))
        heapq.heapify(heap)
        return kind

    def place_greedy(self, loads: Mapping[str, HostLoad], requests: Sequence[Request]) -> list[str | None]:
        """The straightforward greedy: for each VM, check and score every host; no reservations.

        The reference :meth:`place` must match, and the baseline of the scheduler benchmark.
        ``loads`` is updated in place.
        """
        ordered = sorted(loads.values(), key=lambda load: load.index)
        out: list[str | None] = []
        for request in requests:
            kind = self._new_kind(request.demand, request.exclude)
            best: HostLoad | None = None
            best_score = 0.0
            for load in ordered:
                if kind.rejection(load) is None:
                    score = kind.plain_score(load)
                    assert score is not None
                    if best is None or score < best_score:
                        best, best_score = load, score
            if best is not None:
                best.add(request.demand)
            out.append(best.name if best else None)
        return out

    def scorer(self, demand: Demand) -> Scorer:
        """A function giving a host's score for one VM of ``demand`` (None when a filter rejects it)."""
        kind = self._new_kind(demand)

        def score(load: HostLoad) -> float | None:
            if any(f.check(load, demand) is not None for f in kind.host_only) or not kind.passes_static(load):
                return None
            return kind.score(load)

        return score

    def score(self, load: HostLoad, demand: Demand) -> float | None:
        """One host's score for one VM of ``demand`` (None when a filter rejects it)."""
        return self.scorer(demand)(load)

    def rejection(self, load: HostLoad, demand: Demand) -> Rejection | None:
        return self._new_kind(demand).rejection(load)
