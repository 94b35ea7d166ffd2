"""Domain and volume XML: what corral reads from it and the XML it writes, without libvirt.

A domain's XML gives its name, size and disks, and, in a ``<metadata>`` element of corral's
namespace (:data:`METADATA_NS`), the pool and template it was made for: a domain without that
element is not corral's. A clone is its template's XML with what must be unique to one domain
taken out (libvirt makes a new UUID and generation ID, new MAC addresses and tap devices, a
fresh NVRAM file, a free display port) and its disks pointed at the new volumes. The metadata of other applications, and
their namespace prefixes, pass through unchanged.

Every function is pure: XML text in, values or XML text out; XML that cannot be read raises
ValueError saying what is wrong.
"""

from __future__ import annotations

import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath

__all__ = [
    "METADATA_NS", "VENDORS", "DiskSource", "DomainFacts", "VolumeFacts", "clone_domain", "cpu_vendor",
    "disk_device_xml", "disk_target_name", "new_volume_xml", "next_disk_target", "parse_domain", "parse_volume",
    "read_xml", "to_bytes", "volume_clone_xml", "volume_name_for", "volume_of", "volume_overlay_xml", "whole_number",
    "with_disk",
]

METADATA_NS = "urn:corral:vm:1"  # the namespace of corral's <metadata> element in a domain's XML
PREFIX = "corral"
ET.register_namespace(PREFIX, METADATA_NS)

VM = f"{{{METADATA_NS}}}vm"

# libvirt's size units, in bytes: powers of 1000 for
# KB/MB/..., of 1024 for K/KiB/M/MiB/...; a size without a unit is in the element's default unit
UNITS: dict[str, int] = {
    "b": 1, "bytes": 1,
    **{unit: 1024 ** power for power, letter in enumerate("kmgtpe", start=1) for unit in (letter, f"{letter}ib")},
    **{f"{letter}b": 1000 ** power for power, letter in enumerate("kmgtpe", start=1)},
}

# libvirt's <vendor> names of x86 CPU vendors -> the vendor string CPUID gives (what HostInfo speaks)
VENDORS = {"Intel": "GenuineIntel", "AMD": "AuthenticAMD", "Hygon": "HygonGenuine"}

# the elements a new <metadata> follows
HEAD_TAGS = ("name", "uuid", "genid", "title", "description")

# the bus a disk's target prefix implies
BUSES = {"vd": "virtio", "sd": "scsi", "hd": "ide"}

# what a disk's name suffix may look like (".qcow2", ".img", ".raw"), so "debian-12.1" keeps no ".1"
VOLUME_SUFFIX = re.compile(r"\.[A-Za-z][A-Za-z0-9]{0,7}")


@dataclass(frozen=True, slots=True)
class DiskSource:
    """One disk of a domain: its target and where its data is (a volume of a pool, or a file)."""

    target: str  # target dev, e.g. "vda"
    pool: str | None  # <source pool= volume=> (type="volume")
    volume: str | None
    path: str | None  # <source file=> (type="file"; <source dev=> of a block disk), or None
    format: str | None  # <driver type=> e.g. "qcow2", when given
    device: str = "disk"  # "disk", "cdrom", ...


@dataclass(frozen=True, slots=True)
class DomainFacts:
    """What corral reads from a domain's XML."""

    name: str
    uuid: str | None
    memory_mb: int  # <memory> converted from its unit (default KiB) to MiB
    vcpus: int
    disks: tuple[DiskSource, ...]  # device="disk" only (no cdrom/floppy)
    has_nvram: bool  # UEFI (<os><nvram>, <os firmware="efi">, a read-only pflash loader): undefine needs the NVRAM flag
    pool: str | None = None  # from corral's metadata, None when the domain is not corral's
    template: str | None = None
    created_at: float = 0.0
    cpu_vendor: str = ""  # from <cpu><vendor> ("Intel" -> "GenuineIntel", "AMD" -> "AuthenticAMD")
    cpu_model: str = ""  # <cpu><model>
    cpu_flags: frozenset[str] = frozenset()  # <cpu><feature policy="require"|"force" name=...>


@dataclass(frozen=True, slots=True)
class VolumeFacts:
    """What corral reads from a storage volume's XML."""

    name: str
    path: str  # "" when the XML names none
    capacity_bytes: int
    format: str | None


# --- reading ---------------------------------------------------------------------------------------------


def read_xml(xml: str, what: str, root_tag: str) -> ET.Element:
    """The root element of ``xml``, which must be a ``<root_tag>``; keeps the document's namespace
    prefixes for writing it back (see :func:`keep_prefixes`)."""
    try:
        if "xmlns:" in xml:
            keep_prefixes(xml)
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise ValueError(f"{what} XML is not well-formed: {exc}") from None
    if root.tag != root_tag:
        raise ValueError(f"{what} XML has <{root.tag}> at its root, not <{root_tag}>")
    return root


def keep_prefixes(xml: str) -> None:
    """Register the namespace prefixes ``xml`` declares, so that writing it keeps them (ElementTree
    otherwise names them ns0, ns1...). corral's own prefix, and names ElementTree keeps for
    itself, are left alone: a clash costs a renamed prefix, never a wrong namespace."""
    for _event, (prefix, uri) in ET.iterparse(io.StringIO(xml), events=("start-ns",)):
        if not prefix or prefix == PREFIX or uri == METADATA_NS:
            continue
        try:
            ET.register_namespace(prefix, uri)
        except ValueError:  # ns0-like prefixes are ElementTree's own
            continue


def to_bytes(text: str | None, unit: str | None, default_unit: str, what: str) -> int:
    """A libvirt size (``<memory unit='KiB'>4194304</memory>``) in bytes."""
    if text is None or not text.strip():
        raise ValueError(f"{what} has no value")
    try:
        number = int(text.strip())
    except ValueError:
        raise ValueError(f"{what} is not a whole number: {text.strip()!r}") from None
    factor = UNITS.get((unit or default_unit).lower())
    if factor is None:
        raise ValueError(f"{what} has an unknown unit {unit!r}")
    if number < 0:
        raise ValueError(f"{what} is negative: {number}")
    return number * factor


def whole_number(text: str | None, what: str, default: int) -> int:
    if text is None or not text.strip():
        return default
    try:
        return int(text.strip())
    except ValueError:
        raise ValueError(f"{what} is not a whole number: {text.strip()!r}") from None


def cpu_vendor(name: str) -> str:
    """The CPUID vendor string of a libvirt ``<vendor>`` ("Intel" -> "GenuineIntel"); other names as given."""
    name = name.strip()
    return VENDORS.get(name, name)


def disk_source(disk: ET.Element) -> DiskSource:
    source = disk.find("source")
    attrs = source.attrib if source is not None else {}
    driver = disk.find("driver")
    target = disk.find("target")
    return DiskSource(
        target=target.get("dev", "") if target is not None else "",
        pool=attrs.get("pool"),
        volume=attrs.get("volume"),
        path=attrs.get("file") or attrs.get("dev"),
        format=driver.get("type") if driver is not None else None,
        device=disk.get("device", "disk"),
    )


def uefi(root: ET.Element) -> bool:
    """Whether the domain boots UEFI and so has (or will have once started) an NVRAM file."""
    os_element = root.find("os")
    if os_element is None:
        return False
    loader = os_element.find("loader")
    return os_element.find("nvram") is not None or os_element.get("firmware") == "efi" or \
        (loader is not None and loader.get("type") == "pflash" and loader.get("readonly") == "yes")


def parse_domain(xml: str) -> DomainFacts:
    """The facts of a domain's XML (as ``virDomainGetXMLDesc`` gives it)."""
    root = read_xml(xml, "domain", "domain")
    name = (root.findtext("name") or "").strip()
    if not name:
        raise ValueError("domain XML has no <name>")
    memory = root.find("memory")
    if memory is None:
        memory = root.find("currentMemory")
    memory_mb = 0 if memory is None else \
        to_bytes(memory.text, memory.get("unit"), "KiB", f"<memory> of domain {name!r}") // 2 ** 20
    disks = tuple(disk_source(disk) for disk in root.iterfind("devices/disk") if disk.get("device", "disk") == "disk")
    pool = template = None
    created = 0.0
    mine = root.find(f"metadata/{VM}")
    if mine is not None:
        pool = (mine.findtext(f"{{{METADATA_NS}}}pool") or "").strip() or None
        template = (mine.findtext(f"{{{METADATA_NS}}}template") or "").strip() or None
        created_text = (mine.findtext(f"{{{METADATA_NS}}}created") or "").strip()
        try:
            created = float(created_text) if created_text else 0.0
        except ValueError:
            raise ValueError(f"corral's <created> of domain {name!r} is not a time: {created_text!r}") from None
    cpu = root.find("cpu")
    vendor = model = ""
    flags: frozenset[str] = frozenset()
    if cpu is not None:
        vendor = cpu_vendor(cpu.findtext("vendor") or "")
        model = (cpu.findtext("model") or "").strip()
        flags = frozenset(f.get("name", "") for f in cpu.iterfind("feature")
                          if f.get("policy", "require") in ("require", "force") and f.get("name"))
    return DomainFacts(
        name=name,
        uuid=(root.findtext("uuid") or "").strip() or None,
        memory_mb=memory_mb,
        vcpus=whole_number(root.findtext("vcpu"), f"<vcpu> of domain {name!r}", 1),
        disks=disks,
        has_nvram=uefi(root),
        pool=pool,
        template=template,
        created_at=created,
        cpu_vendor=vendor,
        cpu_model=model,
        cpu_flags=flags,
    )


def parse_volume(xml: str) -> VolumeFacts:
    """The facts of a storage volume's XML (as ``virStorageVolGetXMLDesc`` gives it)."""
    root = read_xml(xml, "volume", "volume")
    name = (root.findtext("name") or "").strip()
    if not name:
        raise ValueError("volume XML has no <name>")
    capacity = root.find("capacity")
    fmt = root.find("target/format")
    return VolumeFacts(
        name=name,
        path=(root.findtext("target/path") or "").strip(),
        capacity_bytes=0 if capacity is None else
        to_bytes(capacity.text, capacity.get("unit"), "bytes", f"<capacity> of volume {name!r}"),
        format=fmt.get("type") if fmt is not None else None,
    )


# --- disks -----------------------------------------------------------------------------------------------


def disk_target_name(index: int) -> str:
    """The virtio disk name of a disk index as libvirt counts them: 0 -> vda, 25 -> vdz, 26 -> vdaa."""
    if index < 0:
        raise ValueError(f"a disk index is not negative: {index}")
    letters = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        letters = chr(ord("a") + rest) + letters
    return "vd" + letters


def used_targets(root: ET.Element) -> set[str]:
    return {target.get("dev", "") for target in root.iterfind("devices/disk/target")}


def next_disk_target(xml: str) -> str:
    """The first virtio disk name the domain does not use (vda used -> "vdb"); a gap is reused."""
    used = used_targets(read_xml(xml, "domain", "domain"))
    index = 0
    while disk_target_name(index) in used:
        index += 1
    return disk_target_name(index)


def set_source(disk: ET.Element, source: DiskSource) -> None:
    """Point ``disk`` at ``source``: its type and ``<source>`` (a volume of a pool, else a file), its
    driver's format when ``source`` gives one; a ``<backingStore>`` of the old source goes."""
    if source.pool and source.volume:
        kind, attrs = "volume", {"pool": source.pool, "volume": source.volume}
    elif source.path:
        kind, attrs = "file", {"file": source.path}
    else:
        raise ValueError(f"the new source of disk {source.target!r} names neither a pool's volume nor a file")
    disk.set("type", kind)
    for old in disk.findall("backingStore"):
        disk.remove(old)
    element = ET.Element("source", attrs)
    current = disk.find("source")
    if current is None:
        target = disk.find("target")
        disk.insert(list(disk).index(target) if target is not None else len(disk), element)
    else:
        element.tail = current.tail
        disk.insert(list(disk).index(current), element)
        disk.remove(current)
    if source.format:
        driver = disk.find("driver")
        if driver is None:
            driver = ET.Element("driver")
            disk.insert(0, driver)
        driver.set("type", source.format)


def disk_element(target: str, source: DiskSource) -> ET.Element:
    disk = ET.Element("disk", {"type": "file", "device": source.device})
    target_attrs = {"dev": target}
    bus = BUSES.get(target[:2])
    if bus:
        target_attrs["bus"] = bus
    ET.SubElement(disk, "target", target_attrs)
    set_source(disk, source)
    return disk


def disk_device_xml(target: str, source: DiskSource) -> str:
    """A ``<disk>`` element for ``virDomainAttachDeviceFlags``: ``source`` as ``target`` (its bus
    from the name: vd virtio, sd scsi, hd ide)."""
    return ET.tostring(disk_element(target, source), encoding="unicode")


def write(root: ET.Element) -> str:
    """The XML text of a domain, indented as libvirt writes it."""
    ET.indent(root, "  ")
    return ET.tostring(root, encoding="unicode")


def with_disk(xml: str, target: str, source: DiskSource) -> str:
    """The domain's XML with ``source`` appended to its ``<devices>`` as ``target`` (for drivers that
    cannot plug a disk into a defined domain)."""
    root = read_xml(xml, "domain", "domain")
    if target in used_targets(root):
        raise ValueError(f"domain {root.findtext('name')!r} already has a disk {target!r}")
    devices = root.find("devices")
    if devices is None:
        devices = ET.SubElement(root, "devices")
    devices.append(disk_element(target, source))
    return write(root)


# --- cloning ---------------------------------------------------------------------------------------------


def place_metadata(root: ET.Element) -> ET.Element:
    """The domain's ``<metadata>``, made after its name, UUID, title and description when it has none."""
    metadata = root.find("metadata")
    if metadata is None:
        heads = [i for i, child in enumerate(root) if child.tag in HEAD_TAGS]
        metadata = ET.Element("metadata")
        root.insert(heads[-1] + 1 if heads else 0, metadata)
    return metadata


def set_metadata(root: ET.Element, *, pool: str, template: str, created_at: float) -> None:
    metadata = place_metadata(root)
    for old in metadata.findall(VM):
        metadata.remove(old)
    mine = ET.SubElement(metadata, VM)
    for tag, value in (("pool", pool), ("template", template), ("created", repr(float(created_at)))):
        ET.SubElement(mine, f"{{{METADATA_NS}}}{tag}").text = value


def free_graphics_ports(root: ET.Element) -> None:
    """A display's fixed ports go (they would clash with the template's); libvirt picks free ones."""
    for graphics in root.iterfind("devices/graphics"):
        fixed = any(graphics.get(attr, "-1") not in ("-1", "0") for attr in ("port", "tlsPort"))
        for attr in ("port", "tlsPort"):
            graphics.attrib.pop(attr, None)
        if graphics.get("websocket", "-1") != "-1":
            graphics.set("websocket", "-1")
        if fixed:
            graphics.set("autoport", "yes")


def clone_domain(template_xml: str, *, name: str, disks: Mapping[str, DiskSource], pool: str, template: str,
                 created_at: float) -> str:
    """The template's XML made into a new domain: new <name>; <uuid> removed (libvirt makes one);
    the id attribute of <domain> removed; every <mac> of an <interface> removed (libvirt makes new ones);
    each disk whose target dev is a key of ``disks`` gets that source (type volume or file, and its
    driver type when given); an <nvram> path under <os> removed (libvirt makes a fresh one from the
    template); <graphics> autoport kept but a fixed port removed; corral's metadata set:
    <metadata><corral:vm xmlns:corral="urn:corral:vm:1"><pool>…</pool><template>…</template>
    <created>…</created></corral:vm></metadata> (replacing any corral metadata of the template,
    keeping other apps' metadata).

    Also made afresh by libvirt: a fixed <genid> (emptied), the UUID of <sysinfo> (removed: libvirt
    would take it for the clone's), an interface's <target> (the host's tap device name). A key of
    ``disks`` that names no disk of the template is a ValueError."""
    if not name.strip():
        raise ValueError("a clone needs a name")
    root = read_xml(template_xml, "template's domain", "domain")
    root.attrib.pop("id", None)
    name_element = root.find("name")
    if name_element is None:
        name_element = ET.Element("name")
        root.insert(0, name_element)
    name_element.text = name
    for uuid in root.findall("uuid"):
        root.remove(uuid)
    for genid in root.findall("genid"):
        genid.text = None  # empty: libvirt makes one
    for system in root.iterfind("sysinfo/system"):
        for entry in system.findall("entry[@name='uuid']"):  # libvirt would take it for the clone's UUID
            system.remove(entry)
    for interface in root.iterfind("devices/interface"):
        for element in interface.findall("mac") + interface.findall("target"):  # the MAC and the host's tap name
            interface.remove(element)
    found = set()
    for disk in root.iterfind("devices/disk"):
        target = disk.find("target")
        dev = target.get("dev", "") if target is not None else ""
        if dev in disks:
            set_source(disk, disks[dev])
            found.add(dev)
    missing = sorted(set(disks) - found)
    if missing:
        raise ValueError(f"template {template!r} has no disk {', '.join(missing)}")
    os_element = root.find("os")
    if os_element is not None:
        for nvram in os_element.findall("nvram"):
            nvram.text = None
            if not nvram.attrib and not len(nvram):
                os_element.remove(nvram)
    free_graphics_ports(root)
    set_metadata(root, pool=pool, template=template, created_at=created_at)
    return write(root)


# --- volumes ---------------------------------------------------------------------------------------------


def check_volume(name: str, capacity_bytes: int) -> None:
    if not name or "/" in name:
        raise ValueError(f"{name!r} is not a volume name (it must be non-empty, without '/')")
    if capacity_bytes < 0:
        raise ValueError(f"volume {name!r}: a capacity is not negative ({capacity_bytes})")


def volume_element(name: str, capacity_bytes: int, fmt: str | None) -> ET.Element:
    check_volume(name, capacity_bytes)
    volume = ET.Element("volume")
    ET.SubElement(volume, "name").text = name
    ET.SubElement(volume, "capacity", {"unit": "bytes"}).text = str(capacity_bytes)
    if fmt:
        ET.SubElement(ET.SubElement(volume, "target"), "format", {"type": fmt})
    return volume


def volume_clone_xml(name: str, capacity_bytes: int, fmt: str | None) -> str:
    """A volume for ``virStorageVolCreateXMLFrom``: a full copy named ``name`` (format ``fmt``,
    when given; else the source's)."""
    return ET.tostring(volume_element(name, capacity_bytes, fmt), encoding="unicode")


def volume_overlay_xml(name: str, capacity_bytes: int, backing_path: str, backing_format: str | None) -> str:
    """A qcow2 volume over ``backing_path`` (a linked clone: its writes stay in the overlay)."""
    if not backing_path:
        raise ValueError(f"volume {name!r}: an overlay needs the path of its backing volume")
    volume = volume_element(name, capacity_bytes, "qcow2")
    backing = ET.SubElement(volume, "backingStore")
    ET.SubElement(backing, "path").text = backing_path
    if backing_format:
        ET.SubElement(backing, "format", {"type": backing_format})
    return ET.tostring(volume, encoding="unicode")


def new_volume_xml(name: str, capacity_bytes: int, fmt: str = "qcow2") -> str:
    """An empty volume of ``capacity_bytes`` (allocated as it is written)."""
    volume = volume_element(name, capacity_bytes, fmt)
    allocation = ET.Element("allocation", {"unit": "bytes"})
    allocation.text = "0"
    volume.insert(2, allocation)
    return ET.tostring(volume, encoding="unicode")


def volume_name_for(vm: str, target: str, template_volume: str) -> str:
    """The name of a VM's volume for disk ``target``, with the template volume's suffix:
    ("pool-abc", "vda", "debian.qcow2") -> "pool-abc-vda.qcow2"."""
    suffix = PurePosixPath(template_volume).suffix
    return f"{vm}-{target}{suffix if VOLUME_SUFFIX.fullmatch(suffix) else ''}"


def volume_of(vm: str, volume: str) -> bool:
    """Whether ``volume`` is named as a disk of ``vm`` is (:func:`volume_name_for`): "pool-abc-vda.qcow2"
    is pool-abc's, "pool-abc-2-vda.qcow2" is not (it is pool-abc-2's)."""
    return re.fullmatch(rf"{re.escape(vm)}-[A-Za-z0-9_]+({VOLUME_SUFFIX.pattern})?", volume) is not None
