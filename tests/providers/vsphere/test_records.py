"""corral's VM and host records built from the properties the feed reported (no vCenter)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from corral.providers.vsphere.cpuid import CpuId
from corral.providers.vsphere.records import annotation, host_record, vendor_of, vm_record

NOTES = '{"name": "v1", "pool": "noted", "base_template": "Templates/debian-12"}'


@pytest.mark.parametrize(("text", "expected"), [
    (NOTES, {"name": "v1", "pool": "noted", "base_template": "Templates/debian-12"}),
    ("written by hand", {}),
    ("{not json", {}),
    ("[1, 2]", {}),
    (None, {}),
])
def test_annotation(text: Any, expected: dict[str, Any]) -> None:
    assert annotation(text) == expected


@pytest.mark.parametrize(("props", "pool", "template", "powered_on", "guest_ready"), [
    ({"config.annotation": NOTES, "runtime.powerState": "poweredOn", "guest.toolsRunningStatus": "guestToolsRunning"},
     "noted", "Templates/debian-12", True, True),
    ({"runtime.powerState": "poweredOn"}, "other", None, True, False),  # no notes: the pool known otherwise
    ({"runtime.powerState": "poweredOff", "guest.toolsRunningStatus": "guestToolsRunning"}, "other", None, False,
     False),
])
def test_vm_record(props: dict[str, Any], pool: str, template: str | None, powered_on: bool,
                   guest_ready: bool) -> None:
    vm = vm_record("vm-7", {"name": "v1", **props}, "h1", lambda: "other")
    assert (vm.name, vm.id, vm.host, vm.pool, vm.template) == ("v1", "vm-7", "h1", pool, template)
    assert (vm.powered_on, vm.guest_ready, vm.ip, vm.created_at) == (powered_on, guest_ready, None, 0.0)


def test_vm_record_reads_ip_and_creation_time() -> None:
    created = datetime(2026, 1, 2, tzinfo=UTC)
    props = {"name": "v1", "guest.ipAddress": "10.0.0.7", "config.createDate": created}
    vm = vm_record("vm-7", props, "", lambda: None)
    assert vm.ip == "10.0.0.7" and vm.created_at == created.timestamp() and vm.pool is None


HW = SimpleNamespace(cpuModel="Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", numCpuCores=8, cpuMhz=2400,
                     memorySize=64 * 1024 ** 3)


@pytest.mark.parametrize(("vms", "used_mb", "allocated_mb", "count"), [
    ([], 1000.0, 0.0, 0),
    ([{"summary.config.memorySizeMB": 4096, "runtime.powerState": "poweredOn"},
      {"summary.config.memorySizeMB": 2048, "runtime.powerState": "poweredOff"}], 4096.0, 6144.0, 2),  # stats lag
    ([{"summary.config.memorySizeMB": 512, "runtime.powerState": "poweredOn"}], 1000.0, 512.0, 1),
])
def test_host_record_sums_its_vms(vms: list[dict[str, Any]], used_mb: float, allocated_mb: float, count: int) -> None:
    props = {"name": "h1", "summary.hardware": HW, "summary.quickStats.overallMemoryUsage": 1000,
             "summary.quickStats.overallCpuUsage": 300, "runtime.connectionState": "connected"}
    host = host_record("host-1", props, vms, "C0", CpuId(), 12.5)
    assert (host.memory_used_mb, host.memory_allocated_mb, host.vm_count) == (used_mb, allocated_mb, count)
    assert (host.name, host.id, host.cluster, host.cores, host.mhz, host.memory_mb) == ("h1", "host-1", "C0", 8, 2400,
                                                                                        65536)
    assert (host.up, host.maintenance, host.cpu_used_mhz, host.stats_at) == (True, False, 300.0, 12.5)
    assert (host.health, host.config_issues, host.cpu_vendor) == ("gray", 0, "GenuineIntel")  # vendor from the model


def test_host_record_prefers_the_decoded_cpu() -> None:
    cpu = CpuId(vendor="AuthenticAMD", family=25, flags=frozenset({"avx2"}))
    props = {"name": "h1", "summary.hardware": HW, "overallStatus": "yellow", "configIssue": [object()],
             "runtime.connectionState": "notResponding", "runtime.inMaintenanceMode": True}
    host = host_record("host-1", props, [], "", cpu, None)
    assert (host.cpu_vendor, host.cpu_family, host.cpu_flags) == ("AuthenticAMD", 25, frozenset({"avx2"}))
    assert (host.health, host.config_issues, host.up, host.maintenance) == ("yellow", 1, False, True)


@pytest.mark.parametrize(("model", "vendor"), [
    ("Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "GenuineIntel"),
    ("AMD EPYC 7763 64-Core Processor", "AuthenticAMD"),
    ("", ""),
    ("Some CPU", ""),
])
def test_vendor_of(model: str, vendor: str) -> None:
    assert vendor_of(model) == vendor
