"""A libvirt host's figures as corral shows them: its CPU, how busy it is, the memory in use.

libvirt gives the raw readings: the capabilities XML (the host's CPU), cumulative CPU times
(``virNodeGetCPUStats``, in ns) and memory counters (``virNodeGetMemoryStats``, in KiB). These
functions turn them into :class:`~corral.domain.models.HostInfo`'s terms. A driver without
memory statistics (the test driver) is judged by the memory of its running domains.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from corral.providers.libvirt.domxml import VENDORS, cpu_vendor, read_xml, whole_number

__all__ = ["HostCpu", "cpu_busy", "describe_cpu", "memory_used_mb", "parse_capabilities"]

BUSY = ("user", "kernel")
CPU_TIMES = ("user", "kernel", "idle", "iowait")
MEMORY_NOT_IN_USE = ("free", "buffers", "cached")
SHORT_VENDORS = {long: short for short, long in VENDORS.items()}


@dataclass(frozen=True, slots=True)
class HostCpu:
    """A host's CPU from its capabilities: empty fields where the driver names nothing."""

    arch: str
    vendor: str  # "GenuineIntel", "AuthenticAMD", ... (libvirt's "Intel", "AMD" normalised)
    model: str  # libvirt's CPU model name, e.g. "Skylake-Client-IBRS"
    features: frozenset[str]
    family: int | None = None  # <signature family=>, when given


def parse_capabilities(xml: str) -> HostCpu:
    """The host's CPU from ``virConnectGetCapabilities``: its ``<host><cpu>`` arch, vendor, model,
    family and feature names (``<feature name=>``, and the older ``<features><pae/>...</features>``)."""
    cpu = read_xml(xml, "capabilities", "capabilities").find("host/cpu")
    if cpu is None:
        return HostCpu(arch="", vendor="", model="", features=frozenset())
    features = {feature.get("name", "") for feature in cpu.iterfind("feature")}
    features.update(str(flag.tag) for flag in cpu.iterfind("features/*"))
    features.discard("")
    signature = cpu.find("signature")
    family = None
    if signature is not None and signature.get("family"):
        family = whole_number(signature.get("family"), "the host CPU's signature family", 0)
    return HostCpu(
        arch=(cpu.findtext("arch") or "").strip(),
        vendor=cpu_vendor(cpu.findtext("vendor") or ""),
        model=(cpu.findtext("model") or "").strip(),
        features=frozenset(features),
        family=family,
    )


def cpu_busy(previous: Mapping[str, int] | None, current: Mapping[str, int]) -> float:
    """Fraction 0..1 of CPU time busy between two getCPUStats(-1) readings (keys user, kernel, idle,
    iowait, in ns; busy = user+kernel, total = all four); 0.0 with no previous reading or no elapsed time.

    A counter that went back (the host restarted between the readings) also gives 0.0."""
    if previous is None:
        return 0.0
    deltas = {key: current.get(key, 0) - previous.get(key, 0) for key in CPU_TIMES}
    total = sum(deltas.values())
    if total <= 0 or any(delta < 0 for delta in deltas.values()):
        return 0.0
    return min(1.0, sum(deltas[key] for key in BUSY) / total)


def memory_used_mb(stats: Mapping[str, int] | None, total_mb: int, running_domains_mb: int) -> float:
    """From getMemoryStats(-1) (KiB: total, free, buffers, cached): total-free-buffers-cached in MiB;
    when the driver has no memory stats (None): the memory of the running domains.

    Readings without ``free`` count as none; ``total`` missing from them is ``total_mb``. The
    result is never below 0 nor above the total."""
    if not stats or "free" not in stats:
        return float(max(0, running_domains_mb))
    total_kib = stats.get("total", total_mb * 1024)
    used_kib = total_kib - sum(stats.get(key, 0) for key in MEMORY_NOT_IN_USE)
    return min(max(0.0, used_kib / 1024), total_kib / 1024)


def describe_cpu(cpu: HostCpu, info_model: str) -> str:
    """The host's CPU as HostInfo.cpu_model shows it: e.g. "Intel Skylake-Client (x86_64)"; the
    getInfo() model when capabilities name none."""
    if not cpu.model:
        return info_model or cpu.arch
    words = [SHORT_VENDORS.get(cpu.vendor, cpu.vendor), cpu.model, f"({cpu.arch})" if cpu.arch else ""]
    return " ".join(word for word in words if word)
