"""The vSphere object cache's host figures: when a host's quickStats last changed, and its CPU.

The first tests feed the pyvmomi objects WaitForUpdatesEx returns to ``ObjectCache.apply`` and
``ObjectCache.replace``, as the feed loop does: vcsim reports fixed quickStats, so a refresh of
them cannot be had from it. The last two read vcsim's hosts through the provider, the second
with the placer and the inventory monitor; the quickStats refreshes it needs are applied to
the provider's cache as its feed would apply them.
"""

from __future__ import annotations

import logging
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from corral.bench.vcsim import Vcsim
from corral.domain.models import Pool, TemplateInfo, VmSpec
from corral.inventory import Inventory
from corral.inventory.monitor import MonitorSettings
from corral.pools.placing import Placer
from corral.providers.vsphere import VsphereProvider
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.objects import Obj
from corral.scheduling import Demand, Placement, Rejection, Request, Scheduler
from helpers import eventually

from .conftest import TEMPLATE, make_provider, pool
from .test_cpuid import VCSIM, VCSIM_FLAGS

CPU, MEMORY = "summary.quickStats.overallCpuUsage", "summary.quickStats.overallMemoryUsage"
HOST = vim.HostSystem("host-1")
HARDWARE = vim.host.Summary.HardwareSummary(cpuModel="Intel(R) Xeon(R) CPU E5-1620 0 @ 3.60GHz",
                                            numCpuCores=4, cpuMhz=3600, memorySize=64 * 1024**3)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def update(kind: str, obj: Any, **props: Any) -> Any:
    pc = vmodl.query.PropertyCollector
    changes = [pc.Change(name=name.replace("__", "."), op="assign",
                         val=type(val[0]).Array(val) if isinstance(val, list) else val)  # a typed array, as on the wire
               for name, val in props.items()]
    return pc.ObjectUpdate(kind=kind, obj=obj, changeSet=changes)


def host_props(**extra: Any) -> dict[str, Any]:
    return {"name": "h1", "runtime.connectionState": "connected", "summary.hardware": HARDWARE,
            CPU: 500, MEMORY: 2048, **extra}


def apply(cache: ObjectCache, kind: str, obj: Any, **props: Any) -> set[tuple[str, str]]:
    touched: set[tuple[str, str]] = set()
    cache.apply(update(kind, obj, **props), touched)
    return touched


def test_stats_at_moves_when_quickstats_change_and_not_otherwise() -> None:
    clock = Clock()
    cache = ObjectCache(lambda path: None, clock=clock)
    apply(cache, "enter", HOST, **host_props())
    h1 = cache.host("h1")
    assert h1 is not None and h1.stats_at is None  # the first report: not seen to refresh yet
    clock.now = 120.0
    assert apply(cache, "modify", HOST, **{CPU: 700}) == {("host", "h1")}
    h1 = cache.host("h1")
    assert h1 is not None and (h1.cpu_used_mhz, h1.stats_at) == (700.0, 120.0)
    clock.now = 130.0
    apply(cache, "modify", HOST, **{"runtime.inMaintenanceMode": True})  # not a stat
    vm = vim.VirtualMachine("vm-1")  # a VM powered on there: the host's view changes, its stats do not
    assert ("host", "h1") in apply(cache, "enter", vm, name="v1", runtime__host=HOST,
                                   runtime__powerState="poweredOn", summary__config__memorySizeMB=4096)
    h1 = cache.host("h1")
    assert h1 is not None and (h1.maintenance, h1.vm_count, h1.memory_used_mb, h1.stats_at) == (True, 1, 4096, 120.0)
    clock.now = 140.0
    apply(cache, "modify", HOST, **{MEMORY: 6000})
    h1 = cache.host("h1")
    assert h1 is not None and (h1.memory_used_mb, h1.stats_at) == (6000, 140.0)

    # a fresh snapshot (after a lost session): stats that did not change keep their time ...
    def snapshot(**changed: Any) -> dict[str, Obj]:
        objects = {key: Obj(obj.kind, obj.ref, dict(obj.props)) for key, obj in cache.objects.items()}
        objects["host-1"].props.update(changed)
        return objects

    clock.now = 150.0
    cache.replace(snapshot(), set())
    assert cache.host("h1").stats_at == 140.0  # type: ignore[union-attr]
    # ... and stats that changed while corral did not look changed now
    clock.now = 160.0
    cache.replace(snapshot(**{CPU: 900}), set())
    assert cache.host("h1").stats_at == 160.0  # type: ignore[union-attr]
    # a host that leaves and comes back starts over
    apply(cache, "leave", HOST)
    apply(cache, "enter", HOST, **host_props())
    assert cache.host("h1").stats_at is None  # type: ignore[union-attr]


def test_a_host_reports_the_cpu_of_its_cpuid_registers() -> None:
    cache = ObjectCache(lambda path: None)
    apply(cache, "enter", HOST, **host_props(hardware__cpuFeature=VCSIM))
    h1 = cache.host("h1")
    assert h1 is not None
    assert (h1.cpu_vendor, h1.cpu_family, h1.cpu_flags) == ("GenuineIntel", 6, VCSIM_FLAGS)
    # the registers are decoded once per report, not once per view of the host
    apply(cache, "enter", vim.VirtualMachine("vm-1"), name="v1", runtime__host=HOST)
    assert cache.host("h1").cpu_flags is h1.cpu_flags  # type: ignore[union-attr]


def test_a_host_without_cpuid_registers_is_judged_by_its_model(caplog: pytest.LogCaptureFixture) -> None:
    cache = ObjectCache(lambda path: None)
    apply(cache, "enter", HOST, **host_props())
    h1 = cache.host("h1")
    assert h1 is not None and (h1.cpu_vendor, h1.cpu_family, h1.cpu_flags) == ("GenuineIntel", None, frozenset())
    bad = [vim.host.CpuIdInfo(level=1, eax="xxxx:0000:0000:0000:0000:0000:0000:0000")]  # a mask, not bits
    with caplog.at_level(logging.WARNING, "corral.providers.vsphere"):
        apply(cache, "modify", HOST, hardware__cpuFeature=bad)
        h1 = cache.host("h1")
        cache.host("h1")
    assert h1 is not None and (h1.cpu_vendor, h1.cpu_family, h1.cpu_flags) == ("GenuineIntel", None, frozenset())
    [record] = [r for r in caplog.records if "CPU features" in r.getMessage()]  # once, not per view
    assert record.host == "h1"  # type: ignore[attr-defined]
    assert "'xxxx:0000:0000:0000:0000:0000:0000:0000' is not 32 binary digits" in record.error  # type: ignore[attr-defined]


async def test_vcsim_hosts_report_cpu_flags_and_placement_filters_on_them(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim)
    await provider.connect()
    try:
        update = await provider.wait_for_updates(None, 1)
    finally:
        await provider.close()
    hosts = update.hosts
    assert hosts and all(h.cpu_flags == VCSIM_FLAGS and (h.cpu_vendor, h.cpu_family) == ("GenuineIntel", 6)
                         for h in hosts)
    assert all(h.stats_at is None for h in hosts)  # vcsim's quickStats never change: they count as live

    def place(**cpu: Any) -> Placement:
        template = TemplateInfo(TEMPLATE, cpus=1, memory_mb=128, **cpu)
        [placement] = Scheduler().place(hosts, [Request("v", Demand.of(template))], reserve=False)
        return placement

    assert place(cpu_flags=frozenset({"sse4_2", "aes", "avx", "lm"}), cpu_vendor="GenuineIntel", cpu_family=6).ok
    lacking = place(cpu_flags=frozenset({"avx", "avx2"}))  # an E5-1620 (Sandy Bridge) has no AVX2
    assert lacking.rejected == {h.name: Rejection("cpu", "lacks avx2") for h in hosts}
    wrong_vendor = Rejection("cpu", "vendor GenuineIntel, needs AuthenticAMD")
    assert place(cpu_vendor="AuthenticAMD").rejected == {h.name: wrong_vendor for h in hosts}


def refresh_stats(provider: VsphereProvider, host: str, cpu_mhz: int) -> None:
    """A quickStats refresh of ``host`` as the feed would apply it: vcsim's never refresh."""
    obj = provider.cache.host_obj(host)
    assert obj is not None
    touched: set[tuple[str, str]] = set()
    provider.cache.apply(update("modify", obj.ref, **{CPU: cpu_mhz}), touched)
    for kind, name in touched:
        provider.changes.touch(kind, name)  # type: ignore[arg-type]


async def test_a_placed_vm_keeps_its_cpu_reserved_until_its_host_stats_refresh(vcsim: Vcsim) -> None:
    """The placer, the inventory monitor and the vSphere provider on vcsim, end to end."""
    provider = make_provider(vcsim, pools={"p": pool("p")}, feed_max_wait=1)
    inventory = Inventory({"vsphere": provider}, MonitorSettings(feed_timeout=1.0))
    await provider.connect()
    await inventory.load()
    inventory.run()
    try:
        monitor = inventory["vsphere"]
        placer = Placer({"vsphere": provider}, inventory)
        scheduler = placer.schedulers["vsphere"]
        for name in vcsim.hosts():
            refresh_stats(provider, name, 100)  # from now on these hosts' figures lag
        await eventually(lambda: all(h.stats_at is not None for h in monitor.hosts()))
        [placed] = placer.place("vsphere", [("lag1", Pool("p", TEMPLATE, 1, "vsphere"))])
        assert placed.host is not None
        [result] = await provider.create_vms(placed.host, [VmSpec(name="lag1", pool="p", template=TEMPLATE)])
        assert result.ok
        await eventually(lambda: (vm := monitor.vm("lag1")) is not None and vm.host == placed.host)
        assert placer.reserved("vsphere") == 1  # on its host, but the host's CPU use does not show it yet
        held = scheduler.reservations.get("lag1")
        assert held is not None and held.seen is not None
        load = scheduler.loads(monitor.hosts())[placed.host]
        assert (load.cpu_used, load.vm_count) == (100 + load.vcpu_mhz, 1)  # its CPU, and it counted once
        refresh_stats(provider, placed.host, 400)
        await eventually(lambda: placer.reserved("vsphere") == 0)
    finally:
        await inventory.stop()
        await provider.close()
