"""The baseline of ``corral bench inventory``: the old design, re-polling every host each cycle.

Every ``interval`` seconds a thread pool of ``threads`` workers fetches each host's VM list
and the host's own record, one call per host, compares them with the previous cycle's copy
of that host, and hands the (old, new) pairs that differ to the same
:class:`~corral.inventory.analysers.Analyser` corral uses, whose events go on the same
:class:`~corral.inventory.bus.EventBus`. A cycle that takes longer than ``interval`` is
followed by the next one at once. This is how oVirt's engine watches its hosts (a VM list
per host every ``VdsRefreshRate`` = 3 s) and how vmpooler-style pollers work.

The simulator has no "VMs of one host" call, so :func:`host_lists` groups the simulator's
own VM objects by host once (the VMs do not move during the benchmark); a fetch builds a
fresh :class:`~corral.domain.models.ProviderVm` view of each, as decoding a real answer
would. No network latency is charged per call: against a real endpoint every cycle would
be slower, so the baseline's figures are a lower bound on its cost.
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

from corral.domain.models import HostInfo, ProviderVm
from corral.inventory.analysers import Analyser
from corral.inventory.bus import EventBus
from corral.inventory.repository import Changes
from corral.providers.sim import SimProvider
from corral.providers.sim.world import SimCluster, SimVm

Pairs = list[tuple[ProviderVm | None, ProviderVm | None]]


def host_lists(provider: SimProvider) -> dict[str, list[SimVm]]:
    """The simulator's VMs grouped by host: what a per-host "list my VMs" call would read."""
    cluster: SimCluster = provider.controls.cluster  # the bench's stand-in for one call per host
    lists: dict[str, list[SimVm]] = {name: [] for name in cluster.hosts}
    for vm in cluster.vms.values():
        lists.setdefault(vm.host, []).append(vm)
    return lists


class PollingInventory:
    """The old design; see the module docstring. Start with :meth:`load`, then :meth:`run`."""

    def __init__(self, provider: SimProvider, bus: EventBus, *, threads: int, interval: float) -> None:
        self.provider = provider
        self.bus = bus
        self.interval = interval
        self.analyser = Analyser(provider.name)
        self._cluster: SimCluster = provider.controls.cluster
        self._lists = host_lists(provider)
        self._hosts = list(self._lists)
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="poll")
        self._vms: dict[str, dict[str, ProviderVm]] = {}  # host -> its VMs as last fetched
        self._host_infos: dict[str, HostInfo] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._cycle_started = asyncio.Event()
        self.cycles = 0
        self.cycle_seconds: list[float] = []  # wall time of each cycle
        self.late_cycles = 0  # cycles that started late because the previous one overran
        self.events = 0

    @property
    def vms(self) -> int:
        return sum(len(vms) for vms in self._vms.values())

    @property
    def hosts(self) -> int:
        """Hosts fetched at least once."""
        return len(self._host_infos)

    # -- one host --------------------------------------------------------------------------

    def _poll_host(self, host: str) -> None:
        """In a pool thread: fetch one host, diff it against its last copy, hand on what changed."""
        fetched = [vm.view() for vm in self._lists[host]]
        info = self._cluster.host_info(host)
        before = self._vms.get(host, {})
        pairs: Pairs = []
        now: dict[str, ProviderVm] = {}
        for vm in fetched:
            now[vm.name] = vm
            old = before.get(vm.name)
            if old != vm:
                pairs.append((old, vm))
        pairs.extend((old, None) for name, old in before.items() if name not in now)
        self._vms[host] = now  # only this host's task writes this key
        old_info = self._host_infos.get(host)
        self._host_infos[host] = info
        host_pairs: list[tuple[HostInfo | None, HostInfo | None]] = [(old_info, info)] if old_info != info else []
        if self._loop is not None and (pairs or host_pairs):
            self._loop.call_soon_threadsafe(self._publish, pairs, host_pairs)

    def _publish(self, pairs: Pairs, host_pairs: list[tuple[HostInfo | None, HostInfo | None]]) -> None:
        events = self.analyser.analyse(Changes(vms=pairs, hosts=host_pairs))
        self.events += len(events)
        self.bus.publish_all(events)

    # -- cycles ----------------------------------------------------------------------------

    async def _cycle(self) -> float:
        started = time.perf_counter()
        self.cycles += 1
        self._cycle_started.set()
        self._cycle_started = asyncio.Event()
        loop = asyncio.get_running_loop()
        await asyncio.gather(*[loop.run_in_executor(self._pool, self._poll_host, h) for h in self._hosts])
        seconds = time.perf_counter() - started
        self.cycle_seconds.append(seconds)
        return seconds

    async def load(self) -> float:
        """The first full cycle (state, not change: no VM events); its wall seconds."""
        seconds = await self._cycle()
        changes = Changes(hosts=[(None, info) for info in self._host_infos.values()], full=True)
        self.bus.publish_all(self.analyser.analyse(changes, initial=True))
        return seconds

    async def run(self) -> None:
        """Poll every host every ``interval`` seconds until cancelled."""
        self._loop = asyncio.get_running_loop()
        next_start = time.monotonic() + self.interval
        while True:
            await asyncio.sleep(max(0.0, next_start - time.monotonic()))
            await self._cycle()
            next_start += self.interval
            if next_start < time.monotonic():  # overran: start the next cycle at once
                self.late_cycles += 1
                next_start = time.monotonic()

    async def cycle_start(self) -> None:
        """Return when the next cycle starts."""
        await self._cycle_started.wait()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
