"""What the libvirt provider leaves on a host: nothing once a VM is destroyed, whatever was done to
it, and nothing of a create that failed part-way. Each test compares the host's storage pool
volumes and domains, read through the provider's raw connection, before and after."""

from __future__ import annotations

from pathlib import Path

import libvirt
import pytest

from corral.domain.models import VmSpec
from corral.providers.libvirt.domxml import volume_name_for
from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool

from .conftest import POOL, TEMPLATE, make_provider, raw

LINKED = "lv-linked"


def volumes(provider: LibvirtProvider, host: str = "host1") -> set[str]:
    return set(raw(provider, host).storagePoolLookupByName("default").listVolumes())


def domains(provider: LibvirtProvider, host: str = "host1") -> set[str]:
    return {d.name() for d in raw(provider, host).listAllDomains()}


@pytest.mark.parametrize(("pool", "backed"), [(POOL, False), (LINKED, True)])
async def test_a_vm_put_through_everything_and_destroyed_leaves_nothing(pool: str, backed: bool) -> None:
    provider = make_provider(pools={POOL: LibvirtPool(POOL, TEMPLATE),
                                    LINKED: LibvirtPool(LINKED, TEMPLATE, linked_clone=True)})
    await provider.connect()
    try:
        vols, doms = volumes(provider), domains(provider)
        [result] = await provider.create_vms("host1", [VmSpec(name="busy", pool=pool, template=TEMPLATE)])
        assert result.ok, result
        own = volumes(provider) - vols
        assert own == {"busy-vda.qcow2"}
        clone = raw(provider).storagePoolLookupByName("default").storageVolLookupByName("busy-vda.qcow2")
        assert ("<backingStore>" in clone.XMLDesc(0)) is backed  # a linked clone is an overlay on the template's
        assert domains(provider) - doms == {"busy"}

        await provider.create_snapshot("busy", "s1")
        await provider.revert_snapshot("busy", "s1")
        await provider.add_disk("busy", 1)
        await provider.add_disk("busy", 2)
        assert volumes(provider) - vols == {"busy-vda.qcow2", "busy-vdb.qcow2", "busy-vdc.qcow2"}
        await provider.power_off("busy")
        await provider.power_on("busy")
        await provider.destroy_vm("busy")

        assert (volumes(provider), domains(provider)) == (vols, doms)
        assert "busy" not in {vm.name for vm in await provider.list_vms()}
    finally:
        await provider.close()


async def test_a_create_whose_volume_name_is_taken_fails_alone_and_leaves_the_volume_it_found() -> None:
    provider = make_provider()
    await provider.connect()
    try:
        taken = volume_name_for("clash", "vda", "debian-12.qcow2")
        storage = raw(provider).storagePoolLookupByName("default")
        storage.createXML(f"<volume><name>{taken}</name><capacity>1048576</capacity>"
                          "<target><format type='qcow2'/></target></volume>", 0)
        vols, doms = volumes(provider), domains(provider)

        clash, fine = await provider.create_vms("host1", [VmSpec(name="clash", pool=POOL, template=TEMPLATE),
                                                          VmSpec(name="fine", pool=POOL, template=TEMPLATE)])
        assert (clash.ok, clash.retryable, fine.ok) == (False, False, True)
        assert clash.error is not None and "'clash'" in clash.error and "already exists" in clash.error
        assert "host1" in clash.error
        assert volumes(provider) - vols == {"fine-vda.qcow2"} and taken in volumes(provider)
        assert domains(provider) - doms == {"fine"}
        assert {vm.name for vm in await provider.list_vms()} == {"fine"}
    finally:
        await provider.close()


async def test_a_create_that_libvirt_refuses_to_define_removes_the_disks_it_cloned(tmp_path: Path) -> None:
    provider = make_provider()
    await provider.connect()
    try:
        xml = raw(provider).lookupByName(TEMPLATE).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        broken = tmp_path / "broken.xml"  # readable to corral, refused by libvirt when defined
        broken.write_text(xml.replace("<on_poweroff>destroy</on_poweroff>", "<on_poweroff>explode</on_poweroff>"))
        provider.pools["broken"] = LibvirtPool("broken", str(broken))
        vols, doms = volumes(provider), domains(provider)

        refused, fine = await provider.create_vms("host1", [VmSpec(name="refused", pool="broken", template=str(broken)),
                                                            VmSpec(name="fine", pool=POOL, template=TEMPLATE)])
        assert (refused.ok, refused.retryable, fine.ok) == (False, False, True)
        assert refused.error is not None and "'refused'" in refused.error and "explode" in refused.error
        assert volumes(provider) - vols == {"fine-vda.qcow2"}
        assert domains(provider) - doms == {"fine"}
        assert "refused" not in {vm.name for vm in await provider.list_vms()}
    finally:
        await provider.close()
