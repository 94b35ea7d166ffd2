"""Making VMs from a template on one host: what runs on the host's worker thread for a create.

A template is a domain defined on the host (read with its inactive XML) or a domain XML file,
and the volumes of its disks (:func:`read_template`, once per connection). A create call is one
pass (:func:`create_all`): per VM its disks are cloned (``createXMLFrom``, or a qcow2 overlay
on the template's volume for a linked clone), the template's XML is made into the new domain
(``domxml.clone_domain``), and the domain is defined and started. Each storage pool and
template volume is looked up once per call (:class:`Lookups`). A VM that fails is undone; a
lost connection fails the VMs not yet made, retryably, instead of trying each.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import libvirt

from corral.domain.models import VmSpec
from corral.providers.base import Cause, CreateResult
from corral.providers.libvirt.domxml import (
    DiskSource,
    DomainFacts,
    VolumeFacts,
    clone_domain,
    parse_domain,
    parse_volume,
    volume_clone_xml,
    volume_name_for,
    volume_overlay_xml,
)
from corral.providers.libvirt.errors import Fault, classify
from corral.providers.libvirt.settings import LibvirtPool

__all__ = ["UNDEFINE", "Lookups", "Made", "Template", "create_all", "read_template", "undo"]

#: undefine a domain with what libvirt keeps beside it (NVRAM is added for UEFI domains)
UNDEFINE = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA


@dataclass(slots=True)
class Template:
    """A template as one host has it: its XML, what it asks for, and its disks' volumes."""

    xml: str
    facts: DomainFacts
    volumes: dict[str, tuple[str, VolumeFacts]] = field(default_factory=dict)  # target -> (storage pool, volume)


class Made(NamedTuple):
    """The outcome of one VM of a create call; ``uuid`` and ``xml`` of a VM that was made."""

    result: CreateResult
    uuid: str | None = None
    xml: str | None = None


class Lookups:
    """One create call's storage pools and template volumes, each looked up once."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._pools: dict[str, Any] = {}
        self._volumes: dict[tuple[str, str], Any] = {}

    def pool(self, name: str) -> Any:
        if name not in self._pools:
            self._pools[name] = self.conn.storagePoolLookupByName(name)
        return self._pools[name]

    def volume(self, pool: str, name: str) -> Any:
        if (pool, name) not in self._volumes:
            self._volumes[pool, name] = self.pool(pool).storageVolLookupByName(name)
        return self._volumes[pool, name]


def read_template(c: Any, template: str, xml_text: str | None) -> Template:
    """The template ``template`` on the host of connection ``c``: the domain of that name, or
    ``xml_text`` (a domain XML file's text); and the volumes of its disks. Raises
    ``libvirt.libvirtError``, and ``ValueError`` for XML corral cannot read."""
    xml = xml_text if xml_text is not None else c.lookupByName(template).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    facts = parse_domain(xml)
    volumes: dict[str, tuple[str, VolumeFacts]] = {}
    for disk in facts.disks:
        if disk.pool and disk.volume:
            vol = c.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume)
            pool = disk.pool
        elif disk.path:
            vol = c.storageVolLookupByPath(disk.path)
            pool = vol.storagePoolLookupByVolume().name()
        else:
            continue
        volumes[disk.target] = (pool, parse_volume(vol.XMLDesc(0)))
    return Template(xml, facts, volumes)


def create_all(c: Lookups, host: str, specs: list[VmSpec], templates: Mapping[str, Template],
               pools: Mapping[str, LibvirtPool], now: float) -> list[Made]:
    """Every VM of one create call, one after the other on the host's connection."""
    out: list[Made] = []
    lost: str | None = None
    for spec in specs:
        if lost is not None:
            out.append(Made(CreateResult(spec.name, False, lost, cause=Cause.HOST)))
            continue
        pool = pools.get(spec.pool) or LibvirtPool(spec.pool, spec.template)
        made, fault = _create_one(c, host, spec, templates[spec.template], pool, now)
        out.append(made)
        if fault is not None and fault.connection_lost:
            lost = fault.message
    return out


def _create_one(c: Lookups, host: str, spec: VmSpec, template: Template, pool: LibvirtPool,
                now: float) -> tuple[Made, Fault | None]:
    """One VM: clone its disks, define it, start it; undone on failure."""
    made: list[Any] = []
    dom: Any = None
    stage = "clone disk"
    try:
        disks: dict[str, DiskSource] = {}
        for target, (source_pool, volume) in template.volumes.items():
            target_pool = pool.storage_pool or source_pool
            name = volume_name_for(spec.name, target, volume.name)
            storage = c.pool(target_pool)
            if pool.linked_clone:
                made.append(storage.createXML(volume_overlay_xml(name, volume.capacity_bytes, volume.path,
                                                                 volume.format), 0))
                fmt: str | None = "qcow2"
            else:
                original = c.volume(source_pool, volume.name)
                made.append(storage.createXMLFrom(volume_clone_xml(name, volume.capacity_bytes, volume.format),
                                                  original, 0))
                fmt = volume.format
            disks[target] = DiskSource(target=target, pool=target_pool, volume=name, path=None, format=fmt)
        xml = clone_domain(template.xml, name=spec.name, disks=disks, pool=spec.pool, template=spec.template,
                           created_at=now)
        stage = "define"
        dom = c.conn.defineXML(xml)
        stage = "start"
        dom.create()
        return Made(CreateResult(spec.name, True), dom.UUIDString(), xml), None
    except libvirt.libvirtError as exc:
        fault = classify(exc.get_error_code() or 0, exc.get_error_message() or str(exc),
                         operation=stage, subject=spec.name, host=host)
        if not fault.connection_lost:  # nothing can be undone on a connection that is gone; a reconcile finds it
            undo(dom, made)
        return Made(CreateResult(spec.name, False, fault.message, retryable=fault.retryable, cause=fault.cause)), fault
    except Exception as exc:  # XML corral could not make from the template: this VM fails, the others go on
        undo(dom, made)
        message = f"libvirt host {host!r}: cannot {stage} {spec.name!r}: {exc}"
        return Made(CreateResult(spec.name, False, message, retryable=False)), None


def undo(dom: Any, volumes: list[Any]) -> None:
    """Remove what a failed create made (best effort: a reconcile finds what is left)."""
    if dom is not None:
        try:
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(UNDEFINE)
        except libvirt.libvirtError:
            pass
    for vol in volumes:
        try:
            vol.delete(0)
        except libvirt.libvirtError:
            pass
