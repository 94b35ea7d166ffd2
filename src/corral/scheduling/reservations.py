"""Pending reservations: what placements promised to hosts the inventory does not show yet.

A placement reserves its VM's CPU and memory on the chosen host. The reservation holds until
the inventory shows the VM on that host (then the host's reported use includes it), until
the create fails, or until ``timeout`` passes; so a burst of placements never piles onto a
host that still looks empty.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from corral.scheduling.model import Demand, HostLoad, Placement


@dataclass(slots=True)
class Reservation:
    vm: str
    host: str
    demand: Demand
    at: float


class Reservations:
    def __init__(self, timeout: float = 600.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.timeout = timeout
        self.clock = clock
        self._by_vm: dict[str, Reservation] = {}
        self._by_host: dict[str, dict[str, Reservation]] = {}
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
        return list(self._by_host.get(host, {}).values())

    def reserve(self, vm: str, host: str, demand: Demand) -> None:
        """Hold ``demand`` on ``host`` for ``vm`` (replacing an earlier reservation of ``vm``)."""
        if vm in self._by_vm:
            self.release(vm)
        r = Reservation(vm, host, demand, self.clock())
        self._by_vm[vm] = r
        held = self._by_host.get(host)
        if held is None:
            held = self._by_host[host] = {}
        held[vm] = r

    def reserve_many(self, placements: Iterable[Placement]) -> None:
        """Reserve every placement that found a host."""
        by_vm, by_host, now = self._by_vm, self._by_host, self.clock()
        for p in placements:
            host = p.host
            if host is None:
                continue
            vm = p.request.name
            if vm in by_vm:
                self.release(vm)
            r = by_vm[vm] = Reservation(vm, host, p.request.demand, now)
            held = by_host.get(host)
            if held is None:
                held = by_host[host] = {}
            held[vm] = r

    def release(self, vm: str) -> bool:
        r = self._by_vm.pop(vm, None)
        if r is None:
            return False
        on_host = self._by_host.get(r.host)
        if on_host is not None:
            on_host.pop(vm, None)
            if not on_host:
                del self._by_host[r.host]
        return True

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
        for host, held in self._by_host.items():
            load = loads.get(host)
            if load is not None:
                for r in held.values():
                    load.add(r.demand)
