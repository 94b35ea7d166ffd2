"""The provider monitor and the inventory against the real simulator: feed → repository → events."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio

from corral.domain.events import (
    Event,
    HostDown,
    HostMaintenanceChanged,
    HostOverUtilized,
    HostUp,
    MigrationDone,
    VmCreated,
    VmDisappeared,
    VmMoved,
    VmStateChanged,
)
from corral.domain.models import ProviderVm, VmSpec
from corral.domain.states import PowerState
from corral.inventory import EventBus, Inventory, MonitorSettings, ProviderMonitor
from corral.providers.base import InventoryUpdate
from corral.providers.sim import SimProvider
from helpers import eventually, sim_settings

H1, H2, H3 = "sim-host-01", "sim-host-02", "sim-host-03"
GRACE = 0.2


def slow_boot_sim(name: str = "sim", **settings: Any) -> SimProvider:
    """A fast simulator whose guests take 1000 s to boot: power states change only when a test says."""
    return SimProvider(name, sim_settings(latency={"create_call": 0.5, "create_per_vm": 2.0, "boot": 1e6,
                                                    "destroy": 1.0, "migrate": 1.0, "power": 0.5}, **settings))


@pytest_asyncio.fixture
async def sim() -> AsyncIterator[SimProvider]:
    provider = slow_boot_sim()
    await provider.connect()
    yield provider
    await provider.close()


class Watch:
    """A monitor on its own bus; ``published`` reads every event the bus was given, in order."""

    def __init__(self, provider: SimProvider, **settings: Any) -> None:
        settings.setdefault("feed_timeout", 1.0)
        settings.setdefault("host_down_grace_s", GRACE)
        self.bus = EventBus()
        self.monitor = ProviderMonitor("sim", provider, self.bus, MonitorSettings(**settings))
        self.task: asyncio.Task[None] | None = None

    def run(self) -> None:
        self.task = asyncio.create_task(self.monitor.run())

    async def stop_feed(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    async def stop(self) -> None:
        await self.stop_feed()
        self.monitor.stop()
        await self.bus.close()

    @property
    def published(self) -> list[Event]:
        return [e for _, e in self.bus.since(0) or []]

    def of(self, kind: type[Event], **fields: Any) -> list[Any]:
        return [e for e in self.published if type(e) is kind and all(getattr(e, k) == v for k, v in fields.items())]

    async def next(self, kind: type[Event], timeout: float = 2.0, **fields: Any) -> Any:
        return (await eventually(lambda: self.of(kind, **fields), timeout))[0]


@pytest_asyncio.fixture
async def watch(sim: SimProvider) -> AsyncIterator[Watch]:
    w = Watch(sim)
    yield w
    await w.stop()


async def create(sim: SimProvider, name: str, host: str = H1, pool: str = "pool-a") -> None:
    (result,) = await sim.create_vms(host, [VmSpec(name=name, pool=pool, template="tmpl")])
    assert result.ok


# -- load ------------------------------------------------------------------------------------


async def test_load_fills_the_repository_without_vm_events(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("orphan", H1, None)
    sim.controls.inject_vm("vm-a", H2, "pool-a", guest_ready=False)
    await watch.monitor.load()
    repo = watch.monitor.repo
    assert repo.loaded and sorted(repo.vms) == ["orphan", "vm-a"]
    assert len(repo.hosts) == 4 and repo.clusters() == ["sim-cluster-01"]
    assert [v.name for v in repo.vms_on(H2)] == ["vm-a"] and [v.name for v in repo.vms_in("pool-a")] == ["vm-a"]
    assert watch.monitor.vm("vm-a").power_state is PowerState.BOOTING  # type: ignore[union-attr]
    assert watch.monitor.as_of is not None
    assert watch.published == [] and watch.monitor.stats.events == 0
    assert {h.name for h in watch.monitor.hosts()} == {H1, H2, H3, "sim-host-04"}


# -- the feed --------------------------------------------------------------------------------


async def test_a_created_vm_arrives_as_vm_created_then_its_state_changes(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    watch.run()
    await create(sim, "vm-a", H2)
    created = await watch.next(VmCreated, vm="vm-a")
    assert (created.provider, created.pool, created.host, created.state) == ("sim", "pool-a", H2, PowerState.BOOTING)
    assert watch.monitor.vm("vm-a") is not None
    assert [v.name for v in watch.monitor.repo.vms_on(H2)] == ["vm-a"]

    sim.controls.set_guest_ready("vm-a", True)
    up = await watch.next(VmStateChanged, vm="vm-a", new=PowerState.UP)
    assert up.old is PowerState.BOOTING and watch.monitor.vm("vm-a").power_state is PowerState.UP  # type: ignore[union-attr]

    await sim.power_off("vm-a")
    off = await watch.next(VmStateChanged, vm="vm-a", new=PowerState.OFF)
    assert off.old is PowerState.UP
    assert len(watch.of(VmCreated)) == 1, "a VM is created once"
    assert watch.monitor.stats.answers >= 1 and watch.monitor.stats.events == len(watch.published)


async def test_a_destroyed_vm_is_vm_disappeared(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H3, "pool-b")
    await watch.monitor.load()
    watch.run()
    await sim.destroy_vm("vm-a")
    gone = await watch.next(VmDisappeared, vm="vm-a")
    assert (gone.pool, gone.host) == ("pool-b", H3)
    assert watch.monitor.vm("vm-a") is None and watch.monitor.repo.vms_on(H3) == []
    assert watch.of(VmCreated) == [], "the VM was there before load"


async def test_a_migration_corral_asked_for_is_migration_done(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.monitor.load()
    watch.run()
    watch.monitor.expect_migration("vm-a", H2)
    await sim.migrate_vm("vm-a", H2)
    done = await watch.next(MigrationDone, vm="vm-a")
    assert done.host == H2 and done.seconds >= 0
    moved = watch.of(VmMoved, vm="vm-a")
    assert [(m.old_host, m.host) for m in moved] == [(H1, H2)]
    assert [v.name for v in watch.monitor.repo.vms_on(H2)] == ["vm-a"] and watch.monitor.repo.vms_on(H1) == []


async def test_a_migration_nobody_asked_for_is_only_vm_moved(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.monitor.load()
    watch.run()
    watch.monitor.expect_migration("vm-a", H3)
    await sim.migrate_vm("vm-a", H2)
    await watch.next(VmMoved, vm="vm-a", host=H2)
    assert watch.of(MigrationDone) == []


async def test_maintenance_arrives_as_host_maintenance_changed(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    watch.run()
    sim.controls.set_host_maintenance(H3, True)
    await watch.next(HostMaintenanceChanged, host=H3, maintenance=True)
    sim.controls.set_host_maintenance(H3, False)
    await watch.next(HostMaintenanceChanged, host=H3, maintenance=False)
    assert len(watch.of(HostMaintenanceChanged)) == 2


async def test_a_host_back_before_the_grace_period_is_never_down(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    watch.run()
    sim.controls.set_host_down(H2)
    await eventually(lambda: not watch.monitor.repo.host(H2).up, 2.0)  # type: ignore[union-attr]
    assert H2 not in {h.name for h in watch.monitor.hosts()}, "an unresponsive host takes no VMs"
    sim.controls.set_host_down(H2, False)
    await eventually(lambda: watch.monitor.repo.host(H2).up, 2.0)  # type: ignore[union-attr]
    await asyncio.sleep(GRACE * 1.5)  # past the grace period the host would have had
    assert watch.of(HostDown) == [] and watch.of(HostUp) == []
    assert watch.monitor.analyser.down == set()
    assert H2 in {h.name for h in watch.monitor.hosts()}


async def test_a_host_down_past_the_grace_period_is_host_down_then_host_up(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    watch.run()
    sim.controls.set_host_down(H2)
    down = await watch.next(HostDown, host=H2)
    assert "not responding" in down.reason and down.provider == "sim"
    assert H2 not in {h.name for h in watch.monitor.hosts()}
    assert len(watch.monitor.hosts()) == 3
    sim.controls.set_host_down(H2, False)
    await watch.next(HostUp, host=H2)
    assert H2 in {h.name for h in watch.monitor.hosts()}
    assert len(watch.of(HostDown)) == 1 and len(watch.of(HostUp)) == 1
    assert [type(e) for e in watch.published] == [HostDown, HostUp]


async def test_a_failing_feed_is_retried_and_counted(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    sim.controls.fail_next("wait_for_updates", 2)
    watch.run()
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.next(VmCreated, vm="vm-a", timeout=5.0)  # the retries back off 0.5 s, then 1 s
    assert watch.monitor.stats.feed_errors == 2
    await create(sim, "vm-b")
    await watch.next(VmCreated, vm="vm-b")
    assert watch.monitor.stats.feed_errors == 2


async def test_a_host_filling_up_is_over_utilized_once_per_crossing() -> None:
    # 4 GiB hosts, 1 GiB VMs: each VM is 25 % of the host's memory
    sim = slow_boot_sim(host_defaults={"memory_mb": 4096})
    await sim.connect()
    watch = Watch(sim)
    try:
        await watch.monitor.load()
        watch.run()
        for i in range(3):
            await create(sim, f"vm-{i}")
        await eventually(lambda: watch.monitor.repo.host(H1).vm_count == 3, 2.0)  # type: ignore[union-attr]
        assert watch.of(HostOverUtilized) == [], "75 % is below the limit"
        await create(sim, "vm-3")
        over = await watch.next(HostOverUtilized, host=H1)
        assert over.memory_percent == 100.0
        await sim.destroy_vm("vm-3")  # 75 %: not far enough below the limit to count as a new crossing
        await sim.destroy_vm("vm-2")  # 50 %
        await eventually(lambda: watch.monitor.repo.host(H1).vm_count == 2, 2.0)  # type: ignore[union-attr]
        await create(sim, "vm-4")
        await create(sim, "vm-5")
        await eventually(lambda: len(watch.of(HostOverUtilized)) == 2, 2.0)
        await create(sim, "vm-6", H2)
        await watch.next(VmCreated, vm="vm-6")
        assert len(watch.of(HostOverUtilized, host=H1)) == 2 and watch.of(HostOverUtilized, host=H2) == []
    finally:
        await watch.stop()
        await sim.close()


async def test_a_host_down_at_load_is_declared_down_after_the_grace_period(sim: SimProvider, watch: Watch) -> None:
    sim.controls.set_host_down(H3)
    await watch.monitor.load()
    assert H3 not in {h.name for h in watch.monitor.hosts()}
    assert watch.published == []
    down = await watch.next(HostDown, host=H3)  # no feed answer needed: the grace period has its own timer
    assert "not responding" in down.reason


async def test_a_feed_that_lost_its_place_answers_a_full_snapshot_that_is_diffed(sim: SimProvider,
                                                                                watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.monitor.load()
    watch.monitor.repo.version = 1  # older than anything the simulator's feed can answer
    sim.controls.inject_vm("vm-b", H2, "pool-a")
    watch.run()
    await watch.next(VmCreated, vm="vm-b")
    assert watch.monitor.stats.resnapshots == 1
    assert [(type(e), e.vm) for e in watch.published] == [(VmCreated, "vm-b")], "vm-a did not change"


# -- reconcile -------------------------------------------------------------------------------


async def test_reconcile_finds_nothing_when_the_feed_kept_up(sim: SimProvider, watch: Watch) -> None:
    await watch.monitor.load()
    watch.run()
    await create(sim, "vm-a")
    await watch.next(VmCreated, vm="vm-a")
    await eventually(lambda: watch.monitor.repo.host(H1).vm_count == 1, 2.0)  # type: ignore[union-attr]
    published = len(watch.published)
    assert await watch.monitor.reconcile() == 0
    stats = watch.monitor.stats
    assert (stats.reconciles, stats.repairs, stats.last_repairs) == (1, 0, 0)
    assert len(watch.published) == published


async def test_reconcile_repairs_drift_and_publishes_the_missed_events(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.monitor.load()
    repo = watch.monitor.repo
    real = repo.vm("vm-a")
    # the repository drifts: it loses vm-a and gains a VM the provider never had
    ghost = ProviderVm("ghost", H2, "pool-a")
    repo.apply(InventoryUpdate(version=repo.version or 0, removed_vms=["vm-a"], vms=[ghost]))
    assert await watch.monitor.reconcile() == 2
    assert repo.vm("vm-a") == real and repo.vm("ghost") is None
    assert [type(e) for e in watch.published] == [VmDisappeared, VmCreated]
    assert watch.of(VmCreated)[0].vm == "vm-a" and watch.of(VmDisappeared)[0].vm == "ghost"
    stats = watch.monitor.stats
    assert (stats.reconciles, stats.repairs, stats.last_repairs) == (1, 2, 2)
    assert await watch.monitor.reconcile() == 0
    assert (stats.reconciles, stats.repairs, stats.last_repairs) == (2, 2, 0)


async def test_reconcile_catches_up_with_changes_the_feed_missed(sim: SimProvider, watch: Watch) -> None:
    sim.controls.inject_vm("vm-a", H1, "pool-a")
    await watch.monitor.load()
    watch.run()
    await watch.stop_feed()
    sim.controls.inject_vm("vm-b", H2, "pool-a")  # vm-b, and H2's use
    repaired = await watch.monitor.reconcile()
    assert repaired == 2 and watch.monitor.stats.repairs == 2
    assert watch.monitor.vm("vm-b") is not None
    assert [(type(e), e.vm) for e in watch.published] == [(VmCreated, "vm-b")]


# -- the inventory ---------------------------------------------------------------------------


async def test_the_inventory_loads_runs_publishes_and_stops() -> None:
    sims = {"east": slow_boot_sim("east"), "west": slow_boot_sim("west")}
    for provider in sims.values():
        await provider.connect()
    sims["east"].controls.inject_vm("pre", H1, "pool-a")
    inventory = Inventory(sims, MonitorSettings(feed_timeout=1.0, host_down_grace_s=GRACE))
    assert inventory.bus is not None
    got: list[Event] = []

    async def handler(event: Event) -> None:
        got.append(event)

    inventory.bus.subscribe("test", handler)
    try:
        await inventory.load()
        assert inventory["east"].vm("pre") is not None and inventory["west"].repo.vms == {}
        inventory.run()
        sims["west"].controls.inject_vm("vm-w", H2, "pool-b")
        await create(sims["east"], "vm-e", H3)
        await eventually(lambda: {(e.provider, e.vm) for e in got if isinstance(e, VmCreated)}
                         == {("west", "vm-w"), ("east", "vm-e")}, 2.0)
        assert inventory["west"].vm("vm-w").host == H2  # type: ignore[union-attr]
        assert await inventory.reconcile() == 0

        snap = inventory.snapshot()
        east, west = snap.providers["east"], snap.providers["west"]
        assert (east.vms, east.hosts, east.hosts_down) == (2, 4, ())
        assert (west.vms, west.hosts, west.reconciles) == (1, 4, 1)
        assert east.events >= 1 and west.feed_errors == 0
        assert snap.bus.published == inventory.bus.published
        assert snap.bus.subscribers["test"].delivered == len(got)
    finally:
        await asyncio.wait_for(inventory.stop(), 2.0)
        for provider in sims.values():
            await provider.close()
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith(("feed-", "subscriber-"))]
    seen = len(got)
    inventory.bus.publish(VmCreated(0.0, "east", "late", None, H1))
    await asyncio.sleep(0.01)
    assert len(got) == seen, "the bus is closed after stop"


async def test_the_inventory_reports_a_host_down(sim: SimProvider) -> None:
    inventory = Inventory({"sim": sim}, MonitorSettings(feed_timeout=1.0, host_down_grace_s=GRACE))
    try:
        await inventory.load()
        inventory.run()
        sim.controls.set_host_down(H3)
        await eventually(lambda: inventory.snapshot().providers["sim"].hosts_down == (H3,), 2.0)
        assert H3 not in {h.name for h in inventory["sim"].hosts()}
    finally:
        await inventory.stop()
