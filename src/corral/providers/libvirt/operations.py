"""What runs on a host's worker thread for reads and for changes to existing VMs.

Each function takes the host's (counted) libvirt connection ``c`` first and raises
``libvirt.libvirtError`` as libvirt does; :meth:`HostConnection.call` runs it and turns errors
into corral's. They hold no state: the provider applies what they return to its cache.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, NamedTuple
from xml.sax.saxutils import escape

import libvirt

from corral.providers.base import Cause, ProviderError
from corral.providers.libvirt.cache import Listed
from corral.providers.libvirt.cloning import UNDEFINE
from corral.providers.libvirt.domxml import (
    DiskSource,
    disk_device_xml,
    new_volume_xml,
    next_disk_target,
    parse_domain,
    volume_of,
    with_disk,
)
from corral.providers.libvirt.errors import NO_DOMAIN, classify

__all__ = ["HostRead", "UseRead", "add_disk", "define_and_start", "destroy", "guest_address", "migrate", "read_domain",
           "read_host", "read_use", "revert", "snapshot"]

#: libvirt's migration: live, peer to peer, the definition moved with the domain
MIGRATE_FLAGS = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)


def _kind(exc: libvirt.libvirtError, host: str) -> str:
    return classify(exc.get_error_code() or 0, exc.get_error_message() or str(exc), operation="", subject="",
                    host=host).kind


# -- reads -----------------------------------------------------------------------------------


class HostRead(NamedTuple):
    """A full read of one host: ``getInfo``, the capabilities' XML, and every domain."""

    info: list[Any]
    capabilities: str
    domains: list[Listed]


def read_host(c: Any, known: Collection[str]) -> HostRead:
    """Everything on one host; the XML only of domains whose UUID is not in ``known``."""
    listed = []
    for dom, stats in c.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0):
        uuid = dom.UUIDString()
        xml = None
        if uuid not in known:
            try:
                xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            except libvirt.libvirtError as exc:
                if exc.get_error_code() == NO_DOMAIN:
                    continue  # gone since the list was made
                raise
        listed.append(Listed(dom.name(), uuid, int(stats.get("state.state", 0)), xml))
    return HostRead(c.getInfo(), c.getCapabilities(), listed)


class UseRead(NamedTuple):
    """One reading of a host's use: CPU times, and memory (None where the driver has none)."""

    cpu: dict[str, int]
    memory: dict[str, int] | None
    memory_supported: bool


def read_use(c: Any, host: str, want_memory: bool) -> UseRead:
    cpu = c.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
    if not want_memory:
        return UseRead(cpu, None, False)
    try:
        return UseRead(cpu, c.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0), True)
    except libvirt.libvirtError as exc:
        if _kind(exc, host) != "unsupported":
            raise
        return UseRead(cpu, None, False)


def read_domain(c: Any, name: str) -> Listed:
    dom = c.lookupByName(name)
    return Listed(name, dom.UUIDString(), dom.state(0)[0], dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def guest_address(c: Any, name: str) -> str | None:
    """The guest's first IPv4 address: from the DHCP leases, else from the guest agent."""
    dom = c.lookupByName(name)
    for source in (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE, libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT):
        try:
            interfaces = dom.interfaceAddresses(source, 0) or {}
        except libvirt.libvirtError:
            continue
        for interface in interfaces.values():
            for addr in interface.get("addrs") or []:
                if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and addr.get("addr"):
                    return str(addr["addr"])
    return None


# -- changes ---------------------------------------------------------------------------------


def destroy(c: Any, name: str, host: str) -> None:
    """Power off, undefine (snapshots, managed save and NVRAM included) and delete the volumes
    that are the VM's own (named after it). A VM whose domain is gone already still has its
    volumes looked for (a destroy that failed after the undefine left them), then is not found."""
    try:
        dom = c.lookupByName(name)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == NO_DOMAIN:
            delete_own_volumes(c, name, host)
        raise
    facts = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    if dom.isActive():
        dom.destroy()
    dom.undefineFlags(UNDEFINE | (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if facts.has_nvram else 0))
    for disk in facts.disks:
        if disk.pool and disk.volume and volume_of(name, disk.volume):
            try:
                c.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume).delete(0)
            except libvirt.libvirtError as exc:
                if _kind(exc, host) != "not_found":
                    raise


def delete_own_volumes(c: Any, name: str, host: str) -> list[str]:
    """Delete the volumes named after VM ``name`` (``name-vda.qcow2`` …, not ``name-2-vda.qcow2``)
    in every active storage pool; the names deleted."""
    deleted = []
    for pool in c.listAllStoragePools(libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE):
        for vol in pool.listAllVolumes(0):
            if volume_of(name, vol.name()):
                try:
                    vol.delete(0)
                    deleted.append(vol.name())
                except libvirt.libvirtError as exc:
                    if _kind(exc, host) != "not_found":
                        raise
    return deleted


def define_and_start(c: Any, xml: str) -> str:
    """Define a domain from ``xml`` and start it (an HA restart); its UUID."""
    dom = c.defineXML(xml)
    dom.create()
    return str(dom.UUIDString())


def migrate(c: Any, name: str, uri: str) -> None:
    c.lookupByName(name).migrateToURI3(uri, {}, MIGRATE_FLAGS)


def add_disk(c: Any, name: str, host: str, size_gb: int, default_pool: str | None) -> str:
    """A new empty qcow2 volume beside the VM's first disk, attached live where the driver
    can, else added to the definition (it is there from the next boot). The definition after."""
    dom = c.lookupByName(name)
    xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    facts = parse_domain(xml)
    storage_name = next((d.pool for d in facts.disks if d.pool), None) or default_pool
    if storage_name is None:
        raise ProviderError(f"VM {name!r}: no storage pool for a new disk (set the provider's storage_pool)",
                            retryable=False, cause=Cause.REFUSED)
    target = next_disk_target(xml)
    volume = f"{name}-{target}.qcow2"
    vol = c.storagePoolLookupByName(storage_name).createXML(new_volume_xml(volume, size_gb * 1024**3), 0)
    source = DiskSource(target=target, pool=storage_name, volume=volume, path=None, format="qcow2")
    try:
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
        try:
            dom.attachDeviceFlags(disk_device_xml(target, source), flags)
        except libvirt.libvirtError as exc:
            if _kind(exc, host) != "unsupported":
                raise
            c.defineXML(with_disk(xml, target, source))
    except BaseException:
        try:
            vol.delete(0)
        except libvirt.libvirtError:
            pass
        raise
    return str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))


def snapshot(c: Any, name: str, snapshot: str) -> None:
    c.lookupByName(name).snapshotCreateXML(f"<domainsnapshot><name>{escape(snapshot)}</name></domainsnapshot>", 0)


def revert(c: Any, name: str, snapshot: str) -> bool:
    """Revert to ``snapshot``; whether the domain runs after."""
    dom = c.lookupByName(name)
    dom.revertToSnapshot(dom.snapshotLookupByName(snapshot, 0), 0)
    return bool(dom.isActive())
