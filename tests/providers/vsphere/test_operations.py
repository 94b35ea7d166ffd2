"""Cloning the vmpooler way (folders, datastores, linked clones, notes), readiness, HA starts, purging."""

from __future__ import annotations

import asyncio
import json
import threading

from pyVmomi import vim

from corral.bench.vcsim import Vcsim, wait_task
from corral.domain.models import VmSpec
from helpers import eventually

from .conftest import TEMPLATE, Listener, make_provider, pool


async def test_a_clone_lands_in_its_folder_with_its_notes(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p", folder="Pooled VMs/p", datastore="LocalDS_0")},
                             create_folders=True)
    await provider.connect()
    try:
        [result] = await provider.create_vms("DC0_C0_H2", [VmSpec(name="c1", pool="p", template=TEMPLATE)])
        assert result.ok, result
        real = await asyncio.to_thread(vcsim.vm, "c1")
        assert real.parent.name == "p" and real.parent.parent.name == "Pooled VMs"
        assert real.runtime.host.name == "DC0_C0_H2" and real.runtime.powerState == "poweredOn"
        notes = json.loads(real.config.annotation)
        assert notes["created_by"] == "user" and notes["pool"] == "p" and notes["base_template"] == TEMPLATE
        assert {o.key: o.value for o in real.config.extraConfig}["guestinfo.hostname"] == "c1"
        assert [d.name for d in real.datastore] == ["LocalDS_0"]
    finally:
        await provider.close()


async def test_missing_folder_template_or_datastore_is_a_permanent_error_naming_it(vcsim: Vcsim) -> None:
    pools = {"nofolder": pool("nofolder", folder="Nowhere/x"),
             "notemplate": pool("notemplate", template="Templates/gone"),
             "nodatastore": pool("nodatastore", datastore="NoSuchDS")}
    provider = make_provider(vcsim, pools=pools)
    await provider.connect()
    try:
        specs = [VmSpec(name=f"e-{p}", pool=p, template=TEMPLATE) for p in pools]
        results = await provider.create_vms("DC0_C0_H0", specs)
        for result, needle in zip(results, ("Nowhere/x", "Templates/gone", "NoSuchDS"), strict=True):
            assert not result.ok and not result.retryable and needle in (result.error or ""), result
        assert not {"e-nofolder", "e-notemplate", "e-nodatastore"} & {vm.name for vm in await provider.list_vms()}
    finally:
        await provider.close()


async def test_linked_clones_use_the_template_snapshot(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"linked": pool("linked", linked_clone=True), "full": pool("full")})
    await provider.connect()
    try:
        target = provider.cache.host_obj("DC0_C0_H0")
        template = provider.lookups.template(TEMPLATE)
        linked = provider.cloner.clone_spec(target, provider.pools["linked"], VmSpec("l", "linked", TEMPLATE), template)
        full = provider.cloner.clone_spec(target, provider.pools["full"], VmSpec("f", "full", TEMPLATE), template)
        assert linked.snapshot is not None and linked.location.diskMoveType == "createNewChildDiskBacking"
        assert full.snapshot is None and full.location.diskMoveType is None
        [result] = await provider.create_vms("DC0_C0_H0", [VmSpec(name="l1", pool="linked", template=TEMPLATE)])
        assert result.ok
    finally:
        await provider.close()


async def test_readiness_connects_to_the_name_with_domain_or_to_the_guest_ip(vcsim: Vcsim, listener: Listener) -> None:
    provider = make_provider(vcsim, listener, pools={"p": pool("p", domain="example.test")})
    await provider.connect()
    try:
        await provider.create_vms("DC0_C0_H0", [VmSpec(name="r1", pool="p", template=TEMPLATE)])
        # a create returns when its tasks ended; the inventory's own long poll shows the VM after
        await eventually(lambda: (vm := provider.cache.vm("r1")) is not None and vm.powered_on)
        assert await provider.vm_ready("r1")
        assert listener.asked[-1] == "r1.example.test:22"
        await provider.power_off("r1")
        asked = len(listener.asked)
        assert not await provider.vm_ready("r1") and len(listener.asked) == asked  # off: no probe at all
    finally:
        await provider.close()

    by_ip = make_provider(vcsim, listener, pools={"p": pool("p")}, ready_check_address="guest_ip")
    await by_ip.connect()
    try:
        await by_ip.create_vms("DC0_C0_H0", [VmSpec(name="r2", pool="p", template=TEMPLATE)])
        assert not await by_ip.vm_ready("r2")  # no IP reported yet
        # VMware Tools report an address (vcsim's way of setting a guest property)
        config = vim.vm.ConfigSpec(extraConfig=[vim.option.OptionValue(key="SET.guest.ipAddress", value="10.1.2.3")])
        await asyncio.to_thread(lambda: wait_task(vcsim.vm("r2").ReconfigVM_Task(spec=config)))
        for _ in range(100):
            if await by_ip.vm_ready("r2"):
                break
            await asyncio.sleep(0.05)
        assert listener.asked[-1] == "10.1.2.3:22"
    finally:
        await by_ip.close()


async def test_start_vms_restarts_a_stopped_vm_on_another_host(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        await provider.create_vms("DC0_C0_H0", [VmSpec(name="ha1", pool="p", template=TEMPLATE)])
        await asyncio.to_thread(lambda: wait_task(vcsim.vm("ha1").PowerOffVM_Task()))  # its host died with it
        await eventually(lambda: (vm := provider.cache.vm("ha1")) is not None and not vm.powered_on)
        [result] = await provider.start_vms("DC0_C0_H2", ["ha1"])
        assert result.ok, result
        real = await asyncio.to_thread(vcsim.vm, "ha1")
        assert real.runtime.host.name == "DC0_C0_H2" and real.runtime.powerState == "poweredOn"
    finally:
        await provider.close()


async def test_purge_removes_only_unconfigured_folders_beside_pool_folders(vcsim: Vcsim) -> None:
    content = vcsim.content
    root = content.rootFolder.childEntity[0].vmFolder
    pooled = root.CreateFolder("Pooled VMs")
    for name in ("a", "old", "keep"):
        pooled.CreateFolder(name)
    root.CreateFolder("Elsewhere")
    provider = make_provider(vcsim, pools={"a": pool("a", folder="Pooled VMs/a")}, purge_unconfigured_resources=True,
                             resources_allowlist=["keep"])
    await provider.connect()  # purges at connect
    try:
        for _ in range(100):
            names = {o.props.get("name") for o in provider.cache.objects.values() if o.kind == "Folder"}
            if "old" not in names:
                break
            await asyncio.sleep(0.05)
        assert {"a", "keep", "Elsewhere", "Pooled VMs"} <= names and "old" not in names
    finally:
        await provider.close()


async def test_a_folder_that_exists_already_is_found_not_its_parent(vcsim: Vcsim) -> None:
    """CreateFolder of a name that exists (made by someone else, or by an earlier call the feed
    has not reported yet) gives the existing folder: vcsim's DuplicateName names the parent."""
    from corral.providers.vsphere.folders import create_folder

    def run() -> tuple[str, str, str]:
        content = vcsim.content
        parent = content.rootFolder.childEntity[0].vmFolder
        first = create_folder(parent, "twice", content.searchIndex)
        again = create_folder(parent, "twice", content.searchIndex)
        return first._moId, again._moId, parent._moId

    first, again, parent = await asyncio.to_thread(run)
    assert again == first != parent


async def test_a_folder_made_is_used_at_once_without_waiting_for_the_feed(vcsim: Vcsim) -> None:
    """The inventory loop is held (as a long update set would hold it): the first clone makes
    the pool's folders and uses them, the second finds them without a second CreateFolder."""
    provider = make_provider(vcsim, pools={"p": pool("p", folder="Fresh/p")}, create_folders=True, feed_max_wait=1)
    await provider.connect()
    busy, release = threading.Event(), threading.Event()
    try:
        provider.feed.thread.submit(lambda: (busy.set(), release.wait(20)))
        assert await asyncio.to_thread(busy.wait, 5)
        for name in ("f1", "f2"):
            [result] = await provider.create_vms("DC0_C0_H0", [VmSpec(name=name, pool="p", template=TEMPLATE)])
            assert result.ok, result.error
        assert "f1" not in provider.cache.vm_ids  # the inventory loop was held all along
        assert provider.session.calls["CreateFolder"] == 2  # Fresh, then p: once each
        for name in ("f1", "f2"):
            real = await asyncio.to_thread(vcsim.vm, name)
            assert real.parent.name == "p" and real.parent.parent.name == "Fresh"
    finally:
        release.set()
        await provider.close()
