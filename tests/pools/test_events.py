"""The pool manager driven by inventory events, and the lifecycle events it publishes."""

from __future__ import annotations

import asyncio

from corral.domain.events import Event, HostDown, HostUp, VmLifecycle
from corral.domain.states import VmState
from corral.pools.settings import ManagerSettings
from helpers import QUICK_RUNNER, eventually, ready_counts, sim_settings

QUIET = dict(task_limit=10, check_interval=60, feed_timeout=1, runner=QUICK_RUNNER)  # the sweep never runs: events only


def collect(manager, name: str, kind: type[Event] | tuple[type[Event], ...]) -> list[Event]:
    seen: list[Event] = []

    async def handler(event: Event) -> None:
        seen.append(event)

    manager.bus.subscribe(name, handler, accepts=lambda e: isinstance(e, kind))
    return seen


async def test_readiness_comes_from_the_feed_alone(harness, pool_factory):
    await harness.start([pool_factory("a", 5)], settings=ManagerSettings(**QUIET))
    await harness.wait_full(timeout=5)  # with a 60 s sweep, only VmStateChanged(up) can do this
    assert harness.provider.calls["vm_ready"] == 0


async def test_lifecycle_events_follow_a_vm_from_clone_to_destroy(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1)], settings=ManagerSettings(**QUIET))
    seen = collect(manager, "test", VmLifecycle)
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    assert manager.return_vm(vm.name)
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED)
    await eventually(lambda: any(e.vm == vm.name and e.new is VmState.DESTROYED for e in seen))
    moves = [(e.old, e.new) for e in seen if e.vm == vm.name]
    assert moves == [(None, VmState.PENDING), (VmState.PENDING, VmState.READY), (VmState.READY, VmState.RUNNING),
                     (VmState.RUNNING, VmState.COMPLETED), (VmState.COMPLETED, VmState.DESTROYED)]
    await harness.wait_full()
    replacement = harness.store.list_vms(pool="a", states=[VmState.READY])[0].name
    await eventually(lambda: [(e.old, e.new) for e in seen if e.vm == replacement]
                     == [(None, VmState.PENDING), (VmState.PENDING, VmState.READY)])


async def test_a_guest_powered_off_behind_our_back_is_replaced(harness, pool_factory):
    await harness.start([pool_factory("a", 2)], settings=ManagerSettings(**QUIET))
    await harness.wait_full()
    victim = harness.store.list_vms(states=[VmState.READY])[0]
    await harness.provider.power_off(victim.name)
    await eventually(lambda: harness.store.get_vm(victim.name).state is VmState.DESTROYED)
    await harness.wait_full()
    assert victim.name not in {v.name for v in harness.store.list_vms(states=[VmState.READY])}


async def test_host_down_after_the_grace_drops_its_ready_vms_and_refills_elsewhere(harness, pool_factory):
    settings = ManagerSettings(**QUIET, host_down_grace_s=0.2)
    manager = await harness.start([pool_factory("a", 8)], settings=settings)
    await harness.wait_full()
    downs = collect(manager, "test", (HostDown, HostUp))
    host = harness.store.list_vms(states=[VmState.READY])[0].host
    on_host = {v.name for v in harness.store.list_vms(states=[VmState.READY]) if v.host == host}
    harness.provider.controls.set_host_down(host)
    await asyncio.sleep(0.1)  # within the grace: nothing happens yet
    assert all(harness.store.get_vm(n).state is VmState.READY for n in on_host)
    await eventually(lambda: all(harness.store.get_vm(n).state is VmState.DESTROYED for n in on_host), timeout=5)
    await harness.wait_full()
    assert all(v.host != host for v in harness.store.list_vms(pool="a", states=[VmState.READY]))
    assert [type(e) for e in downs] == [HostDown] and downs[0].host == host
    assert manager.reactions.host_drops == len(on_host)
    harness.provider.controls.set_host_down(host, down=False)
    await eventually(lambda: [type(e) for e in downs] == [HostDown, HostUp])


async def test_a_host_that_flaps_within_the_grace_drops_nothing(harness, pool_factory):
    settings = ManagerSettings(**QUIET, host_down_grace_s=0.5)
    manager = await harness.start([pool_factory("a", 6)], settings=settings)
    await harness.wait_full()
    downs = collect(manager, "test", HostDown)
    host = harness.store.list_vms(states=[VmState.READY])[0].host
    for _ in range(3):
        harness.provider.controls.set_host_down(host)
        await asyncio.sleep(0.1)
        harness.provider.controls.set_host_down(host, down=False)
        await asyncio.sleep(0.1)
    await asyncio.sleep(0.6)
    assert downs == []
    assert manager.reactions.host_drops == 0
    assert ready_counts(harness.store) == {"a": 6}
    assert not harness.store.list_vms(states=[VmState.DESTROYED])


async def test_a_stalled_subscriber_does_not_delay_the_pool_manager(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1)], settings=ManagerSettings(**QUIET))
    never = asyncio.Event()

    async def stalled(event: Event) -> None:
        await never.wait()

    async def failing(event: Event) -> None:
        raise RuntimeError("subscriber bug")

    manager.bus.subscribe("stalled", stalled, queue_size=20)
    manager.bus.subscribe("failing", failing)
    await harness.wait_full()
    for _ in range(5):  # plenty of events: checkouts, returns, clones, boots, destroys
        (vm,) = manager.checkout(["a"])
        manager.return_vm(vm.name)
        await harness.wait_full(timeout=5)
    stats = manager.bus.stats
    assert stats["failing"].errors >= 20
    assert stats["stalled"].overflows >= 1, "the stalled subscriber's queue filled and was told to resync"
    assert stats["pool-manager"].errors == 0


async def test_the_manager_resyncs_after_its_queue_overflowed(harness, pool_factory):
    settings = ManagerSettings(**QUIET)
    manager = await harness.start([pool_factory("a", 4)], settings=settings)
    await harness.wait_full()
    sub = manager.subscription
    assert sub is not None and sub.name == "pool-manager"
    victims = [v.name for v in harness.store.list_vms(states=[VmState.READY])][:2]
    sub.maxsize = 1  # the next burst overflows the manager's queue
    sim = harness.provider
    for name in victims:  # both gone in one step, behind corral's back: one feed answer, two events
        sim.controls.vanish(name)
    await eventually(lambda: manager.bus.stats["pool-manager"].resyncs >= 1)
    sub.maxsize = 10_000
    # the first VmDisappeared was lost to the overflow; the resync found that VM gone anyway
    await eventually(lambda: all(harness.store.get_vm(n).state is VmState.DESTROYED for n in victims))
    await harness.wait_full()


async def test_reconcile_counts_zero_with_a_healthy_feed_and_repairs_drift(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 4)], settings=ManagerSettings(**QUIET))
    await harness.wait_full()
    assert await manager.reconcile() == 0
    assert manager.inventory["sim"].stats.repairs == 0
    # drift: the feed misses a change (its task is stopped while the sim changes)
    await manager.inventory.stop()
    victim = harness.store.list_vms(states=[VmState.READY])[0].name
    await harness.provider.destroy_vm(victim)
    assert manager.inventory["sim"].vm(victim) is not None, "the stopped feed did not see it"
    repaired = await manager.reconcile()
    assert manager.inventory["sim"].stats.last_repairs >= 1  # the VM and its host's figures
    assert manager.inventory["sim"].vm(victim) is None
    assert repaired == 1 and manager.stats.reconcile_repairs == 1
    await eventually(lambda: harness.store.get_vm(victim).state is VmState.DESTROYED)


async def test_a_vm_migrated_by_someone_else_gets_its_new_host_recorded(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1)], settings=ManagerSettings(**QUIET))
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    target = next(h for h in harness.provider.settings.host_settings() if h.name != vm.host).name
    await harness.provider.migrate_vm(vm.name, target)
    await eventually(lambda: harness.store.get_vm(vm.name).host == target)


async def test_the_sweep_still_covers_a_dead_feed(harness, pool_factory):
    sim = sim_settings()
    manager = await harness.start([pool_factory("a", 3)], sim=sim,
                                  settings=ManagerSettings(task_limit=10, check_interval=0.05, feed_timeout=1))
    harness.provider.controls.stall("wait_for_updates", 60)  # the feed hangs from its next call on
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    await harness.wait_full()
    assert harness.store.get_vm(vm.name).state is VmState.RUNNING
