"""What the pool service answers about its state: typed views built from the pool manager's
public state, for the status routes (which turn them into vmpooler's JSON)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.inventory.bus import BusStatus
from corral.inventory.monitor import FeedStatus
from corral.pools.destroying import DestroyFailures
from corral.pools.manager import PoolManager
from corral.pools.migrations import MigrationCounts
from corral.pools.outage import StoreStatus
from corral.pools.sizing import AutosizeView
from corral.runner.runner import RunnerView


@dataclass(frozen=True, slots=True)
class PoolStatus:
    """A configured pool: its live size and aliases, its VMs by state, and why its last VM could
    not be placed (None: it could)."""

    name: str
    size: int
    alias: tuple[str, ...]
    ready: int
    pending: int
    running: int  # checked out (migrating ones included)
    placement_error: str | None


@dataclass(frozen=True, slots=True)
class StockTotals:
    """VMs by state over every pool the store knows (on-demand VMs included)."""

    ready: int
    pending: int
    running: int  # checked out (migrating ones included)
    completed: int  # completed or failed, not yet destroyed


@dataclass(frozen=True, slots=True)
class Stock:
    """One reading of the store's counts: each configured pool, and the totals."""

    pools: tuple[PoolStatus, ...]
    totals: StockTotals


@dataclass(frozen=True, slots=True)
class ProviderStatus:
    """A provider's connection (its last attempt) and its inventory feed's counters."""

    connected: bool
    error: str | None
    attempts: int
    retry_in: float | None
    feed: FeedStatus | None  # the inventory monitor's counters; None before the provider is brought in

    @property
    def repairs(self) -> int:
        return 0 if self.feed is None else self.feed.repairs


@dataclass(frozen=True, slots=True)
class MonitoringStatus:
    reconciles: int
    store_repairs: int
    vanished: int
    orphans_destroyed: int
    host_drops: int
    destroy_failures: DestroyFailures
    providers: Mapping[str, ProviderStatus]
    events: BusStatus  # the event bus's counters
    store: StoreStatus  # the store as the manager's writes find it (outages, steps refused)


@dataclass(frozen=True, slots=True)
class PlacementStatus:
    placed: int
    unplaced: int
    reserved: int
    reservations_expired: int


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    limit: int
    in_flight: int
    counts: MigrationCounts  # migrations queued so far, done, failed, ... (the migration queue's counters)
    cannot_migrate: Mapping[str, str]  # provider -> why it cannot move VMs between hosts


@dataclass(frozen=True, slots=True)
class SchedulingStatus:
    policy: str
    providers: Mapping[str, PlacementStatus]
    placement_errors: Mapping[str, str]
    migrations: MigrationStatus


@dataclass(frozen=True, slots=True)
class RunnerStatus:
    queue: RunnerView  # the runner's own counters (queue, calls, slots, breakers)
    ha_restarts: int
    ha_failures: int


@dataclass(frozen=True, slots=True)
class HostStatus:
    """A host as the inventory sees it: its size, its use, whether placement may use it, and
    the runner's calls to it now in flight (the field names are the JSON keys)."""

    provider: str
    name: str
    cluster: str
    cores: int
    mhz: int
    memory_mb: int
    cpu_used_mhz: float
    memory_used_mb: float
    cpu_percent: float
    memory_percent: float
    up: bool  # connected and responding, as the provider reports it
    down: bool  # declared down by the inventory (after the grace time)
    maintenance: bool
    health: str
    vms: int
    calls_in_flight: int


# -- built from the manager -------------------------------------------------------------------------
def _count(counts: Mapping[str, Mapping[VmState, int]], *states: VmState) -> int:
    return sum(c.get(s, 0) for c in counts.values() for s in states)


def stock(pools: Mapping[str, Pool], counts: Mapping[str, Mapping[VmState, int]],
          placement_errors: Mapping[str, str]) -> Stock:
    rows = []
    for name, pool in pools.items():
        c = counts.get(name, {})
        rows.append(PoolStatus(name=name, size=pool.size, alias=tuple(pool.alias), ready=c.get(VmState.READY, 0),
                               pending=c.get(VmState.PENDING, 0),
                               running=c.get(VmState.RUNNING, 0) + c.get(VmState.MIGRATING, 0),
                               placement_error=placement_errors.get(name)))
    totals = StockTotals(ready=_count(counts, VmState.READY), pending=_count(counts, VmState.PENDING),
                         running=_count(counts, VmState.RUNNING, VmState.MIGRATING),
                         completed=_count(counts, VmState.COMPLETED, VmState.FAILED))
    return Stock(tuple(rows), totals)


def monitoring(manager: PoolManager, now: float) -> MonitoringStatus:
    stats = manager.stats
    inventory = manager.inventory.snapshot()
    providers = {name: ProviderStatus(connected=link.connected, error=link.error, attempts=link.attempts,
                                      retry_in=link.retry_in, feed=inventory.providers.get(name))
                 for name, link in manager.connections.view().items()}
    return MonitoringStatus(reconciles=stats.reconciles, store_repairs=stats.reconcile_repairs,
                            vanished=stats.vanished, orphans_destroyed=stats.orphans_destroyed,
                            host_drops=manager.reactions.host_drops,
                            destroy_failures=manager.destroys.view(now),
                            providers=providers, events=inventory.bus, store=manager.outage.view())


def scheduling(manager: PoolManager) -> SchedulingStatus:
    placer, migrations = manager.placer, manager.migrations
    return SchedulingStatus(
        policy=placer.settings.policy,
        providers={name: PlacementStatus(placed=s.placed, unplaced=s.failed, reserved=placer.reserved(name),
                                         reservations_expired=s.reservations.expired)
                   for name, s in placer.schedulers.items()},
        placement_errors=dict(sorted(placer.failures.items())),
        migrations=MigrationStatus(limit=migrations.limit, in_flight=len(migrations.in_flight),
                                   counts=migrations.stats.counts(), cannot_migrate=migrations.cannot_migrate()))


def runner(manager: PoolManager) -> RunnerStatus:
    creator = manager.creator
    return RunnerStatus(queue=manager.runner.view(), ha_restarts=creator.ha_restarts, ha_failures=creator.ha_failures)


def hosts(manager: PoolManager) -> tuple[HostStatus, ...]:
    calls = manager.runner.calls_by_host()
    rows = []
    for provider, monitor in sorted(manager.inventory.monitors.items()):
        for h, down in monitor.all_hosts():
            rows.append(HostStatus(provider=provider, name=h.name, cluster=h.cluster, cores=h.cores, mhz=h.mhz,
                                   memory_mb=h.memory_mb, cpu_used_mhz=round(h.cpu_used_mhz, 1),
                                   memory_used_mb=round(h.memory_used_mb, 1), cpu_percent=round(h.cpu_percent, 1),
                                   memory_percent=round(h.memory_percent, 1), up=h.up, down=down,
                                   maintenance=h.maintenance, health=str(h.health.value), vms=h.vm_count,
                                   calls_in_flight=calls.get((provider, h.name), 0)))
    return tuple(rows)


def autosizing(manager: PoolManager) -> dict[str, AutosizeView]:
    """Each autosized pool's target and why, by name."""
    out = {}
    for name in manager.pools:
        view = manager.sizing.view(name)
        if view is not None:
            out[name] = view
    return out
