"""Fetch → analyse → publish → update, for every provider endpoint.

A :class:`ProviderMonitor` long-polls one provider's change feed, folds each answer into its
:class:`~corral.inventory.repository.Repository`, runs the analysers over what changed and
publishes the resulting events on the bus. One task per endpoint, no thread per host, no
lock: the repository is only changed by its own monitor, on the event loop.

:meth:`ProviderMonitor.reconcile` is the slow safety net: it reads a fresh full snapshot,
diffs it against the repository and counts each record it had to repair. With a healthy
feed that count stays 0; anything else is drift worth looking into, and it is exported.

:class:`Inventory` holds the monitors of every endpoint and the one event bus.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field

from corral.domain.events import Event
from corral.domain.models import HostInfo, ProviderVm
from corral.inventory.analysers import Analyser, AnalyserSettings
from corral.inventory.bus import BusStatus, EventBus
from corral.inventory.repository import Repository
from corral.providers.base import Provider, ProviderError

log = logging.getLogger("corral.inventory")


@dataclass(slots=True)
class MonitorSettings:
    feed_timeout: float = 30.0  # long-poll length of one change-feed call, seconds
    host_down_grace_s: float = 60.0
    over_utilized_percent: float = 80.0
    queue_size: int = 10_000  # events one subscriber may have waiting before it must resync
    history: int = 1_000  # events kept for event-stream clients that reconnect

    def analyser(self) -> AnalyserSettings:
        return AnalyserSettings(host_down_grace_s=self.host_down_grace_s,
                                over_utilized_percent=self.over_utilized_percent)


@dataclass(slots=True)
class MonitorStats:
    answers: int = 0  # feed answers applied (empty ones included)
    changes: int = 0  # records changed by the feed
    events: int = 0  # events published
    feed_errors: int = 0
    resnapshots: int = 0  # full snapshots after the first (the feed lost its place)
    reconciles: int = 0
    reconcile_skips: int = 0  # reconciles skipped: the feed moved on while the snapshot was read
    repairs: int = 0  # records a reconcile found wrong (expected 0)
    last_repairs: int = 0


@dataclass(frozen=True, slots=True)
class FeedStatus:
    """One provider's inventory feed for status: its monitor's counters (:class:`MonitorStats`),
    the records it holds and the hosts it has declared down (field names are the JSON keys)."""

    answers: int
    changes: int
    events: int
    feed_errors: int
    resnapshots: int
    reconciles: int
    reconcile_skips: int
    repairs: int
    last_repairs: int
    vms: int
    hosts: int
    hosts_down: tuple[str, ...]  # sorted
    # seconds the inventory may be behind the provider: every change made before that long ago
    # is in it (the start of the last feed read that was applied); None before the first load
    lag_s: float | None = None


@dataclass(frozen=True, slots=True)
class InventoryStatus:
    """Every provider's feed, and the event bus's counters."""

    providers: Mapping[str, FeedStatus]
    bus: BusStatus


class ProviderMonitor:
    CATCH_UP_S = 0.5  # how long a reconcile waits for the feed to reach its snapshot

    def __init__(self, name: str, provider: Provider, bus: EventBus, settings: MonitorSettings,
                 clock: Callable[[], float] = time.time) -> None:
        self.name = name
        self.provider = provider
        self.bus = bus
        self.settings = settings
        self.clock = clock
        self.repo = Repository(name)
        self.analyser = Analyser(name, settings.analyser(), clock=clock)
        self.stats = MonitorStats()
        self.as_of: float | None = None  # every change made before this (unix s) is in the repository
        self._due: asyncio.TimerHandle | None = None

    async def load(self) -> None:
        """Read the first full snapshot (state, not change: no VM events)."""
        asked = self.clock()
        update = await self.provider.wait_for_updates(None, 0.0)
        changes = self.repo.apply(update)
        self._publish(self.analyser.analyse(changes, initial=True))
        self._arm_due()
        self.as_of = asked
        log.info("inventory loaded", extra={"provider": self.name, "vms": len(self.repo.vms),
                                            "hosts": len(self.repo.hosts)})

    async def run(self) -> None:
        """The feed loop: long-poll, apply, analyse, publish; retried with back-off on errors."""
        backoff = 0.5
        while True:
            try:
                asked = self.clock()
                update = await self.provider.wait_for_updates(self.repo.version, self.settings.feed_timeout)
                backoff = 0.5
                self.stats.answers += 1
                if update.empty:
                    self.repo.version = update.version
                else:
                    if update.full:
                        self.stats.resnapshots += 1
                    changes = self.repo.apply(update)
                    self.stats.changes += len(changes)
                    await self._publish_in_chunks(self.analyser.analyse(changes))
                self._arm_due()  # a host may have fallen silent, with or without an event
                self.as_of = asked
                continue
            except ProviderError as exc:
                self.stats.feed_errors += 1
                log.warning("change feed failed, retrying", extra={"provider": self.name, "error": str(exc),
                                                                   "retry_in": backoff})
            except Exception:  # a bug must not stop the feed for good; reconcile covers meanwhile
                self.stats.feed_errors += 1
                log.exception("change feed handling failed, retrying", extra={"provider": self.name})
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    async def reconcile(self) -> int:
        """Diff a fresh full snapshot against the repository; returns the records repaired."""
        update = await self.provider.wait_for_updates(None, 0.0)
        # The feed may not have delivered everything up to the snapshot yet: give it a moment,
        # or those changes would be counted as drift (a feed still behind after that is stuck,
        # and the snapshot repairs what it missed). A feed that moved past the snapshot is the
        # fresher view: then this round is skipped (counted), the next one tries again.
        deadline = time.monotonic() + self.CATCH_UP_S
        while self.repo.version is not None and self.repo.version < update.version and time.monotonic() < deadline:
            await asyncio.sleep(0.005)
        if self.repo.version is not None and self.repo.version > update.version:
            self.stats.reconcile_skips += 1
            return 0
        changes = self.repo.apply(update)
        repaired = len(changes)
        self.stats.reconciles += 1
        self.stats.last_repairs = repaired
        self.stats.repairs += repaired
        if repaired:
            log.warning("inventory drift repaired", extra={"provider": self.name, "records": repaired})
            self._publish(self.analyser.analyse(changes))
            self._arm_due()
        return repaired

    def expect_migration(self, vm: str, target: str) -> None:
        self.analyser.expect_migration(vm, target)

    PUBLISH_CHUNK = 1_000

    async def _publish_in_chunks(self, events: list[Event]) -> None:
        """Publish a big answer a thousand events at a time, letting subscribers drain in
        between: a burst larger than a subscriber's queue must not force it to resync."""
        for start in range(0, len(events), self.PUBLISH_CHUNK):
            if start:
                await asyncio.sleep(0)
            self._publish(events[start:start + self.PUBLISH_CHUNK])

    def _publish(self, events: list[Event]) -> None:
        self.stats.events += len(events)
        self.bus.publish_all(events)

    def _arm_due(self) -> None:
        """Wake up when the next silent host's grace period ends."""
        if self._due is not None:
            self._due.cancel()
            self._due = None
        delay = self.analyser.next_due_in()
        if delay is not None:
            self._due = asyncio.get_running_loop().call_later(delay + 0.001, self._check_due)

    def _check_due(self) -> None:
        self._due = None
        self._publish(self.analyser.due())
        self._arm_due()

    def stop(self) -> None:
        if self._due is not None:
            self._due.cancel()
            self._due = None

    def status(self) -> FeedStatus:
        """This feed's counters, records and down hosts, as ``/status`` shows them."""
        lag = None if self.as_of is None else round(max(0.0, self.clock() - self.as_of), 3)
        return FeedStatus(**asdict(self.stats), vms=len(self.repo.vms), hosts=len(self.repo.hosts),
                          hosts_down=tuple(sorted(self.analyser.down)), lag_s=lag)

    # -- reads for the layers above ---------------------------------------------------------

    def vm(self, name: str) -> ProviderVm | None:
        return self.repo.vm(name)

    def all_hosts(self) -> list[tuple[HostInfo, bool]]:
        """Every host the feed knows, sorted by name, each with whether the analyser declared
        it down (for the status view; :meth:`hosts` is what placement reads)."""
        down = self.analyser.down
        return [(h, h.name in down) for h in sorted(self.repo.hosts.values(), key=lambda h: h.name)]

    def hosts(self) -> list[HostInfo]:
        """Hosts that can take VMs now (up, not declared down)."""
        down = self.analyser.down
        return [h for h in self.repo.hosts.values() if h.up and h.name not in down]


@dataclass
class Inventory:
    """Every endpoint's monitor and the shared event bus."""

    providers: dict[str, Provider]
    settings: MonitorSettings = field(default_factory=MonitorSettings)
    bus: EventBus | None = None
    monitors: dict[str, ProviderMonitor] = field(init=False)
    _tasks: list[asyncio.Task[None]] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        if self.bus is None:
            self.bus = EventBus(queue_size=self.settings.queue_size, history=self.settings.history,
                                start=time.time_ns() // 1000)
        self.monitors = {name: ProviderMonitor(name, p, self.bus, self.settings) for name, p in self.providers.items()}

    def __getitem__(self, provider: str) -> ProviderMonitor:
        return self.monitors[provider]

    async def load(self) -> None:
        for monitor in self.monitors.values():
            await monitor.load()

    def run(self, names: Iterable[str] | None = None) -> None:
        """Follow the change feeds of ``names`` (every endpoint by default); an endpoint that
        comes up later is started on its own."""
        for name in self.monitors if names is None else names:
            self._tasks.append(asyncio.create_task(self.monitors[name].run(), name=f"feed-{name}"))

    async def replace(self, name: str, provider: Provider) -> None:
        """Follow ``provider`` as endpoint ``name`` from now on (a new session, or a new endpoint):
        the old session's feed is stopped; the new one is loaded and run by its caller."""
        feed = f"feed-{name}"
        old = [task for task in self._tasks if task.get_name() == feed]
        self._tasks = [task for task in self._tasks if task.get_name() != feed]
        for task in old:
            task.cancel()
        for task in old:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if name in self.monitors:
            self.monitors[name].stop()
        self.providers[name] = provider
        assert self.bus is not None
        self.monitors[name] = ProviderMonitor(name, provider, self.bus, self.settings)

    async def reconcile(self) -> int:
        return sum([await m.reconcile() for m in self.monitors.values()])

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        for monitor in self.monitors.values():
            monitor.stop()
        assert self.bus is not None
        await self.bus.close()

    def snapshot(self) -> InventoryStatus:
        assert self.bus is not None
        return InventoryStatus({n: m.status() for n, m in self.monitors.items()}, self.bus.snapshot())
