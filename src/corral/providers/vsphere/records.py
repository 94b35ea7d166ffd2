"""corral's records of vSphere VMs and hosts, built from the properties the feed reported.

A VM's pool is the one its annotation names (the JSON notes corral and vmpooler write), else
what the cache knows otherwise (see :meth:`ObjectCache.vm`). A host's memory and VM count
are summed over the VMs on it; its CPU comes decoded from ``hardware.cpuFeature``
(``hostfigures.py``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from corral.domain.models import HostHealth, HostInfo, ProviderVm
from corral.providers.vsphere.cpuid import CpuId


def annotation(text: Any) -> dict[str, Any]:
    """The JSON notes corral (and vmpooler) write into a VM's annotation; {} when it has none."""
    if not isinstance(text, str) or not text.startswith("{"):
        return {}
    try:
        notes = json.loads(text)
    except ValueError:
        return {}
    return notes if isinstance(notes, dict) else {}


def vm_record(key: str, props: Mapping[str, Any], host: str, other_pool: Callable[[], str | None]) -> ProviderVm:
    """The VM ``key`` with ``props`` on ``host``; ``other_pool`` gives its pool when the
    annotation names none."""
    notes = annotation(props.get("config.annotation"))
    pool = notes.get("pool")
    if not isinstance(pool, str):
        pool = other_pool()
    created = props.get("config.createDate")
    return ProviderVm(
        name=props["name"],
        host=host,
        pool=pool,
        template=notes.get("base_template") if isinstance(notes.get("base_template"), str) else None,
        powered_on=props.get("runtime.powerState") == "poweredOn",
        ip=props.get("guest.ipAddress") or None,
        guest_ready=props.get("runtime.powerState") == "poweredOn"
        and props.get("guest.toolsRunningStatus") == "guestToolsRunning",
        created_at=created.timestamp() if created is not None else 0.0,
        id=key,
    )


def host_up(props: Mapping[str, Any]) -> bool:
    """Whether the host is connected to the vCenter."""
    return props.get("runtime.connectionState") == "connected"


def host_in_maintenance(props: Mapping[str, Any]) -> bool:
    return bool(props.get("runtime.inMaintenanceMode"))


def host_record(key: str, props: Mapping[str, Any], vms: Iterable[Mapping[str, Any]], cluster: str,
                cpu: CpuId, stats_at: float | None) -> HostInfo:
    """The host ``key`` with ``props``, the properties of the ``vms`` on it, its ``cluster``
    ("" when it is in none), its decoded ``cpu`` and the time its stats last changed."""
    hw = props.get("summary.hardware")
    allocated = used = 0.0
    count = 0
    for vm in vms:
        count += 1
        memory = float(vm.get("summary.config.memorySizeMB") or 0)
        allocated += memory
        if vm.get("runtime.powerState") == "poweredOn":
            used += memory
    model = getattr(hw, "cpuModel", "") or ""
    return HostInfo(
        name=props["name"],
        cpu_model=model,
        cores=int(getattr(hw, "numCpuCores", 0) or 0),
        mhz=int(getattr(hw, "cpuMhz", 0) or 0),
        memory_mb=int((getattr(hw, "memorySize", 0) or 0) // (1024 * 1024)),
        cpu_used_mhz=float(props.get("summary.quickStats.overallCpuUsage") or 0),
        # quickStats lag by about 20 s: a VM that just powered on counts with its size at once
        memory_used_mb=max(float(props.get("summary.quickStats.overallMemoryUsage") or 0), used),
        up=host_up(props),
        maintenance=host_in_maintenance(props),
        vm_count=count,
        cluster=cluster,
        id=key,
        cpu_vendor=cpu.vendor or vendor_of(model),
        cpu_family=cpu.family,
        cpu_flags=cpu.flags,
        health=HostHealth.of(props.get("overallStatus")),
        config_issues=len(props.get("configIssue") or []),
        memory_allocated_mb=allocated,
        stats_at=stats_at,
    )


def vendor_of(cpu_model: str) -> str:
    """The vendor a CPU description names, for a host whose registers say nothing."""
    lower = cpu_model.lower()
    if "intel" in lower:
        return "GenuineIntel"
    if "amd" in lower:
        return "AuthenticAMD"
    return ""
