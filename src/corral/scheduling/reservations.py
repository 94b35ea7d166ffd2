"""Pending reservations: what placements promised to hosts the inventory does not show yet.

A placement reserves its VM's CPU and memory on the chosen host. The reservation holds until
the inventory shows the VM on that host (then the host's reported use includes it), until
the create fails, or until ``timeout`` passes; so a burst of placements never piles onto a
host that still looks empty.

Some endpoints report a host's use late: vCenter refreshes a host's CPU use (quickStats)
about every 20 s, and says when it last did (:attr:`HostInfo.stats_at`). A VM that shows up
on such a host is counted by the host view at once in everything but CPU: its VM count, its
configured memory (allocated, and used once powered on, as the view takes the larger of
quickStats and its powered-on VMs' memory), and its pool's count. Its CPU use shows only
after the host's figures change. So from the moment the VM is seen there, its reservation
keeps only its CPU part (counting the rest again would count the VM twice), until the
host's figures have changed since then; the timeout still bounds the whole.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from enum import Enum
from typing import NamedTuple

from corral.scheduling.model import Demand, HostLoad, Placement


class Reservation(NamedTuple):
    vm: str
    host: str
    demand: Demand
    at: float
    # the host's ``stats_at`` when the VM was first seen there; set, only the CPU part is held
    seen: float | None = None


class Step(Enum):
    """What settling does with one reservation."""

    KEEP = "keep"  # hold it as it is
    CPU_ONLY = "cpu_only"  # the VM is on its host; hold its CPU until the host's figures change
    RELEASE = "release"  # the host view counts the VM now (or it left the host)
    EXPIRE = "expire"  # the timeout passed and the VM never showed up


def settle_step(*, on_host: bool, seen: float | None, stats_at: float | None, expired: bool) -> Step:
    """The fate of one reservation.

    ``on_host``: the inventory shows the VM on its reserved host; ``seen``: the reservation's
    :attr:`Reservation.seen`; ``stats_at``: the host's :attr:`HostInfo.stats_at` now (None:
    live figures); ``expired``: ``timeout`` has passed since the placement.
    """
    if expired:
        return Step.RELEASE if on_host or seen is not None else Step.EXPIRE
    if seen is None:
        if not on_host:
            return Step.KEEP
        return Step.RELEASE if stats_at is None else Step.CPU_ONLY
    if not on_host or stats_at != seen:
        return Step.RELEASE
    return Step.KEEP


def _live(host: str) -> float | None:
    return None


class Reservations:
    """The reservations of one endpoint, by VM. Per-host views are built when asked for: a
    bulk placement reserves thousands at once, and ``apply`` reads them all anyway."""

    def __init__(self, timeout: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._by_vm: dict[str, Reservation] = {}
        self.expired = 0  # reservations dropped by the timeout: VMs that never showed up

    def __len__(self) -> int:
        return len(self._by_vm)

    def __contains__(self, vm: str) -> bool:
        return vm in self._by_vm

    def __iter__(self) -> Iterator[Reservation]:
        return iter(list(self._by_vm.values()))

    def get(self, vm: str) -> Reservation | None:
        return self._by_vm.get(vm)

    def on(self, host: str) -> list[Reservation]:
        return [r for r in self._by_vm.values() if r.host == host]

    def reserve(self, vm: str, host: str, demand: Demand) -> None:
        """Hold ``demand`` on ``host`` for ``vm`` (replacing an earlier reservation of ``vm``)."""
        self._by_vm.pop(vm, None)  # a replaced one goes to the end, in reservation order
        self._by_vm[vm] = Reservation(vm, host, demand, self.clock())

    def reserve_many(self, placements: Iterable[Placement]) -> None:
        """Reserve every placement that found a host."""
        by_vm, now = self._by_vm, self.clock()
        for p in placements:
            host = p.host
            if host is not None:
                vm = p.request.name
                if vm in by_vm:
                    del by_vm[vm]
                by_vm[vm] = Reservation(vm, host, p.request.demand, now)

    def release(self, vm: str) -> bool:
        return self._by_vm.pop(vm, None) is not None

    def settle(self, host_of: Callable[[str], str | None],
               stats_at: Callable[[str], float | None] = _live) -> int:
        """Release the reservations the inventory has caught up with, and the expired.

        ``host_of(vm)`` is the VM's host in the inventory (None if it is not there);
        ``stats_at(host)`` is the host's :attr:`HostInfo.stats_at` (None: live figures, the
        default). See :func:`settle_step`. Returns how many were released.
        """
        deadline = self.clock() - self.timeout
        by_vm = self._by_vm
        released = 0
        for r in list(by_vm.values()):
            on_host = host_of(r.vm) == r.host
            if not on_host and r.seen is None and r.at >= deadline:
                continue  # the common case, settle_step's first KEEP, without the call
            stats = stats_at(r.host) if on_host else None
            step = settle_step(on_host=on_host, seen=r.seen, stats_at=stats, expired=r.at < deadline)
            if step is Step.KEEP:
                continue
            if step is Step.CPU_ONLY:
                by_vm[r.vm] = r._replace(seen=stats)
                continue
            if step is Step.EXPIRE:
                self.expired += 1
            del by_vm[r.vm]
            released += 1
        return released

    def apply(self, loads: dict[str, HostLoad]) -> None:
        """Add every reservation to the load of its host (only the CPU of those whose VM is there)."""
        for r in self._by_vm.values():
            load = loads.get(r.host)
            if load is not None:
                if r.seen is None:
                    load.add(r.demand)
                else:
                    load.add_cpu(r.demand)
