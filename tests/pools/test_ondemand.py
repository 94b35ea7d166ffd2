"""On-demand requests and run-time pool changes in the pool manager (real simulator and store)."""

from __future__ import annotations

import asyncio
import time

from corral.domain.models import OndemandRequest, RequestedPool, RequestStatus, Vm
from corral.domain.states import VmState
from corral.pools.settings import ManagerSettings
from helpers import eventually, ready_counts


def _request(rid: str, *lines: tuple[str, int], user: str | None = "alice") -> OndemandRequest:
    return OndemandRequest(id=rid, requested=[RequestedPool(p, p, n) for p, n in lines], created_at=time.time(),
                           token="h" * 64 if user else None, user=user)


async def test_a_request_is_built_beside_the_pool_and_handed_to_its_user(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2), pool_factory("b", 0)])
    await harness.wait_full()
    assert manager.ondemand.submit(_request("r1", ("a", 3), ("b", 1)))
    assert not manager.ondemand.submit(_request("r1", ("a", 1))), "ids are unique"
    await eventually(lambda: harness.store.get_request("r1").status == RequestStatus.READY)
    vms = harness.store.request_vms("r1")
    assert sorted(v.pool for v in vms) == ["a", "a", "a", "b"]
    assert all(v.state is VmState.RUNNING and v.user == "alice" and v.checkout_at for v in vms)
    assert ready_counts(harness.store).get("a") == 2, "the pool's own stock is untouched"
    labels = manager.ondemand.assignments(harness.store.get_request("r1"))
    assert {k: len(v) for k, v in labels.items()} == {"a": 3, "b": 1}


async def test_deleting_a_request_destroys_its_vms_even_those_being_cloned(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 0)])
    harness.provider.controls.stall("create", 0.3)
    manager.ondemand.submit(_request("r2", ("a", 2)))
    await eventually(lambda: len(manager.ondemand.inflight) == 2)
    manager.ondemand.delete("r2")
    await eventually(lambda: all(v.state is VmState.DESTROYED for v in
                                 harness.store.list_vms(states=list(VmState)) if v.request_id == "r2")
                     and not harness.store.request_vms("r2"), timeout=10)
    assert harness.store.get_request("r2").status == RequestStatus.DELETED
    assert not [v for v in await harness.provider.list_vms() if v.pool == "a"], "no VM leaks"


async def test_a_request_past_its_ttl_fails_and_its_vms_go(harness, pool_factory):
    settings = ManagerSettings(check_interval=0.05, feed_timeout=1.0, ondemand_ttl_s=0.2)
    manager = await harness.start([pool_factory("a", 0)], settings=settings)
    harness.provider.controls.stall("create", 0.5)
    manager.ondemand.submit(_request("r3", ("a", 1)))
    await eventually(lambda: harness.store.get_request("r3").status == RequestStatus.FAILED)
    await eventually(lambda: not harness.store.request_vms("r3"), timeout=10)
    assert not await harness.provider.list_vms()


async def test_ondemand_clone_limit(harness, pool_factory):
    settings = ManagerSettings(check_interval=0.05, feed_timeout=1.0, ondemand_clone_limit=2)
    manager = await harness.start([pool_factory("a", 0)], settings=settings)
    harness.provider.controls.stall("create", 0.3)
    manager.ondemand.submit(_request("r4", ("a", 5)))
    await eventually(lambda: len(manager.ondemand.inflight) == 2)
    peak = 0
    while harness.store.get_request("r4").status == RequestStatus.PENDING:
        peak = max(peak, len(manager.ondemand.inflight))
        await asyncio.sleep(0.01)
    assert peak <= 2
    assert harness.store.get_request("r4").status == RequestStatus.READY


async def test_a_vm_left_ready_by_a_crash_is_handed_out_by_the_sweep(harness, pool_factory):
    await harness.start([pool_factory("a", 0)])
    request = _request("r5", ("a", 1))
    harness.store.add_request(request)
    # what a crash between "ready" and "handed out" leaves behind: a ready VM of a pending request
    harness.provider.controls.inject_vm("leftover", "sim-host-01", "a")
    harness.store.add_vm(Vm(name="leftover", pool="a", template="tmpl-a", provider="sim", host="sim-host-01",
                            state=VmState.PENDING, created_at=time.time(), request_id="r5"))
    harness.store.transition("leftover", (VmState.PENDING,), VmState.READY, ready_at=time.time())
    await eventually(lambda: harness.store.get_request("r5").status == RequestStatus.READY)
    assert harness.store.get_vm("leftover").state is VmState.RUNNING
    assert len(harness.store.request_vms("r5")) == 1, "nothing more was built"


async def test_template_change_and_reset_replace_the_stock(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 3)])
    await harness.wait_full()
    old = {v.name for v in harness.store.list_vms(pool="a", states=[VmState.READY])}
    (running,) = manager.checkout(["a"])
    await harness.wait_full()
    manager.set_pool_template("a", "tmpl-new")
    await eventually(lambda: {v.template for v in harness.store.list_vms(pool="a", states=[VmState.READY])}
                     == {"tmpl-new"} and ready_counts(harness.store).get("a") == 3, timeout=10)
    assert harness.store.get_vm(running.name).state is VmState.RUNNING, "checked-out VMs are left alone"
    before = {v.name for v in harness.store.list_vms(pool="a", states=[VmState.READY])}
    assert not before & old
    assert manager.reset_pool("a") == 3
    await eventually(lambda: ready_counts(harness.store).get("a") == 3
                     and not {v.name for v in harness.store.list_vms(pool="a", states=[VmState.READY])} & before)
