"""The central runner inside the pool manager, on the real simulator and sqlite store:
dispatch order by class, reruns on other hosts up to max_tries, permanent errors,
HA restarts, cancellation and the queue's bound."""

from __future__ import annotations

import asyncio
import dataclasses
from collections import Counter

from corral.domain.states import VmState
from corral.pools.settings import ManagerSettings
from corral.runner import Priority, QueueFull, RunnerSettings
from helpers import QUICK_RUNNER, eventually, ready_counts, sim_settings


def settings(task_limit: int = 10, **runner: object) -> ManagerSettings:
    return ManagerSettings(task_limit=task_limit, check_interval=0.05, feed_timeout=1.0, host_down_grace_s=0,
                           runner=dataclasses.replace(QUICK_RUNNER, **runner))


def tries_by_vm(provider, op: str = "create") -> dict[str, list[str]]:
    """VM -> the hosts it was sent to, in order, from the simulator's call log."""
    tried: dict[str, list[str]] = {}
    for call in provider.call_log:
        if call.op == op:
            for name in call.names:
                tried.setdefault(name, []).append(call.host)
    return tried


async def test_ha_restarts_go_before_reruns_and_reruns_before_refills(harness, pool_factory):
    """Everything queued together while every call slot is busy; then the order of dispatch."""
    sim = sim_settings(hosts=4)
    manager = await harness.start(
        [pool_factory("ha", 8, ha=True), pool_factory("blk", 0), pool_factory("fill", 0)],
        sim=sim, settings=settings(task_limit=2, retry_delay_s=0.0))
    await harness.wait_full()
    held = manager.checkout(["ha"] * 8)
    assert held is not None
    manager.set_pool_size("ha", 0)  # no refill of the HA pool in the way
    sim_ = harness.provider
    # two calls that hold both slots for a while, then fail: their VMs become reruns
    sim_.controls.stall("create", 0.4)
    sim_.controls.fail_next("create", 2)
    manager.set_pool_size("blk", 2)
    await eventually(lambda: manager.runner.gate.in_flight == 2)
    sim_.controls.stall("create", 0)
    sim_.controls.stall("start", 0.05)  # HA restarts take a moment: the second rerun is queued meanwhile
    manager.set_pool_size("fill", 6)
    await eventually(lambda: manager.runner.queue.by_class[Priority.REFILL] == 6)
    dead = held[0].host
    on_dead = {v.name for v in held if v.host == dead}
    sim_.controls.set_host_down(dead)
    await eventually(lambda: manager.runner.queue.by_class[Priority.HA_RESTART] == len(on_dead))
    first = len(manager.runner.log) - 2  # the fill of the HA pool went before
    assert manager.runner.gate.in_flight == 2 and manager.runner.log[first].classes[0] is Priority.REFILL
    blockers = set(manager.runner.log[first].names + manager.runner.log[first + 1].names)
    assert len(blockers) == 2

    await eventually(lambda: ready_counts(harness.store).get("fill", 0) == 6
                     and ready_counts(harness.store).get("blk", 0) == 2)
    await eventually(lambda: manager.creator.ha_restarts == len(on_dead))
    order = [(cls, name) for d in list(manager.runner.log)[first + 2:]
             for cls, name in zip(d.classes, d.names, strict=True)]
    classes = [cls for cls, _ in order]
    assert classes == sorted(classes), f"dispatched out of class order: {[c.label for c in classes]}"
    assert [name for cls, name in order if cls is Priority.HA_RESTART] and set(
        name for cls, name in order if cls is Priority.HA_RESTART) == on_dead
    assert {name for cls, name in order if cls is Priority.RERUN} == blockers
    assert Counter(cls for cls, _ in order)[Priority.REFILL] == 6
    # the simulator saw the calls in the same order
    seen = [name for call in list(sim_.call_log) for name in call.names]
    assert seen[-len(order):] == [name for _, name in order]
    for name in on_dead:
        record = harness.store.get_vm(name)
        assert record.state is VmState.RUNNING and record.host != dead


async def test_a_failing_host_gets_at_most_max_tries_per_vm_and_vms_land_elsewhere(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 0)], sim=sim_settings(hosts=4), settings=settings(max_tries=3))
    provider = harness.provider
    failing = {"sim-host-01", "sim-host-02", "sim-host-03"}
    for host in failing:
        provider.controls.fail_on_host(host)
    manager.set_pool_size("a", 12)
    await harness.wait_full(timeout=20)
    tried = tries_by_vm(provider)
    assert tried
    for name, hosts in tried.items():
        assert len(hosts) <= 3, f"{name} was tried {len(hosts)} times: {hosts}"
        assert len(set(hosts)) == len(hosts), f"{name} was sent back to a host that failed it: {hosts}"
    ready = harness.store.list_vms(pool="a", states=[VmState.READY])
    assert len(ready) == 12 and {v.host for v in ready} == {"sim-host-04"}, "every VM lands on the good host"
    assert any(hosts[0] in failing and hosts[-1] == "sim-host-04" for hosts in tried.values()), "reruns moved VMs"
    gave_up = [name for name, hosts in tried.items() if len(hosts) == 3 and set(hosts) <= failing]
    for name in gave_up:  # three failing hosts in a row: failed for good, with the cause, and destroyed
        record = harness.store.get_vm(name)
        assert record.state in (VmState.FAILED, VmState.DESTROYED)
        assert "simulated failure on host" in record.reason and "gave up after 3 tries" in record.reason
    assert manager.runner.stats.reruns >= 1


async def test_one_failing_host_gets_one_try_per_vm(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 0)], sim=sim_settings(hosts=4), settings=settings())
    harness.provider.controls.fail_on_host("sim-host-02")
    manager.set_pool_size("a", 16)
    await harness.wait_full()
    tried = tries_by_vm(harness.provider)
    on_bad = [hosts for hosts in tried.values() if "sim-host-02" in hosts]
    assert on_bad and all(hosts.count("sim-host-02") == 1 and len(hosts) == 2 for hosts in on_bad)
    assert "sim-host-02" not in {v.host for v in harness.store.list_vms(pool="a", states=[VmState.READY])}
    assert manager.stats.clone_failures == 0


async def test_a_permanent_error_is_not_retried_and_names_its_cause(harness, pool_factory):
    sim = sim_settings(strict_templates=True, templates={"tmpl-good": {"cpus": 1, "memory_mb": 1024}})
    manager = await harness.start([pool_factory("bad", 1), pool_factory("good", 2)], sim=sim, settings=settings())
    await eventually(lambda: ready_counts(harness.store).get("good", 0) == 2)
    failed = await eventually(lambda: [v for v in harness.store.list_vms(pool="bad")
                                       if v.state in (VmState.FAILED, VmState.DESTROYED)])
    assert "template 'tmpl-bad' not found" in failed[0].reason and "gave up" not in failed[0].reason
    assert len(tries_by_vm(harness.provider)[failed[0].name]) == 1, "a permanent error gets one try"
    assert manager.runner.stats.permanent >= 1 and manager.backing_off("bad")


async def test_ha_restart_moves_checked_out_vms_and_leaves_others(harness, pool_factory):
    manager = await harness.start([pool_factory("ha", 8, ha=True), pool_factory("plain", 8)],
                                  sim=sim_settings(hosts=4), settings=settings())
    await harness.wait_full()
    ha_vms = manager.checkout(["ha"] * 4)
    plain_vms = manager.checkout(["plain"] * 4)
    dead = ha_vms[0].host
    ha_on_dead = {v.name for v in ha_vms if v.host == dead}
    plain_on_dead = {v.name for v in plain_vms if v.host == dead}
    ready_on_dead = {v.name for v in harness.store.list_vms(states=[VmState.READY]) if v.host == dead}
    harness.provider.controls.set_host_down(dead)
    await eventually(lambda: manager.creator.ha_restarts == len(ha_on_dead))
    at_provider = {v.name: v for v in await harness.provider.list_vms()}
    for name in ha_on_dead:
        record = harness.store.get_vm(name)
        assert record.state is VmState.RUNNING and record.host not in (dead, None)
        assert at_provider[name].host == record.host
    await eventually(lambda: all(at_provider_ready(harness, n) for n in ha_on_dead))
    for name in plain_on_dead:  # not HA: left to their users where they are
        assert harness.store.get_vm(name).host == dead
    await eventually(lambda: all(harness.store.get_vm(n).state is VmState.DESTROYED for n in ready_on_dead))
    await harness.wait_full()
    assert manager.runner.stats.started == len(ha_on_dead)


def at_provider_ready(harness, name: str) -> bool:
    vm = harness.provider.controls.vm(name)
    return vm is not None and vm.guest_ready


async def test_an_ha_restart_of_a_returned_vm_is_dropped(harness, pool_factory):
    manager = await harness.start([pool_factory("ha", 4, ha=True)], sim=sim_settings(hosts=4),
                                  settings=settings(task_limit=1))
    await harness.wait_full()
    vms = manager.checkout(["ha"] * 4)
    harness.provider.controls.stall("start", 0.3)
    dead = vms[0].host
    harness.provider.controls.set_host_down(dead)
    await eventually(lambda: manager.runner.stats.calls >= 1 and manager.runner.held)
    victim = vms[0].name
    assert manager.return_vm(victim)
    await eventually(lambda: harness.store.get_vm(victim).state is VmState.DESTROYED)
    await asyncio.sleep(0.4)
    assert manager.creator.ha_restarts == 0 or harness.store.get_vm(victim).state is VmState.DESTROYED
    assert victim not in {v.name for v in await harness.provider.list_vms()}


async def test_shrinking_a_pool_drops_its_queued_work(harness, pool_factory):
    manager = await harness.start([pool_factory("blk", 0), pool_factory("a", 0)], sim=sim_settings(hosts=1),
                                  settings=settings(task_limit=1))
    harness.provider.controls.stall("create", 0.3)
    manager.set_pool_size("blk", 1)
    await eventually(lambda: manager.runner.gate.in_flight == 1)
    harness.provider.controls.stall("create", 0)
    manager.set_pool_size("a", 10)
    await eventually(lambda: manager.runner.waiting("a") == 10)
    manager.set_pool_size("a", 2)
    await eventually(lambda: manager.runner.waiting("a") == 2)
    assert manager.runner.stats.cancelled == 8
    await harness.wait_full()
    created = [n for n in tries_by_vm(harness.provider) if harness.store.get_vm(n).pool == "a"]
    assert len(created) == 2, "cancelled work never reaches the provider"


async def test_deleting_an_ondemand_request_drops_its_queued_work(harness, pool_factory):
    from corral.domain.models import OndemandRequest, RequestedPool

    manager = await harness.start([pool_factory("blk", 0), pool_factory("od", 0)], sim=sim_settings(hosts=1),
                                  settings=settings(task_limit=1))
    harness.provider.controls.stall("create", 0.3)
    manager.set_pool_size("blk", 1)
    await eventually(lambda: manager.runner.gate.in_flight == 1)
    harness.provider.controls.stall("create", 0)
    request = OndemandRequest(id="req-1", requested=[RequestedPool("od", "od", 3)], created_at=manager.clock())
    assert manager.ondemand.submit(request)
    await eventually(lambda: manager.runner.waiting_for_request("req-1") == 3)
    manager.ondemand.delete("req-1")
    assert manager.runner.waiting_for_request("req-1") == 0 and not manager.ondemand.inflight
    await harness.wait_full()
    await asyncio.sleep(0.1)
    assert not [v for v in harness.store.list_vms() if v.request_id == "req-1"], "nothing was created for it"


async def test_a_full_queue_refuses_requests_with_a_reason_and_caps_refills(harness, pool_factory):
    from corral.domain.models import OndemandRequest, RequestedPool

    manager = await harness.start([pool_factory("blk", 0), pool_factory("a", 0), pool_factory("od", 0)],
                                  sim=sim_settings(hosts=1), settings=settings(task_limit=1, queue_limit=10))
    harness.provider.controls.stall("create", 0.3)
    manager.set_pool_size("blk", 1)
    await eventually(lambda: manager.runner.gate.in_flight == 1)
    manager.set_pool_size("a", 50)
    await eventually(lambda: manager.runner.waiting("a") == 5)  # refills may take half the queue
    await asyncio.sleep(0.05)
    assert manager.runner.waiting("a") == 5
    too_big = OndemandRequest(id="big", requested=[RequestedPool("od", "od", 6)], created_at=manager.clock())
    try:
        manager.ondemand.submit(too_big)
    except QueueFull as exc:
        assert "asks for 6 VMs" in str(exc) and "room for 5" in str(exc)
    else:
        raise AssertionError("a request beyond the queue's room must be refused")
    assert harness.store.get_request("big") is None, "a refused request leaves nothing behind"
    ok = OndemandRequest(id="fits", requested=[RequestedPool("od", "od", 5)], created_at=manager.clock())
    assert manager.ondemand.submit(ok)
    harness.provider.controls.stall("create", 0)
    await eventually(lambda: harness.store.get_request("fits").status == "ready", timeout=10)


def test_runner_settings_reject_nonsense():
    import pytest

    with pytest.raises(ValueError):
        RunnerSettings(max_tries=0)
    with pytest.raises(ValueError):
        RunnerSettings(refill_share=0)


async def test_a_pool_with_a_higher_priority_goes_first_within_its_class(harness, pool_factory):
    sim = sim_settings(hosts=2, bulk_calls=False)
    manager = await harness.start([pool_factory("blk", 0), pool_factory("lo", 0), pool_factory("hi", 0, priority=5)],
                                  sim=sim, settings=settings(task_limit=1))
    harness.provider.controls.stall("create", 0.3)
    manager.set_pool_size("blk", 1)
    await eventually(lambda: manager.runner.gate.in_flight == 1)
    harness.provider.controls.stall("create", 0)
    manager.set_pool_size("lo", 3)  # asked for first
    await eventually(lambda: manager.runner.waiting("lo") == 3)
    manager.set_pool_size("hi", 3)
    await eventually(lambda: manager.runner.waiting("hi") == 3)
    await harness.wait_full()
    pools = [harness.store.get_vm(d.names[0]).pool for d in manager.runner.log]
    assert pools == ["blk", "hi", "hi", "hi", "lo", "lo", "lo"]
