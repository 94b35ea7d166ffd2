"""Pending reservations: what placements promised to hosts the inventory does not show yet.

A placement reserves its VM's CPU and memory on the chosen host. The reservation holds until
the inventory shows the VM on that host (then the host's reported use includes it), until
the create fails, or until ``timeout`` passes; so a burst of placements never piles onto a
host that still looks empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from corral.scheduling.model import Demand, HostLoad, Placement


class Reservation(NamedTuple):
    vm: str
    host: str
    demand: Demand
    at: float


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

    def settle(self, host_of: Callable[[str], str | None]) -> int:
        """Release the reservations whose VM the inventory shows on its host, and the expired.

        ``host_of(vm)`` is the VM's host in the inventory (None if it is not there).
        Returns how many were released.
        """
        deadline = self.clock() - self.timeout
        done = [r for r in self._by_vm.values() if host_of(r.vm) == r.host or r.at < deadline]
        for r in done:
            if r.at < deadline and host_of(r.vm) != r.host:
                self.expired += 1
            self.release(r.vm)
        return len(done)

    def apply(self, loads: dict[str, HostLoad]) -> None:
        """Add every reservation to the load of its host."""
        for r in self._by_vm.values():
            load = loads.get(r.host)
            if load is not None:
                load.add(r.demand)
