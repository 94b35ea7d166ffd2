"""The pool service: the one door of the pool layer for the API and the command line.

It owns the pool manager with the store and providers the manager runs on, and is started
and stopped as a whole (a control-plane agent that gains or loses the lead will do that).
A stopped service started again builds a fresh manager on the same store and providers:
recovery then takes over whatever the last run left, as after a restart of the process.

Its answers are domain records and the typed views of :mod:`corral.pools.views`; the event
bus's subscription types are reachable here too, for the event stream.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

from corral.domain.events import Event
from corral.domain.models import OndemandRequest, Pool, RequestStatus, TimingKind, Vm
from corral.domain.states import VmState
from corral.inventory import Inventory, MonitorSettings
from corral.inventory.bus import Resync, Subscription, SubscriptionClosed
from corral.pools import views
from corral.pools.checkout import (
    Allocator,
    CheckoutSettings,
    PoolChange,
    PoolEditor,
    RecordOnly,
    Reset,
    SetCloneTarget,
    SetSize,
    SetTemplate,
    Setting,
    Short,
    Taken,
    with_overrides,
)
from corral.pools.destroying import DestroyFailures, DestroyFailureStatus, describe
from corral.pools.manager import PoolManager
from corral.pools.outage import StoreStatus
from corral.pools.settings import ManagerSettings
from corral.pools.sizing import AutosizeView
from corral.pools.views import (
    HostStatus,
    MigrationStatus,
    MonitoringStatus,
    PlacementStatus,
    PoolStatus,
    ProviderStatus,
    RunnerStatus,
    SchedulingStatus,
    Stock,
    StockTotals,
)
from corral.providers.base import Provider
from corral.providers.counting import ProviderCounts, ProviderFailures
from corral.runner import QueueFull
from corral.scheduling import SchedulerSettings
from corral.store.base import Store

Duration = tuple[float, str, float]  # (when, pool, seconds)
TagRecord = tuple[float, str, str, str]  # (when, vm, tag, value)


class Submitted(Enum):
    """What became of an on-demand request."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"  # its id is taken
    REFUSED = "refused"  # the runner has no room for its VMs


class Owners(Protocol):
    """The processes that run the pools, as one that only answers the API sees them. A change
    of stock (a checkout, a return) is announced by the store itself (``RedisStore.waking``);
    a change of a pool's settings through this."""

    def wake(self, pools: Iterable[str]) -> None:
        """Tell the owners of ``pools`` that their settings changed in the store."""


class Elsewhere(Exception):
    """What was asked needs the provider, and the pools run in other processes (a site of
    several processes on Redis)."""


@dataclass(frozen=True, slots=True)
class Submission:
    outcome: Submitted
    reason: str | None = None  # why it was refused


class PoolService:
    """The pools of one corral: checkout, return, VM records, on-demand requests, pool
    settings, status and events, over a pool manager it builds and runs."""

    def __init__(self, pools: Sequence[Pool], providers: Mapping[str, Provider], store: Store,
                 settings: ManagerSettings | None = None, *, monitor: MonitorSettings | None = None,
                 checkout: CheckoutSettings | None = None, clock: Callable[[], float] = time.time,
                 owners: Owners | None = None, counts: ProviderCounts | None = None) -> None:
        self.configured: dict[str, Pool] = {p.name: p for p in pools}
        self.providers = dict(providers)
        self.store = store
        self.settings = settings or ManagerSettings()
        self.monitor = monitor
        self.checkout_settings = checkout or CheckoutSettings()
        self.clock = clock
        # set: this process only answers the API; the pools run in the processes that own them
        # (the manager is built to read the pools and records, never started)
        self.owners = owners
        # the failures and session renewals of the providers, counted by their wrappers
        # (corral.providers.counting; the runtime wraps them): one object per process
        self.counts = counts if counts is not None else ProviderCounts()
        self._running = False
        self._stale = False  # the manager has run and stopped: the next start builds a new one
        self._life = asyncio.Lock()  # one start or stop at a time
        self._build()

    def _build(self) -> None:
        inventory = Inventory(dict(self.providers), self.monitor) if self.monitor is not None else None
        manager = PoolManager(list(self.configured.values()), dict(self.providers), self.store, self.settings,
                              clock=self.clock, inventory=inventory)
        manager.apply_overrides(self.store.pool_overrides())
        self._manager = manager
        self._allocator = Allocator(manager.pools, manager.checkout, self.store.counts, self.checkout_settings,
                                    lifetime_auth_s=self.settings.lifetime_auth_s)
        setters = manager if self.owners is None else RecordOnly(manager.pools)
        self._editor = PoolEditor(manager.pools, self.configured, setters, self.store)
        self._stale = False

    # -- life ------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        return self._running

    async def start(self) -> None:
        """Start the manager (connect, recover, fill); nothing if it runs already."""
        async with self._life:
            if self._running:
                return
            if self._stale:
                self._build()
            if self.owners is None:
                await self._manager.start()
            self._running = True

    async def stop(self) -> None:
        """Stop the manager and close the providers' sessions; the store stays open. Event
        streams of this run end (:class:`SubscriptionClosed`): a new run has a new bus."""
        async with self._life:
            if not self._running:
                return
            self._running = False
            self._stale = True
            if self.owners is None:
                await self._manager.stop()  # which closes the bus: this run's event streams end

    def close(self) -> None:
        """Close the store (after :meth:`stop`)."""
        self.store.close()

    @property
    def manager(self) -> PoolManager:
        """The manager of this run (for tests and benchmarks; the API uses the methods below)."""
        return self._manager

    # -- pools -----------------------------------------------------------------------------------
    @property
    def pools(self) -> Mapping[str, Pool]:
        """The pools as they run now (with changes made at the API)."""
        self._fresh()
        return self._manager.pools

    def _fresh(self) -> None:
        """In a process that only answers the API, take in the pool settings other processes
        stored since (each API process keeps its own copy of the pools)."""
        if self.owners is not None:
            stored = self.store.pool_overrides()
            for pool in self.configured:
                self._editor.sync(pool, stored.get(pool, {}))

    def pool(self, name: str) -> Pool | None:
        return self._manager.pools.get(name)

    def clusters(self, pool: str) -> list[str] | None:
        """The clusters the provider of ``pool`` knows now; None for an unknown pool."""
        live = self._manager.pools.get(pool)
        if live is None:
            return None
        monitor = self._manager.inventory.monitors.get(live.provider)  # none: a provider added by a reload
        return monitor.repo.clusters() if monitor is not None else []

    def change(self, changes: Sequence[PoolChange]) -> int:
        """Store and apply each change of a pool setting; how many changed a value."""
        self._fresh()
        changed = self._editor.apply(changes)
        self._wake(c.pool for c in changes)
        return changed

    def reset_setting(self, pool: str, setting: Setting) -> Reset:
        """Put ``setting`` of ``pool`` back as configured."""
        self._fresh()
        reset = self._editor.reset(pool, setting)
        self._wake((pool,))
        return reset

    def reset_pool(self, pool: str) -> int:
        """Replace the pool's ready and pending VMs; how many are replaced."""
        self._here("a pool reset")
        return self._manager.reset_pool(pool)

    async def reload(self, pools: Sequence[Pool], *, providers: Mapping[str, Provider] | None = None,
                     scheduling: SchedulerSettings | None = None,
                     checkout: CheckoutSettings | None = None) -> None:
        """Run the configuration read again: ``pools`` as configured now (added ones start
        filling, removed ones drain, changed ones apply at once; a setting changed at the API
        keeps its override), ``providers`` replace the endpoints of those names (reconnected
        one by one; an endpoint not named is left alone), ``scheduling`` and ``checkout`` the
        placer's and the checkout's settings."""
        async with self._life:
            for name, provider in (providers or {}).items():
                self.providers[name] = provider
                if self.owners is None and self._running:
                    await self._manager.replace_provider(name, provider)
                else:
                    self._manager.providers[name] = provider
            if scheduling is not None:
                self.settings = dataclasses.replace(self.settings, scheduling=scheduling)
                self._manager.placer.use_settings(scheduling)
            if checkout is not None:
                self.checkout_settings = self._allocator.settings = checkout
            if self.owners is None and not self._running:  # nothing runs: the next start runs it all
                self.configured.clear()
                self.configured.update((p.name, p) for p in pools)
                self._build()
                return
            self._reload_pools(pools)

    def _reload_pools(self, pools: Sequence[Pool]) -> None:
        wanted = {p.name: p for p in pools}
        overrides = self.store.pool_overrides()
        live = self.owners is None
        for name in [n for n in self.configured if n not in wanted]:
            del self.configured[name]
            if live:
                self._manager.remove_pool(name)
            else:
                self._manager.pools.pop(name, None)
        for name, pool in wanted.items():
            known = name in self.configured
            if known and self.configured[name] == pool:
                continue
            self.configured[name] = pool
            running = with_overrides(pool, overrides.get(name, {}))
            if not live:
                self._manager.pools[name] = running
            elif known:
                self._manager.change_pool(running)
            else:
                self._manager.add_pool(running)

    def look_at(self, pool: str, settings: bool = False) -> None:
        """Another process changed ``pool`` in the store (a checkout, a return, or its
        ``settings``): take in its settings as stored (when they changed), destroy the VMs
        returned there, and refill."""
        if pool not in self.configured or self.owners is not None:
            return
        if settings:
            self._editor.sync(pool, self.store.pool_overrides().get(pool, {}))
        self._manager.finish_returns(pool)
        self._manager.pool_changed(pool)

    def _wake(self, pools: Iterable[str]) -> None:
        if self.owners is not None:
            self.owners.wake(pools)

    def _here(self, what: str) -> None:
        if self.owners is not None:
            raise Elsewhere(f"{what} needs the provider, and on a site of several processes sharing Redis "
                            "the API does not hand it to the pool's manager yet; it needs one corral process "
                            "(--role all on the sqlite store)")

    # -- checkout and VMs ------------------------------------------------------------------------
    def unknown_labels(self, labels: Sequence[str]) -> list[str]:
        """The names that are neither a pool nor an alias."""
        return self._allocator.unknown(labels)

    def split(self, label: str, count: int) -> dict[str, int]:
        """Spread ``count`` VMs asked for as ``label`` over its pools (``backend_weight``)."""
        return self._allocator.split(label, count)

    def checkout(self, wanted: Mapping[str, int], *, token: str | None = None,
                 user: str | None = None) -> Taken | Short:
        """Every VM asked for (pool names or aliases), or none. A checkout that finds its pools
        short counts into the demand of the first pool of each name (autosizing)."""
        outcome = self._allocator.checkout(wanted, token=token, user=user)
        if isinstance(outcome, Short) and self.owners is None:
            for label, count in wanted.items():
                if names := self._allocator.candidates(label):
                    self._manager.demand_seen(names[0], count)
        return outcome

    def return_vm(self, name: str) -> bool:
        """Destroy a checked-out VM (here, or by the process that runs its pool); False if it is
        not checked out."""
        return self._manager.return_vm(name, destroy=self.owners is None) is not None

    def retry_destroy(self, name: str) -> bool:
        """Ask again for the destroy of a VM whose destroy failed; False if none failed."""
        if self.owners is not None:
            return False  # the owner of its pool retries it (its sweep)
        return self._manager.retry_destroy(name)

    def destroy_failure(self, name: str) -> DestroyFailureStatus | None:
        """Why the destroy of ``name`` failed and when it is tried again; None if it did not."""
        failure = self._manager.destroys.failures.get(name)
        return None if failure is None else describe(failure, time.monotonic())

    def vm(self, name: str) -> Vm | None:
        return self.store.get_vm(name)

    def checked_out(self) -> list[Vm]:
        return self.store.list_vms(states=(VmState.RUNNING, VmState.MIGRATING))

    def change_vm(self, vm: Vm, *, lifetime_s: float | None = None, tags: Mapping[str, str] | None = None) -> None:
        """Set a VM's lifetime and add ``tags`` (recorded for the tag summary) to its own."""
        fields: dict[str, object] = {}
        if lifetime_s is not None:
            fields["lifetime_s"] = lifetime_s
        if tags is not None:
            fields["tags"] = {**vm.tags, **tags}
            self.store.record_tags(vm.name, dict(tags), time.time())
        if fields:
            self.store.update_vm(vm.name, **fields)

    def add_disk(self, name: str, size_gb: int) -> None:
        self._here("adding a disk")
        self._manager.tasks.add_disk(name, size_gb)

    def snapshot(self, name: str) -> str:
        """Start a snapshot; its name."""
        self._here("a snapshot")
        return self._manager.tasks.snapshot(name)

    def revert(self, name: str, snapshot: str) -> None:
        self._here("a revert")
        self._manager.tasks.revert(name, snapshot)

    # -- on-demand requests ----------------------------------------------------------------------
    def submit(self, request: OndemandRequest) -> Submission:
        self._here("an on-demand request")
        try:
            if self._manager.ondemand.submit(request):
                return Submission(Submitted.ACCEPTED)
        except QueueFull as exc:
            return Submission(Submitted.REFUSED, str(exc))
        return Submission(Submitted.DUPLICATE)

    def request(self, request_id: str) -> OndemandRequest | None:
        return self.store.get_request(request_id)

    def assignments(self, request: OndemandRequest) -> dict[str, list[Vm]]:
        """The request's handed-out VMs by the name they were asked for."""
        return self._manager.ondemand.assignments(request)

    def delete_request(self, request_id: str) -> OndemandRequest | None:
        """Mark a request deleted and destroy its VMs; None if there is no such request."""
        self._here("deleting an on-demand request")
        return self._manager.ondemand.delete(request_id)

    def placement_errors(self) -> Mapping[str, str]:
        """pool -> why its last VM could not be placed."""
        return dict(self._manager.placer.failures)

    def placement_rejections(self) -> Mapping[str, int]:
        """Hosts rejected for VMs no host could take, by the kind of reason (the filter's name)."""
        return dict(sorted(self._manager.placer.rejections.items()))

    # -- status ----------------------------------------------------------------------------------
    def stock(self) -> Stock:
        """Each pool's VMs by state and the totals, from one reading of the store."""
        self._fresh()
        return views.stock(self._manager.pools, self.store.counts(), self._manager.placer.failures)

    @property
    def clones_in_flight(self) -> int:
        return self._manager.clones_in_flight

    def requested(self) -> int:
        """VMs asked for by on-demand requests still pending."""
        return sum(line.count for r in self.store.list_requests((RequestStatus.PENDING,)) for line in r.requested)

    def flush_timings(self) -> None:
        """Store the clone and boot times that are waiting (they are stored in batches)."""
        self._manager.flush_timings()

    def durations(self, task: TimingKind, start: float, end: float) -> list[Duration]:
        """(when, pool, seconds) of ``task`` (clone or boot) between ``start`` and ``end``."""
        return self.store.durations(task, start, end)

    def tag_records(self, start: float, end: float) -> list[TagRecord]:
        return self.store.tag_records(start, end)

    def monitoring(self) -> MonitoringStatus:
        return views.monitoring(self._manager, time.monotonic())

    def store_status(self) -> StoreStatus:
        """The store as the manager's writes find it: available, or unavailable since when (no
        call to the store)."""
        return self._manager.outage.view()

    def scheduling(self) -> SchedulingStatus:
        return views.scheduling(self._manager)

    def runner(self) -> RunnerStatus:
        return views.runner(self._manager)

    def provider_failures(self) -> ProviderFailures:
        """The providers' failed calls (and VMs of bulk calls) by operation and cause, and their
        sessions renewed, since this process started."""
        return self.counts.view()

    def autosizing(self) -> dict[str, AutosizeView]:
        """Each autosized pool's target, why, and its latest changes (in a process that only
        answers the API: the starting sizes, as the owning manager decides)."""
        self._fresh()
        return views.autosizing(self._manager)

    def hosts(self) -> tuple[HostStatus, ...]:
        """Every host of every provider, as the inventory sees it now (none in a process that
        only answers the API)."""
        return views.hosts(self._manager)

    # -- events ----------------------------------------------------------------------------------
    def stream(self, name: str, *, accepts: Callable[[Event], bool] | None = None,
               queue_size: int | None = None, vms: frozenset[str] | None = None) -> Subscription:
        """A subscription to the event bus that the caller reads (and closes) itself; with
        ``vms``, offered only those VMs' events."""
        return self._manager.bus.stream(name, accepts=accepts, queue_size=queue_size, vms=vms)

    @property
    def bus_live(self) -> bool:
        """Whether a stream taken now hears the events of this run (or of the next start, when
        it has not started yet); False after a stop, until a start builds a new manager."""
        return not self._stale

    def events_since(self, seq: int) -> list[tuple[int, Event]] | None:
        """Events after number ``seq`` still kept; None if some are gone already."""
        return self._manager.bus.since(seq)


__all__ = [
    "AutosizeView", "CheckoutSettings", "DestroyFailureStatus", "DestroyFailures", "Duration", "Elsewhere",
    "HostStatus", "MigrationStatus", "MonitoringStatus", "Owners",
    "PlacementStatus", "PoolChange", "PoolService", "PoolStatus", "ProviderFailures", "ProviderStatus", "Reset",
    "Resync", "RunnerStatus",
    "SchedulingStatus", "SetCloneTarget", "SetSize", "SetTemplate", "Setting", "Short", "Stock", "StockTotals",
    "StoreStatus",
    "Submission", "Submitted", "Subscription", "SubscriptionClosed", "TagRecord", "Taken",
]
