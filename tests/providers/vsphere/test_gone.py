"""A VM deleted from vCenter behind corral's back is gone for corral too: VmNotFound, at once.

The deletion is made through a second pyvmomi session (the vcsim fixture's observer), as an
administrator would make it in the vSphere client.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
import pytest_asyncio
from pyVmomi import vim

from corral.bench.vcsim import Vcsim, wait_task
from corral.domain.models import Pool, VmSpec
from corral.domain.states import VmState
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.base import VmNotFound
from corral.providers.vsphere import VsphereProvider
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.objects import Obj
from corral.store.sqlite import SqliteStore
from helpers import QUICK_RUNNER, eventually

from .conftest import TEMPLATE, Listener, make_provider, pool


def delete_behind_corrals_back(sim: Vcsim, name: str) -> None:
    """Power off and delete ``name`` through the observer's session (not corral's)."""
    vm = sim.vm(name)
    assert vm is not None, name
    if vm.runtime.powerState == "poweredOn":
        wait_task(vm.PowerOffVM_Task())
    wait_task(vm.Destroy_Task())


async def delete_and_see_it_leave(sim: Vcsim, provider: VsphereProvider, name: str) -> None:
    """Delete ``name`` behind corral's back and wait until the feed reports it gone.

    The power-off is let through the feed first: vcsim's WaitForUpdatesEx fails (a panic in
    its filter) when one answer would hold changes of a VM and the VM's removal, and the feed
    would then see the removal in a fresh snapshot instead of as a "leave" update.
    """
    vm = await asyncio.to_thread(sim.vm, name)
    await asyncio.to_thread(lambda: wait_task(vm.PowerOffVM_Task()))
    await eventually(lambda: (seen := provider.cache.vm(name)) is None or not seen.powered_on)
    await asyncio.to_thread(lambda: wait_task(vm.Destroy_Task()))
    await eventually(lambda: name not in provider.cache.vm_ids)


def operations(provider: VsphereProvider, name: str) -> dict[str, Callable[[], Awaitable[None]]]:
    """Every call on one VM, each of which must answer VmNotFound once the VM is gone."""
    return {
        "destroy_vm": lambda: provider.destroy_vm(name),
        "power_on": lambda: provider.power_on(name),
        "power_off": lambda: provider.power_off(name),
        "migrate_vm": lambda: provider.migrate_vm(name, "DC0_C0_H2"),
        "add_disk": lambda: provider.add_disk(name, 1),
        "create_snapshot": lambda: provider.create_snapshot(name, "s"),
        "revert_snapshot": lambda: provider.revert_snapshot(name, "base"),
    }


async def clone(provider: VsphereProvider, name: str) -> None:
    [result] = await provider.create_vms("DC0_C0_H0", [VmSpec(name=name, pool="p", template=TEMPLATE)])
    assert result.ok, result
    await eventually(lambda: provider.cache.vm(name) is not None)  # the feed reports it


async def test_a_vm_deleted_behind_corrals_back_is_not_found_by_any_call(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        await clone(provider, "g1")
        # the feed lags behind the deletion: stopped here, it still shows the VM, so every
        # call goes to vCenter with the VM's reference and meets ManagedObjectNotFound
        await provider.feed.stop()
        await asyncio.to_thread(delete_behind_corrals_back, vcsim, "g1")
        for operation, call in operations(provider, "g1").items():
            started = time.monotonic()
            with pytest.raises(VmNotFound) as caught:
                await call()
            assert caught.value.name == "g1", operation
            assert time.monotonic() - started < 1.0, operation
    finally:
        await provider.close()


async def test_a_vm_the_feed_saw_leave_is_not_found_without_asking_vcenter(vcsim: Vcsim, listener: Listener) -> None:
    provider = make_provider(vcsim, listener, pools={"p": pool("p")})
    await provider.connect()
    try:
        await clone(provider, "g2")
        assert provider.cache.made == {}  # reported by the feed: no reference kept beside it
        await delete_and_see_it_leave(vcsim, provider, "g2")
        assert provider.feed.snapshots == 1  # seen as a "leave" update, not in a new snapshot
        before = sum(provider.session.calls.values())
        with pytest.raises(VmNotFound):
            await provider.vm_ready("g2")
        for call in operations(provider, "g2").values():
            with pytest.raises(VmNotFound):
                await call()
        assert sum(provider.session.calls.values()) == before  # answered from the feed's copy
        assert "g2" not in provider.cache.known_pools
    finally:
        await provider.close()


def test_a_fresh_snapshot_without_a_cloned_vm_forgets_it() -> None:
    # after a lost session the feed reads a snapshot: a VM cloned before it and missing from
    # it was deleted meanwhile, and nothing kept about it may stay behind
    cache = ObjectCache(lambda path: None)
    cache.remember("kept", vim.VirtualMachine("vm-1"), "p")
    cache.remember("deleted", vim.VirtualMachine("vm-2"), "p")
    seen = Obj("VirtualMachine", vim.VirtualMachine("vm-1"), {"name": "kept"})
    cache.replace({"vm-1": seen}, set())
    assert cache.made == {}
    assert cache.known_pools == {"kept": "p"}


# -- the pool manager on vcsim ------------------------------------------------------------

SWEEP_S = 0.2


@pytest_asyncio.fixture
async def manager(tmp_path: Path, vcsim: Vcsim, listener: Listener) -> AsyncIterator[PoolManager]:
    """A pool of one VM on vcsim, with the real manager and sqlite store; its VM is ready."""
    provider = make_provider(vcsim, listener, pools={"p": pool("p")})
    store = SqliteStore(tmp_path / "corral.db")
    manager = PoolManager([Pool(name="p", template=TEMPLATE, size=1, provider="vsphere")], {"vsphere": provider},
                          store, ManagerSettings(check_interval=SWEEP_S, feed_timeout=1.0, runner=QUICK_RUNNER))
    await manager.start()
    try:
        await eventually(lambda: store.list_vms(pool="p", states=[VmState.READY]), timeout=15)
        yield manager
    finally:
        await manager.stop()
        store.close()


def said(caplog: pytest.LogCaptureFixture, message: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "corral.pool" and r.getMessage() == message]


async def gone_for_good(manager: PoolManager, name: str, since: float, caplog: pytest.LogCaptureFixture) -> None:
    """The record reaches ``destroyed`` within one sweep of ``since``, and nothing is retried."""
    await eventually(lambda: manager.store.get_vm(name).state is VmState.DESTROYED, timeout=SWEEP_S + 1.0)
    assert time.monotonic() - since < SWEEP_S + 1.0
    await asyncio.sleep(3 * SWEEP_S)  # three more sweeps
    assert said(caplog, "destroy failed, will retry") == []
    assert [r.vm for r in said(caplog, "already gone; recorded destroyed")] == [name]  # type: ignore[attr-defined]
    assert manager.destroys.failures == {}


async def test_a_returned_vm_deleted_behind_corrals_back_is_recorded_destroyed_at_once(
    manager: PoolManager, vcsim: Vcsim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="corral.pool")
    [vm] = manager.checkout(["p"])
    # the VM goes while it is returned (as when the answer of corral's own Destroy_Task is
    # lost): its destroy is held back by the hold until the sweep picks it up
    with manager.holding(vm.name):
        await asyncio.to_thread(delete_behind_corrals_back, vcsim, vm.name)
        assert manager.return_vm(vm.name)
    since = time.monotonic()
    await gone_for_good(manager, vm.name, since, caplog)
    assert manager.store.get_vm(vm.name).reason == "returned"


async def test_a_vm_the_feed_reports_gone_is_recorded_destroyed_at_once(
    manager: PoolManager, vcsim: Vcsim, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="corral.pool")
    [vm] = manager.checkout(["p"])
    provider = manager.providers["vsphere"]
    assert isinstance(provider, VsphereProvider)
    await delete_and_see_it_leave(vcsim, provider, vm.name)
    since = time.monotonic()
    await gone_for_good(manager, vm.name, since, caplog)
    assert manager.store.get_vm(vm.name).reason == "vanished at the provider"
