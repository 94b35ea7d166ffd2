"""The pool manager on the real simulator and the real sqlite store."""

from __future__ import annotations

import asyncio

from corral.domain.states import VmState
from corral.pools.settings import ManagerSettings
from helpers import eventually, ready_counts, sim_settings


async def test_fills_every_pool_and_vms_exist_at_the_provider(harness, pool_factory):
    await harness.start([pool_factory("a", 4), pool_factory("b", 3), pool_factory("empty", 0)])
    await harness.wait_full()
    ready = harness.store.list_vms(states=[VmState.READY])
    assert sorted(v.pool for v in ready) == ["a"] * 4 + ["b"] * 3
    at_provider = {v.name: v for v in await harness.provider.list_vms()}
    for vm in ready:
        assert vm.name in at_provider, "a ready VM must exist at the provider"
        assert at_provider[vm.name].host == vm.host
        assert vm.ready_at >= vm.cloned_at >= vm.created_at
        assert vm.ip == at_provider[vm.name].ip
    assert "empty" not in ready_counts(harness.store)


async def test_checkout_refills_the_pool(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 3)])
    await harness.wait_full()
    taken = manager.checkout(["a", "a"])
    assert taken is not None and len({v.name for v in taken}) == 2
    assert all(v.state is VmState.RUNNING for v in taken)
    await harness.wait_full()
    running = harness.store.list_vms(pool="a", states=[VmState.RUNNING])
    assert {v.name for v in running} == {v.name for v in taken}


async def test_checkout_is_all_or_nothing(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2), pool_factory("b", 1)],
                                  settings=ManagerSettings(task_limit=10, check_interval=60, feed_timeout=1))
    await harness.wait_full()
    harness.provider.controls.stall("create", 30)  # no refill may sneak in during the test
    assert manager.checkout(["a", "b", "b"]) is None
    assert ready_counts(harness.store) == {"a": 2, "b": 1}
    got = manager.checkout(["a", "b"])
    assert got is not None and [v.pool for v in got] == ["a", "b"]


async def test_return_destroys_the_vm_and_only_running_vms_can_be_returned(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2)])
    await harness.wait_full()
    ready_vm = harness.store.list_vms(states=[VmState.READY])[0]
    assert manager.return_vm(ready_vm.name) is None, "a ready VM is not checked out"
    assert harness.store.get_vm(ready_vm.name).state is VmState.READY
    (vm,) = manager.checkout(["a"])
    assert manager.return_vm(vm.name) is not None
    assert manager.return_vm(vm.name) is None, "returned twice"
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED)
    assert vm.name not in {v.name for v in await harness.provider.list_vms()}


async def test_task_limit_bounds_provider_calls_in_flight(harness, pool_factory):
    # without a bulk call every VM is its own call: task_limit bounds them
    sim = sim_settings(bulk_calls=False, latency={"create_call": 20.0, "create_per_vm": 0.0, "boot": 1.0})
    manager = await harness.start([pool_factory("a", 12), pool_factory("b", 12)], sim=sim,
                                  settings=ManagerSettings(task_limit=3, check_interval=0.05, feed_timeout=1))
    peak = 0
    while sum(ready_counts(harness.store).values()) < 24:
        peak = max(peak, manager.runner.gate.in_flight)
        assert manager.runner.gate.in_flight <= 3
        await asyncio.sleep(0.001)
    assert peak == 3 and manager.runner.gate.peak == 3
    assert harness.provider.calls["create_vms"] == 24


async def test_bulk_calls_send_one_call_per_host(harness, pool_factory):
    sim = sim_settings(hosts=4, latency={"create_call": 50.0, "create_per_vm": 0.0, "boot": 1.0})
    manager = await harness.start([pool_factory("a", 20), pool_factory("b", 20)], sim=sim,
                                  settings=ManagerSettings(task_limit=10, check_interval=60, feed_timeout=1))
    await harness.wait_full()
    calls = [c for c in harness.provider.call_log if c.op == "create"]
    assert sum(len(c.names) for c in calls) == 40
    assert len(calls) == 4, "40 VMs asked for together: one call per host"
    assert sorted(c.host for c in calls) == sorted({c.host for c in calls})
    assert manager.runner.stats.batches == 1


async def test_vm_that_never_boots_times_out_and_is_replaced(harness, pool_factory):
    pool = pool_factory("a", 2, timeout_s=0.2)
    sim = sim_settings(failure_rates={"boot": 1.0})
    await harness.start([pool], sim=sim)
    first = await eventually(lambda: harness.store.list_vms(pool="a", states=[VmState.PENDING]))
    names = {v.name for v in first}
    await eventually(lambda: all(harness.store.get_vm(n).state is VmState.DESTROYED for n in names), timeout=5)
    for name in names:
        vm = harness.store.get_vm(name)
        assert vm.reason and "not ready" in vm.reason
    assert not names & {v.name for v in await harness.provider.list_vms()}, "timed-out VMs are destroyed"
    # and new ones are cloned in their place
    await eventually(lambda: {v.name for v in harness.store.list_vms(pool="a", states=[VmState.PENDING])} - names)


async def test_ready_ttl_recycles_ready_vms(harness, pool_factory):
    await harness.start([pool_factory("a", 2, ready_ttl_s=0.3)])
    await harness.wait_full()
    first = {v.name for v in harness.store.list_vms(states=[VmState.READY])}
    await eventually(lambda: all(harness.store.get_vm(n).state is VmState.DESTROYED for n in first), timeout=5)
    assert harness.store.get_vm(next(iter(first))).reason == "ready_ttl expired"
    await harness.wait_full()


async def test_running_vm_past_its_lifetime_is_destroyed(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1, lifetime_s=0.2)])
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED, timeout=5)
    assert harness.store.get_vm(vm.name).reason == "lifetime expired"


async def test_clone_failures_are_cleaned_up_and_retried(harness, pool_factory):
    sim = sim_settings(failure_rates={"create": 0.5}, seed=7)
    manager = await harness.start([pool_factory("a", 5)], sim=sim)
    await harness.wait_full()
    assert manager.stats.clone_failures > 0
    failed = [v for v in harness.store.list_vms(pool="a") if v.reason and v.state is VmState.DESTROYED]
    assert failed, "failed clones are recorded and destroyed"
    active = {v.name for v in harness.store.list_vms(states=[VmState.READY, VmState.PENDING])}
    assert {v.name for v in await harness.provider.list_vms()} == active


async def test_whole_clone_call_failure_is_rerun_on_another_host(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 3)], sim=sim_settings())
    harness.provider.controls.fail_next("create", 2)
    await harness.wait_full()
    assert manager.runner.stats.reruns >= 2 and manager.stats.clone_failures == 0
    tried: dict[str, list[str]] = {}
    for call in harness.provider.call_log:
        for name in call.names:
            tried.setdefault(name, []).append(call.host)
    rerun = {name: hosts for name, hosts in tried.items() if len(hosts) > 1}
    assert rerun, "the VMs of the failed calls were sent again"
    for name, hosts in rerun.items():
        assert len(set(hosts)) == len(hosts), f"{name} was sent to a host that failed it: {hosts}"
        assert harness.store.get_vm(name).host == hosts[-1]


async def test_orphans_at_the_provider_are_destroyed(harness, pool_factory):
    from corral.providers.sim import SimProvider

    provider = SimProvider("sim", sim_settings())
    await provider.connect()
    host = (await provider.list_hosts())[0].name
    provider.controls.inject_vm("orphan-in-pool", host, "a")
    provider.controls.inject_vm("someone-elses", host, None)
    provider.controls.inject_vm("other-pool-vm", host, "not-configured")
    harness.provider = provider
    from corral.pools.manager import PoolManager

    harness.manager = PoolManager([pool_factory("a", 1)], {"sim": provider}, harness.store,
                                  ManagerSettings(check_interval=0.05, feed_timeout=1))
    await harness.manager.start()
    await eventually(lambda: harness.manager.stats.orphans_destroyed == 1)
    names = {v.name for v in await provider.list_vms()}
    assert "orphan-in-pool" not in names
    assert {"someone-elses", "other-pool-vm"} <= names, "VMs outside corral's pools are left alone"
    assert harness.store.get_vm("orphan-in-pool").state is VmState.DESTROYED


async def test_vm_vanishing_at_the_provider_is_noticed_and_replaced(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2)])
    await harness.wait_full()
    victim = harness.store.list_vms(states=[VmState.READY])[0]
    await harness.provider.destroy_vm(victim.name)  # behind corral's back
    await eventually(lambda: harness.store.get_vm(victim.name).state is VmState.DESTROYED)
    assert manager.stats.vanished == 1
    await harness.wait_full()


async def test_lowering_the_pool_size_removes_the_surplus(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 5)])
    await harness.wait_full()
    manager.set_pool_size("a", 2)
    await eventually(lambda: ready_counts(harness.store).get("a") == 2 and not harness.store.list_vms(
        states=[VmState.COMPLETED, VmState.FAILED]))
    assert len(await harness.provider.list_vms()) == 2


async def test_destroy_failure_is_retried_by_the_sweep(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1)])
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    harness.provider.controls.fail_next("destroy", 2)
    assert manager.return_vm(vm.name)
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED, timeout=5)
    assert vm.name not in {v.name for v in await harness.provider.list_vms()}


async def test_host_down_makes_ready_vms_there_unusable(harness, pool_factory):
    await harness.start([pool_factory("a", 4)])
    await harness.wait_full()
    host = harness.store.list_vms(states=[VmState.READY])[0].host
    harness.provider.controls.set_host_down(host)
    # new clones avoid the down host
    manager = harness.manager
    manager.checkout(["a", "a", "a", "a"])
    await harness.wait_full()
    fresh = harness.store.list_vms(pool="a", states=[VmState.READY])
    assert all(v.host != host for v in fresh)


async def test_a_failing_change_feed_is_retried(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 3)],
                                  settings=ManagerSettings(task_limit=10, check_interval=60, feed_timeout=1))
    harness.provider.controls.fail_next("wait_for_updates", 2)
    await harness.wait_full()  # readiness comes only from the feed here: the sweep is a minute away
    assert manager.inventory["sim"].stats.feed_errors == 2


async def test_periodic_reconcile_finds_orphans_and_spares_vms_being_cloned(harness, pool_factory):
    sim = sim_settings(latency={"create_call": 5.0, "create_per_vm": 5.0, "boot": 20.0})  # 10 ms clones
    manager = await harness.start([pool_factory("a", 10)], sim=sim,
                                  settings=ManagerSettings(task_limit=4, check_interval=60, feed_timeout=1))
    # reconcile over and over while clones are in flight: none of them may be taken for lost
    while sum(ready_counts(harness.store).values()) < 10:
        await manager.reconcile()
        await asyncio.sleep(0.002)
    assert manager.stats.vanished == 0
    assert not harness.store.list_vms(states=[VmState.DESTROYED, VmState.FAILED, VmState.COMPLETED])

    host = harness.store.list_vms(states=[VmState.READY])[0].host
    harness.provider.controls.inject_vm("late-orphan", host, "a")
    await manager.reconcile()
    await eventually(lambda: manager.stats.orphans_destroyed == 1)
    assert "late-orphan" not in {v.name for v in await harness.provider.list_vms()}
    assert ready_counts(harness.store) == {"a": 10}


async def test_clones_that_keep_failing_back_off_instead_of_storming_the_provider(harness, pool_factory):
    sim = sim_settings(strict_templates=True, templates={"tmpl-good": {}})
    manager = await harness.start([pool_factory("bad", 2), pool_factory("good", 2, template="tmpl-good")], sim=sim)
    await eventually(lambda: ready_counts(harness.store).get("good") == 2)
    await asyncio.sleep(1.0)
    failures = manager.stats.clone_failures
    # check_interval is 0.05 s: without back-off a broken pool is retried hundreds of times a second
    assert 2 <= failures <= 40, failures
    assert manager.backing_off("bad") and not manager.backing_off("good")
