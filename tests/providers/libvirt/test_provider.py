"""The libvirt provider's own behaviour on libvirt's test driver: events, host figures, errors a
user can read, readiness, and use from more than one asyncio loop."""

from __future__ import annotations

import asyncio
import xml.etree.ElementTree as ET

import pytest

from corral.domain.models import VmSpec
from corral.providers.base import ProviderError, VmNotFound
from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool
from corral.providers.probe import ReadyCheck

from ..contract import FeedReader
from .conftest import POOL, TEMPLATE, Probes, foreign_domain_xml, made, make_provider, raw

EVENT_TIMEOUT = 1.0  # seconds within which a change made behind the provider's back reaches the feed


# -- events ------------------------------------------------------------------------------------


async def test_a_vm_stopped_and_started_behind_the_providers_back_reaches_the_feed_without_a_full_list(
    provider: LibvirtProvider,
) -> None:
    await made(provider, "ev-power")
    feed = FeedReader(provider)
    await feed.read()
    full_lists = provider.calls["getAllDomainStats"]
    dom = raw(provider).lookupByName("ev-power")

    dom.destroy()
    await feed.until(lambda f: not f.vms["ev-power"].powered_on, EVENT_TIMEOUT)
    dom.create()
    await feed.until(lambda f: f.vms["ev-power"].powered_on, EVENT_TIMEOUT)
    assert provider.calls["getAllDomainStats"] == full_lists


async def test_a_vm_undefined_behind_the_providers_back_is_reported_gone_without_a_full_list(
    provider: LibvirtProvider,
) -> None:
    await made(provider, "ev-gone", "ev-stays")
    feed = FeedReader(provider)
    await feed.read()
    full_lists = provider.calls["getAllDomainStats"]
    dom = raw(provider).lookupByName("ev-gone")
    dom.destroy()
    dom.undefine()
    await feed.until(lambda f: "ev-gone" in f.removed, EVENT_TIMEOUT)
    assert "ev-stays" in feed.vms and "ev-stays" not in feed.removed
    assert provider.calls["getAllDomainStats"] == full_lists


async def test_someone_elses_domain_counts_on_its_host_but_is_no_corral_vm(provider: LibvirtProvider) -> None:
    feed = FeedReader(provider)
    await feed.read()
    before = feed.hosts["host1"]
    full_lists = provider.calls["getAllDomainStats"]
    dom = raw(provider).defineXML(foreign_domain_xml("someone-elses", memory_mib=768))
    dom.create()
    await feed.until(lambda f: f.hosts["host1"].vm_count == before.vm_count + 1, EVENT_TIMEOUT)
    assert feed.hosts["host1"].memory_used_mb == before.memory_used_mb + 768
    assert "someone-elses" not in feed.vms
    dom.destroy()
    dom.undefine()
    await feed.until(lambda f: f.hosts["host1"].vm_count == before.vm_count, EVENT_TIMEOUT)
    assert provider.calls["getAllDomainStats"] == full_lists
    assert "someone-elses" not in {vm.name for vm in await provider.list_vms()}


async def test_a_domain_defined_behind_its_back_with_corrals_metadata_is_adopted_into_its_pool(
    provider: LibvirtProvider,
) -> None:
    feed = FeedReader(provider)
    await feed.read()
    full_lists = provider.calls["getAllDomainStats"]
    dom = raw(provider, "host2").defineXML(foreign_domain_xml("adopted", pool="other-pool", template="centos-9"))
    await feed.until(lambda f: "adopted" in f.vms, EVENT_TIMEOUT)
    vm = feed.vms["adopted"]
    assert (vm.host, vm.pool, vm.template, vm.powered_on, vm.created_at) == (
        "host2", "other-pool", "centos-9", False, 1700000000.0)
    dom.create()
    await feed.until(lambda f: f.vms["adopted"].powered_on, EVENT_TIMEOUT)
    assert provider.calls["getAllDomainStats"] == full_lists
    await provider.destroy_vm("adopted")
    assert "adopted" not in {d.name() for d in raw(provider, "host2").listAllDomains()}


# -- host figures --------------------------------------------------------------------------------


@pytest.mark.parametrize(("host", "cores", "mhz", "memory_mb"), [
    ("host1", 16, 2400, 32768),
    ("host2", 24, 2600, 65536),
    ("host3", 32, 2600, 65536),
])
async def test_host_figures_come_from_the_host_file(
    provider: LibvirtProvider, host: str, cores: int, mhz: int, memory_mb: int
) -> None:
    [info] = [h for h in await provider.list_hosts() if h.name == host]
    assert (info.cores, info.mhz, info.memory_mb, info.up) == (cores, mhz, memory_mb, True)


async def test_cpu_flags_of_the_hosts_capabilities_reach_the_host_info(provider: LibvirtProvider) -> None:
    caps = ET.fromstring(raw(provider).getCapabilities())
    features = {f.get("name") for f in caps.findall("host/cpu/feature")} | {
        f.tag for f in caps.findall("host/cpu/features/*")}
    assert features == {"pae", "nonpae"}  # the test driver's host CPU, in the older <features> form
    [info] = [h for h in await provider.list_hosts() if h.name == "host1"]
    assert set(info.cpu_flags) == features


async def test_memory_use_follows_the_running_domains(provider: LibvirtProvider) -> None:
    async def used() -> float:
        [info] = [h for h in await provider.list_hosts() if h.name == "host1"]
        return info.memory_used_mb

    idle = await used()
    await made(provider, "mem-a", "mem-b")
    assert await used() == idle + 2 * 2048  # debian-12 has 2 GiB; the test driver has no memory stats
    await provider.power_off("mem-a")
    assert await used() == idle + 2048
    await provider.destroy_vm("mem-b")
    assert await used() == idle


# -- errors a user can read ----------------------------------------------------------------------


async def test_an_unknown_template_fails_its_vms_for_good_and_says_which(provider: LibvirtProvider) -> None:
    results = await provider.create_vms("host1", [
        VmSpec(name="tpl-missing", pool=POOL, template="no-such-template"),
        VmSpec(name="tpl-fine", pool=POOL, template=TEMPLATE),
    ])
    assert [(r.name, r.ok, r.retryable) for r in results] == [("tpl-missing", False, False), ("tpl-fine", True, True)]
    assert results[0].error is not None and "no-such-template" in results[0].error and "host1" in results[0].error


async def test_a_duplicate_name_fails_for_good_and_says_it_exists(provider: LibvirtProvider) -> None:
    await made(provider, "dup")
    [again] = await provider.create_vms("host2", [VmSpec(name="dup", pool=POOL, template=TEMPLATE)])
    assert (again.ok, again.retryable) == (False, False)
    assert again.error is not None and "'dup'" in again.error and "already exists" in again.error
    assert [vm.host for vm in await provider.list_vms() if vm.name == "dup"] == ["host1"]


async def test_an_unknown_snapshot_is_named_in_a_permanent_error(provider: LibvirtProvider) -> None:
    await made(provider, "snapless")
    with pytest.raises(ProviderError) as caught:
        await provider.revert_snapshot("snapless", "never-taken")
    assert not isinstance(caught.value, VmNotFound) and not caught.value.retryable
    assert "'never-taken'" in str(caught.value) and "'snapless'" in str(caught.value)


@pytest.mark.parametrize("operation", ["destroy_vm", "power_on", "power_off", "add_disk", "create_snapshot",
                                       "revert_snapshot", "migrate_vm", "vm_ready"])
async def test_a_missing_vm_is_vm_not_found(provider: LibvirtProvider, operation: str) -> None:
    calls = {
        "destroy_vm": lambda: provider.destroy_vm("nobody"),
        "power_on": lambda: provider.power_on("nobody"),
        "power_off": lambda: provider.power_off("nobody"),
        "add_disk": lambda: provider.add_disk("nobody", 1),
        "create_snapshot": lambda: provider.create_snapshot("nobody", "s"),
        "revert_snapshot": lambda: provider.revert_snapshot("nobody", "s"),
        "migrate_vm": lambda: provider.migrate_vm("nobody", "host2"),
        "vm_ready": lambda: provider.vm_ready("nobody"),
    }
    with pytest.raises(VmNotFound) as caught:
        await calls[operation]()
    assert "'nobody'" in str(caught.value) and not caught.value.retryable


async def test_a_vm_removed_behind_its_back_is_vm_not_found_for_the_next_call(provider: LibvirtProvider) -> None:
    await made(provider, "vanishing")
    provider.hosts["host1"].on_event = lambda event: None  # the undefine's event does not arrive in time
    dom = raw(provider).lookupByName("vanishing")
    dom.destroy()
    dom.undefine()
    with pytest.raises(VmNotFound):
        await provider.power_on("vanishing")


# -- readiness -----------------------------------------------------------------------------------


async def test_readiness_by_name_asks_the_name_with_the_pools_domain() -> None:
    probe = Probes()
    provider = make_provider(pools={POOL: LibvirtPool(POOL, TEMPLATE, domain="lab.example.net")}, probe=probe)
    provider.ready = ReadyCheck(port=2222, address="name")
    await provider.connect()
    try:
        await made(provider, "ready-by-name")
        assert await provider.vm_ready("ready-by-name")
        assert probe.asked == [("ready-by-name.lab.example.net", 2222)]
        await provider.power_off("ready-by-name")
        assert not await provider.vm_ready("ready-by-name")
        assert len(probe.asked) == 1  # a VM that is off is not probed
    finally:
        await provider.close()


async def test_readiness_by_guest_ip_asks_the_address_libvirt_reports() -> None:
    probe = Probes(ready=False)
    provider = make_provider(probe=probe)
    provider.ready = ReadyCheck(port=22, address="guest_ip")
    await provider.connect()
    try:
        await made(provider, "ready-by-ip")
        interfaces = raw(provider).lookupByName("ready-by-ip").interfaceAddresses(0, 0)
        ips = [a["addr"] for i in interfaces.values() for a in i["addrs"] if a["type"] == 0]
        assert ips
        assert not await provider.vm_ready("ready-by-ip")
        assert probe.asked == [(ips[0], 22)]
        [vm] = [vm for vm in await provider.list_vms() if vm.name == "ready-by-ip"]
        assert vm.ip == ips[0]
    finally:
        await provider.close()


# -- more than one asyncio loop ------------------------------------------------------------------


async def one_session(name: str) -> None:
    """Connect, create a VM, see an event of a change made behind the provider's back, close."""
    provider = make_provider()
    await provider.connect()
    try:
        await made(provider, name)
        feed = FeedReader(provider)
        await feed.read()
        raw(provider).lookupByName(name).destroy()
        await feed.until(lambda f: not f.vms[name].powered_on, EVENT_TIMEOUT)
    finally:
        await provider.close()


def test_the_provider_works_from_one_asyncio_loop_after_another() -> None:
    asyncio.run(one_session("loop-one"))
    asyncio.run(one_session("loop-two"))  # libvirt's one event implementation serves the second loop too
