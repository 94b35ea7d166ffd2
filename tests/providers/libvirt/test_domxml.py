"""Domain and volume XML: what corral reads from it and the XML it writes for clones, disks and volumes."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import Any

import pytest

from corral.providers.libvirt.domxml import (
    METADATA_NS,
    DiskSource,
    VolumeFacts,
    clone_domain,
    disk_device_xml,
    disk_target_name,
    new_volume_xml,
    next_disk_target,
    parse_domain,
    parse_volume,
    volume_clone_xml,
    volume_name_for,
    volume_of,
    volume_overlay_xml,
    with_disk,
)

from .samples import KVM_DOMAIN, TEST_DOMAIN, VOLUME

CORRAL = f"{{{METADATA_NS}}}"
LIBOSINFO = "{http://libosinfo.org/xmlns/libvirt/domain/1.0}"
NEW_VDA = DiskSource("vda", "default", "p-abc-vda.qcow2", None, "qcow2")
FILE_VDA = DiskSource("vda", None, None, "/x/p-def.img", "raw")


def domain(body: str, head: str = "<domain type='test'>") -> str:
    return f"{head}<name>d</name>{body}</domain>"


def disk(target: str, device: str = "disk") -> str:
    return f"<disk type='file' device='{device}'><source file='/i/{target}.img'/><target dev='{target}'/></disk>"


# --- parse_domain ------------------------------------------------------------------------------------------

KVM_VDA = DiskSource("vda", "default", "debian12.qcow2", None, "qcow2")
TEST_VDA = DiskSource("vda", None, None, "/default-pool/tmpl.img", None)


@pytest.mark.parametrize(("xml", "field", "expected"), [
    (KVM_DOMAIN, "name", "debian12"),
    (KVM_DOMAIN, "uuid", "2f3c1a5e-7f0e-4a1b-9c55-0d7c2b1e9a10"),
    (KVM_DOMAIN, "memory_mb", 4096),
    (KVM_DOMAIN, "vcpus", 2),
    (KVM_DOMAIN, "disks", (KVM_VDA,)),  # the cdrom is not a disk
    (KVM_DOMAIN, "has_nvram", True),
    (KVM_DOMAIN, "pool", None),  # other applications' metadata only: not corral's
    (KVM_DOMAIN, "template", None),
    (KVM_DOMAIN, "created_at", 0.0),
    (KVM_DOMAIN, "cpu_vendor", "GenuineIntel"),
    (KVM_DOMAIN, "cpu_model", "Skylake-Client-IBRS"),
    (KVM_DOMAIN, "cpu_flags", frozenset({"avx2", "aes", "vmx"})),  # require, force, and no policy (require)
    (TEST_DOMAIN, "name", "tmpl"),
    (TEST_DOMAIN, "memory_mb", 1024),  # no unit: KiB
    (TEST_DOMAIN, "vcpus", 1),
    (TEST_DOMAIN, "disks", (TEST_VDA,)),
    (TEST_DOMAIN, "has_nvram", False),
    (TEST_DOMAIN, "cpu_vendor", ""),
    (TEST_DOMAIN, "cpu_flags", frozenset()),
    (domain(""), "uuid", None),
    (domain(""), "memory_mb", 0),
    (domain(""), "vcpus", 1),
    (domain(""), "disks", ()),
    (domain(""), "has_nvram", False),
    (domain("<os><type>hvm</type></os>"), "has_nvram", False),
    (domain("<os firmware='efi'><type>hvm</type></os>"), "has_nvram", True),  # libvirt picks the NVRAM at start
    (domain("<os><loader readonly='yes' type='pflash'>/c.fd</loader></os>"), "has_nvram", True),
    (domain("<os><loader readonly='no' type='pflash'>/c.fd</loader></os>"), "has_nvram", False),  # writable: none
    (domain("<os><loader type='rom'>/bios.bin</loader></os>"), "has_nvram", False),
    (domain("<currentMemory unit='MiB'>300</currentMemory>"), "memory_mb", 300),
    (domain("<devices><disk type='block' device='disk'><source dev='/dev/vg/a'/><target dev='sda'/></disk>"
            "</devices>"), "disks", (DiskSource("sda", None, None, "/dev/vg/a", None),)),
    (domain("<devices><disk type='network' device='disk'><driver type='raw'/><target dev='vdb'/></disk>"
            "</devices>"), "disks", (DiskSource("vdb", None, None, None, "raw"),)),
    (domain("<devices>" + disk("vda") + disk("hdc", "cdrom") + disk("fda", "floppy") + disk("vdb") + "</devices>"),
     "disks", (DiskSource("vda", None, None, "/i/vda.img", None), DiskSource("vdb", None, None, "/i/vdb.img", None))),
    (domain("<cpu><vendor>AMD</vendor><model>EPYC</model></cpu>"), "cpu_vendor", "AuthenticAMD"),
    (domain("<cpu><vendor>Hygon</vendor></cpu>"), "cpu_vendor", "HygonGenuine"),
    (domain("<cpu><vendor>Zhaoxin</vendor></cpu>"), "cpu_vendor", "Zhaoxin"),
    (domain("<cpu mode='host-passthrough'/>"), "cpu_model", ""),
    (domain("<cpu><feature policy='disable' name='x'/><feature policy='optional' name='y'/></cpu>"), "cpu_flags",
     frozenset()),
    (domain(f"<metadata><c:vm xmlns:c='{METADATA_NS}'><c:pool>p</c:pool><c:template>t</c:template>"
            "<c:created>1700000000.25</c:created></c:vm></metadata>"), "created_at", 1700000000.25),
    (domain(f"<metadata><c:vm xmlns:c='{METADATA_NS}'><c:pool>p</c:pool></c:vm></metadata>"), "pool", "p"),
    (domain(f"<metadata><c:vm xmlns:c='{METADATA_NS}'><c:pool>p</c:pool></c:vm></metadata>"), "created_at", 0.0),
    (domain("<metadata><vm><pool>p</pool></vm></metadata>"), "pool", None),  # not corral's namespace
    ("<?xml version='1.0' encoding='UTF-8'?>\n" + domain(""), "name", "d"),
])
def test_parse_domain(xml: str, field: str, expected: Any) -> None:
    assert getattr(parse_domain(xml), field) == expected


@pytest.mark.parametrize(("memory", "mib"), [
    ("<memory unit='KiB'>4194304</memory>", 4096),
    ("<memory>1048576</memory>", 1024),
    ("<memory unit='k'>2048</memory>", 2),
    ("<memory unit='MiB'>512</memory>", 512),
    ("<memory unit='M'>512</memory>", 512),
    ("<memory unit='MB'>1000</memory>", 953),  # 10**9 bytes
    ("<memory unit='GiB'>2</memory>", 2048),
    ("<memory unit='G'>1</memory>", 1024),
    ("<memory unit='GB'>1</memory>", 953),
    ("<memory unit='TiB'>1</memory>", 1048576),
    ("<memory unit='bytes'>1073741824</memory>", 1024),
    ("<memory unit='b'>1048575</memory>", 0),
    ("<memory unit='KiB'> 1024 </memory>", 1),
])
def test_memory_units(memory: str, mib: int) -> None:
    assert parse_domain(domain(memory)).memory_mb == mib


@pytest.mark.parametrize(("xml", "message"), [
    ("<domain><name>a</name>", "domain XML is not well-formed"),
    ("", "domain XML is not well-formed"),
    ("<volume><name>a</name></volume>", "domain XML has <volume> at its root, not <domain>"),
    ("<domain type='test'><uuid>u</uuid></domain>", "domain XML has no <name>"),
    ("<domain type='test'><name>  </name></domain>", "domain XML has no <name>"),
    (domain("<memory>lots</memory>"), "<memory> of domain 'd' is not a whole number: 'lots'"),
    (domain("<memory unit='KiB'></memory>"), "<memory> of domain 'd' has no value"),
    (domain("<memory unit='quarts'>3</memory>"), "<memory> of domain 'd' has an unknown unit 'quarts'"),
    (domain("<memory>-5</memory>"), "<memory> of domain 'd' is negative"),
    (domain("<vcpu>two</vcpu>"), "<vcpu> of domain 'd' is not a whole number: 'two'"),
    (domain(f"<metadata><c:vm xmlns:c='{METADATA_NS}'><c:created>noon</c:created></c:vm></metadata>"),
     "corral's <created> of domain 'd' is not a time: 'noon'"),
])
def test_parse_domain_refuses(xml: str, message: str) -> None:
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(")):
        parse_domain(xml)


# --- clone_domain ------------------------------------------------------------------------------------------

KVM_CLONE = clone_domain(KVM_DOMAIN, name="p-abc", disks={"vda": NEW_VDA}, pool="p", template="debian12",
                         created_at=1700000000.5)
TEST_CLONE = clone_domain(TEST_DOMAIN, name="p-def", disks={"vda": FILE_VDA}, pool="q", template="tmpl", created_at=3)


def tree(xml: str) -> ET.Element:
    return ET.fromstring(xml)


def attrs(path: str) -> Callable[[ET.Element], Any]:
    def look(root: ET.Element) -> Any:
        found = root.find(path)
        return None if found is None else dict(found.attrib)
    return look


def text(path: str) -> Callable[[ET.Element], Any]:
    return lambda root: root.findtext(path)


def count(path: str) -> Callable[[ET.Element], int]:
    return lambda root: len(root.findall(path))


@pytest.mark.parametrize(("xml", "look", "expected"), [
    (KVM_CLONE, text("name"), "p-abc"),
    (KVM_CLONE, count("uuid"), 0),
    (KVM_CLONE, lambda root: root.attrib, {"type": "kvm"}),  # id= gone
    (KVM_CLONE, count("devices/interface"), 2),
    (KVM_CLONE, count("devices/interface/mac"), 0),
    (KVM_CLONE, attrs("devices/interface[2]/source"), {"bridge": "br0"}),
    (KVM_CLONE, attrs("devices/disk[1]"), {"type": "volume", "device": "disk"}),
    (KVM_CLONE, attrs("devices/disk[1]/source"), {"pool": "default", "volume": "p-abc-vda.qcow2"}),
    (KVM_CLONE, attrs("devices/disk[1]/driver"), {"name": "qemu", "type": "qcow2", "discard": "unmap"}),
    (KVM_CLONE, count("devices/disk[1]/backingStore"), 0),
    (KVM_CLONE, lambda root: [c.tag for c in root.find("devices/disk[1]")], ["driver", "source", "target", "address"]),
    (KVM_CLONE, attrs("devices/disk[2]/source"), {"file": "/var/lib/libvirt/images/debian-12.iso"}),  # cdrom kept
    (KVM_CLONE, attrs("os/nvram"), {"template": "/usr/share/OVMF/OVMF_VARS_4M.fd"}),
    (KVM_CLONE, text("os/nvram"), ""),  # the template's NVRAM path is gone
    (KVM_CLONE, text("os/loader"), "/usr/share/OVMF/OVMF_CODE_4M.fd"),
    (KVM_CLONE, attrs("devices/graphics"), {"type": "vnc", "autoport": "yes", "listen": "127.0.0.1"}),
    (KVM_CLONE, text(f"metadata/{CORRAL}vm/{CORRAL}pool"), "p"),
    (KVM_CLONE, text(f"metadata/{CORRAL}vm/{CORRAL}template"), "debian12"),
    (KVM_CLONE, text(f"metadata/{CORRAL}vm/{CORRAL}created"), "1700000000.5"),
    (KVM_CLONE, attrs(f"metadata/{LIBOSINFO}libosinfo/{LIBOSINFO}os"), {"id": "http://debian.org/debian/12"}),
    (KVM_CLONE, attrs("{http://libvirt.org/schemas/domain/qemu/1.0}commandline/"
                      "{http://libvirt.org/schemas/domain/qemu/1.0}arg"), {"value": "-no-user-config"}),
    (KVM_CLONE, text("title"), "Debian 12 template"),
    (KVM_CLONE, text("cpu/model"), "Skylake-Client-IBRS"),
    (TEST_CLONE, lambda root: root.attrib, {"type": "test"}),
    (TEST_CLONE, text("name"), "p-def"),
    (TEST_CLONE, attrs("devices/disk"), {"type": "file", "device": "disk"}),
    (TEST_CLONE, attrs("devices/disk/source"), {"file": "/x/p-def.img"}),
    (TEST_CLONE, attrs("devices/disk/driver"), {"type": "raw"}),  # made: the template's disk had none
    (TEST_CLONE, count("devices/interface/mac"), 0),
    (TEST_CLONE, lambda root: [c.tag for c in root][:3], ["name", "metadata", "memory"]),
    (TEST_CLONE, text(f"metadata/{CORRAL}vm/{CORRAL}created"), "3.0"),
])
def test_clone_domain(xml: str, look: Callable[[ET.Element], Any], expected: Any) -> None:
    assert look(tree(xml)) == expected


@pytest.mark.parametrize(("xml", "present", "absent"), [
    (KVM_CLONE, 'xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0"', "ns0"),
    (KVM_CLONE, "<libosinfo:os ", "ns1"),
    (KVM_CLONE, "<qemu:commandline>", "52:54:00"),
    (KVM_CLONE, f'xmlns:corral="{METADATA_NS}"', "debian12_VARS"),
    (KVM_CLONE, "<corral:vm>", "5905"),
    (TEST_CLONE, "<corral:pool>q</corral:pool>", "aa:bb:cc"),
])
def test_clone_keeps_prefixes(xml: str, present: str, absent: str) -> None:
    assert present in xml and absent not in xml


@pytest.mark.parametrize(("source", "field", "expected"), [
    (KVM_DOMAIN, "name", "p-abc"),
    (KVM_DOMAIN, "uuid", None),
    (KVM_DOMAIN, "pool", "p"),
    (KVM_DOMAIN, "template", "debian12"),
    (KVM_DOMAIN, "created_at", 1700000000.5),
    (KVM_DOMAIN, "disks", (NEW_VDA,)),
    (KVM_DOMAIN, "memory_mb", 4096),
    (KVM_DOMAIN, "has_nvram", True),
    (KVM_DOMAIN, "cpu_flags", frozenset({"avx2", "aes", "vmx"})),
    (TEST_DOMAIN, "disks", (DiskSource("vda", "default", "p-abc-vda.qcow2", None, "qcow2"),)),
])
def test_clone_reads_back(source: str, field: str, expected: Any) -> None:
    clone = clone_domain(source, name="p-abc", disks={"vda": NEW_VDA}, pool="p", template="debian12",
                         created_at=1700000000.5)
    assert getattr(parse_domain(clone), field) == expected


def test_clone_of_a_clone_replaces_corral_metadata_only() -> None:
    again = tree(clone_domain(KVM_CLONE, name="p2-x", disks={}, pool="p2", template="other", created_at=9.0))
    mine = again.findall(f"metadata/{CORRAL}vm")
    assert [(vm.findtext(f"{CORRAL}pool"), vm.findtext(f"{CORRAL}template")) for vm in mine] == [("p2", "other")]
    assert again.find(f"metadata/{LIBOSINFO}libosinfo") is not None
    assert again.find("devices/disk/source").attrib == {"pool": "default", "volume": "p-abc-vda.qcow2"}


SYSINFO = """<sysinfo type='smbios'><system><entry name='manufacturer'>Acme</entry>
<entry name='uuid'>2f3c1a5e-7f0e-4a1b-9c55-0d7c2b1e9a10</entry></system></sysinfo>"""


@pytest.mark.parametrize(("xml", "look", "expected"), [
    (domain("<genid>43dc0cf8-809b-4adb-9bea-a9abb5f3d90d</genid>"), text("genid"), ""),  # libvirt makes one
    (domain("<genid/>"), count("genid"), 1),
    (domain(SYSINFO), count("sysinfo/system/entry"), 1),
    (domain(SYSINFO), text("sysinfo/system/entry"), "Acme"),
    (domain("<devices><interface type='ethernet'><target dev='tap-t' managed='no'/></interface></devices>"),
     count("devices/interface/*"), 0),
    (domain("<devices><interface type='network'><source network='n'/><target dev='vnet3'/></interface></devices>"),
     attrs("devices/interface/source"), {"network": "n"}),
])
def test_clone_makes_unique_ids_afresh(xml: str, look: Callable[[ET.Element], Any], expected: Any) -> None:
    assert look(tree(clone_domain(xml, name="c", disks={}, pool="p", template="t", created_at=0))) == expected


@pytest.mark.parametrize(("os", "nvram"), [
    ("<nvram>/var/lib/libvirt/qemu/nvram/t_VARS.fd</nvram>", None),  # nothing left of it: gone
    ("<nvram template='/usr/share/OVMF/VARS.fd'>/nv/t.fd</nvram>", {"template": "/usr/share/OVMF/VARS.fd"}),
    ("<nvram template='/usr/share/OVMF/VARS.fd'/>", {"template": "/usr/share/OVMF/VARS.fd"}),
    ("", None),
])
def test_clone_nvram(os: str, nvram: dict[str, str] | None) -> None:
    xml = domain(f"<os><type>hvm</type><loader type='pflash'>/c.fd</loader>{os}</os>")
    found = tree(clone_domain(xml, name="c", disks={}, pool="p", template="t", created_at=0)).find("os/nvram")
    assert (None if found is None else (found.attrib, found.text)) == (None if nvram is None else (nvram, None))


@pytest.mark.parametrize(("graphics", "expected"), [
    ("<graphics type='vnc' port='5905' autoport='no'/>", {"type": "vnc", "autoport": "yes"}),
    ("<graphics type='vnc' port='-1' autoport='yes'/>", {"type": "vnc", "autoport": "yes"}),
    ("<graphics type='vnc' port='5900' autoport='yes' websocket='5700'/>",
     {"type": "vnc", "autoport": "yes", "websocket": "-1"}),
    ("<graphics type='spice' port='5901' tlsPort='5902' autoport='no'/>", {"type": "spice", "autoport": "yes"}),
    ("<graphics type='spice' autoport='yes'/>", {"type": "spice", "autoport": "yes"}),
    ("<graphics type='sdl' display=':0'/>", {"type": "sdl", "display": ":0"}),
])
def test_clone_graphics(graphics: str, expected: dict[str, str]) -> None:
    xml = domain(f"<devices>{graphics}</devices>")
    found = tree(clone_domain(xml, name="c", disks={}, pool="p", template="t", created_at=0)).find("devices/graphics")
    assert found is not None and found.attrib == expected


@pytest.mark.parametrize(("name", "disks", "message"), [
    ("", {}, "a clone needs a name"),
    ("c", {"vdb": NEW_VDA}, "template 'debian12' has no disk vdb"),
    ("c", {"vdz": NEW_VDA, "vdy": NEW_VDA}, "template 'debian12' has no disk vdy, vdz"),
    ("c", {"vda": DiskSource("vda", "default", None, None, "qcow2")},
     "the new source of disk 'vda' names neither a pool's volume nor a file"),
])
def test_clone_refuses(name: str, disks: dict[str, DiskSource], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message):
        clone_domain(KVM_DOMAIN, name=name, disks=disks, pool="p", template="debian12", created_at=0)


def test_clone_refuses_bad_xml() -> None:
    with pytest.raises(ValueError, match="^template's domain XML is not well-formed"):
        clone_domain("<domain>", name="c", disks={}, pool="p", template="t", created_at=0)


# --- disks -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("index", "name"), [
    (0, "vda"), (1, "vdb"), (25, "vdz"), (26, "vdaa"), (27, "vdab"), (51, "vdaz"), (52, "vdba"), (701, "vdzz"),
    (702, "vdaaa"),
])
def test_disk_target_name(index: int, name: str) -> None:
    assert disk_target_name(index) == name


def test_disk_target_name_refuses_a_negative_index() -> None:
    with pytest.raises(ValueError, match="-1"):
        disk_target_name(-1)


@pytest.mark.parametrize(("xml", "target"), [
    (KVM_DOMAIN, "vdb"),  # vda and the cdrom sda
    (TEST_DOMAIN, "vdb"),
    (domain(""), "vda"),
    (domain("<devices>" + disk("vda") + disk("vdc") + "</devices>"), "vdb"),  # a gap is free
    (domain("<devices>" + disk("sda") + disk("hda", "cdrom") + "</devices>"), "vda"),
    (domain("<devices>" + disk("vdb", "cdrom") + disk("vda") + "</devices>"), "vdc"),  # a cdrom's name is taken too
    (domain("<devices>" + "".join(disk(disk_target_name(i)) for i in range(26)) + "</devices>"), "vdaa"),
])
def test_next_disk_target(xml: str, target: str) -> None:
    assert next_disk_target(xml) == target


@pytest.mark.parametrize(("target", "source", "expected"), [
    ("vdb", DiskSource("vdb", "default", "p-abc-vdb.qcow2", None, "qcow2"),
     '<disk type="volume" device="disk"><driver type="qcow2" /><source pool="default" volume="p-abc-vdb.qcow2" />'
     '<target dev="vdb" bus="virtio" /></disk>'),
    ("sdb", DiskSource("sdb", None, None, "/img/x.raw", "raw"),
     '<disk type="file" device="disk"><driver type="raw" /><source file="/img/x.raw" />'
     '<target dev="sdb" bus="scsi" /></disk>'),
    ("hdc", DiskSource("hdc", None, None, "/iso/d.iso", None, device="cdrom"),
     '<disk type="file" device="cdrom"><source file="/iso/d.iso" /><target dev="hdc" bus="ide" /></disk>'),
    ("xvda", DiskSource("xvda", "p", "v", "/ignored", None),  # a volume wins over a path
     '<disk type="volume" device="disk"><source pool="p" volume="v" /><target dev="xvda" /></disk>'),
])
def test_disk_device_xml(target: str, source: DiskSource, expected: str) -> None:
    assert disk_device_xml(target, source) == expected


def test_disk_device_xml_refuses_a_source_of_nothing() -> None:
    with pytest.raises(ValueError, match="names neither a pool's volume nor a file"):
        disk_device_xml("vdb", DiskSource("vdb", None, None, None, "qcow2"))


VDB = DiskSource("vdb", "default", "p-abc-vdb.qcow2", None, "qcow2")


@pytest.mark.parametrize(("xml", "field", "expected"), [
    (KVM_DOMAIN, "disks", (KVM_VDA, VDB)),
    (TEST_DOMAIN, "disks", (TEST_VDA, VDB)),
    (domain(""), "disks", (VDB,)),  # <devices> made
    (KVM_DOMAIN, "uuid", "2f3c1a5e-7f0e-4a1b-9c55-0d7c2b1e9a10"),  # nothing else changes
    (KVM_DOMAIN, "has_nvram", True),
])
def test_with_disk(xml: str, field: str, expected: Any) -> None:
    assert getattr(parse_domain(with_disk(xml, "vdb", VDB)), field) == expected


def test_with_disk_keeps_the_rest() -> None:
    after = tree(with_disk(KVM_DOMAIN, "vdb", VDB))
    assert [c.tag for c in after.find("devices")][-2:] == ["graphics", "disk"]
    assert len(after.findall("devices/interface/mac")) == 2
    assert after.find(f"metadata/{LIBOSINFO}libosinfo") is not None


def test_with_disk_refuses_a_taken_target() -> None:
    with pytest.raises(ValueError, match="^domain 'debian12' already has a disk 'sda'"):
        with_disk(KVM_DOMAIN, "sda", VDB)


# --- volumes -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("xml", "expected"), [
    (VOLUME, VolumeFacts("debian12.qcow2", "/var/lib/libvirt/images/debian12.qcow2", 21474836480, "qcow2")),
    ("<volume><name>v</name><capacity unit='GiB'>2</capacity></volume>", VolumeFacts("v", "", 2 * 2 ** 30, None)),
    ("<volume><name>v</name><capacity>512</capacity><target><path>/p/v</path></target></volume>",
     VolumeFacts("v", "/p/v", 512, None)),
    ("<volume><name>v</name></volume>", VolumeFacts("v", "", 0, None)),
    (volume_clone_xml("c.qcow2", 10 * 2 ** 30, "qcow2"), VolumeFacts("c.qcow2", "", 10 * 2 ** 30, "qcow2")),
    (volume_clone_xml("c.img", 1000, None), VolumeFacts("c.img", "", 1000, None)),
    (volume_overlay_xml("o.qcow2", 5, "/i/base.img", "raw"), VolumeFacts("o.qcow2", "", 5, "qcow2")),
    (new_volume_xml("n.qcow2", 2 ** 30), VolumeFacts("n.qcow2", "", 2 ** 30, "qcow2")),
    (new_volume_xml("n.raw", 7, "raw"), VolumeFacts("n.raw", "", 7, "raw")),
])
def test_parse_volume(xml: str, expected: VolumeFacts) -> None:
    assert parse_volume(xml) == expected


@pytest.mark.parametrize(("xml", "look", "expected"), [
    (volume_overlay_xml("o.qcow2", 5, "/i/base.img", "raw"), text("backingStore/path"), "/i/base.img"),
    (volume_overlay_xml("o.qcow2", 5, "/i/base.img", "raw"), attrs("backingStore/format"), {"type": "raw"}),
    (volume_overlay_xml("o.qcow2", 5, "/i/base", None), attrs("backingStore/format"), None),
    (volume_clone_xml("c.qcow2", 5, "qcow2"), count("backingStore"), 0),
    (volume_clone_xml("c.qcow2", 5, "qcow2"), count("allocation"), 0),
    (volume_clone_xml("c", 5, None), count("target"), 0),  # the source's format
    (new_volume_xml("n.qcow2", 5), text("allocation"), "0"),
    (new_volume_xml("n.qcow2", 5), attrs("capacity"), {"unit": "bytes"}),
])
def test_volume_xml(xml: str, look: Callable[[ET.Element], Any], expected: Any) -> None:
    assert look(tree(xml)) == expected


@pytest.mark.parametrize(("make", "message"), [
    (lambda: volume_clone_xml("", 5, None), "'' is not a volume name"),
    (lambda: new_volume_xml("a/b", 5), "'a/b' is not a volume name"),
    (lambda: new_volume_xml("a", -1), "volume 'a': a capacity is not negative"),
    (lambda: volume_overlay_xml("o", 5, "", None), "volume 'o': an overlay needs the path of its backing volume"),
    (lambda: parse_volume("<volume><capacity>5</capacity></volume>"), "volume XML has no <name>"),
    (lambda: parse_volume("<domain><name>d</name></domain>"), "volume XML has <domain> at its root"),
    (lambda: parse_volume("<volume><name>v</name><capacity unit='x'>5</capacity></volume>"),
     "<capacity> of volume 'v' has an unknown unit 'x'"),
])
def test_volume_refuses(make: Callable[[], str], message: str) -> None:
    with pytest.raises(ValueError, match="^" + message):
        make()


@pytest.mark.parametrize(("vm", "target", "template_volume", "name"), [
    ("pool-abc", "vda", "debian.qcow2", "pool-abc-vda.qcow2"),
    ("pool-abc", "vdb", "debian.img", "pool-abc-vdb.img"),
    ("pool-abc", "vda", "debian", "pool-abc-vda"),
    ("pool-abc", "vda", "debian-12.1", "pool-abc-vda"),  # a version, not a suffix
    ("pool-abc", "vda", "debian.x86_64.qcow2", "pool-abc-vda.qcow2"),
    ("pool-abc", "vda", "/var/lib/libvirt/images/debian.raw", "pool-abc-vda.raw"),
    ("pool-abc", "vda", ".hidden", "pool-abc-vda"),
])
def test_volume_name_for(vm: str, target: str, template_volume: str, name: str) -> None:
    assert volume_name_for(vm, target, template_volume) == name
    assert volume_of(vm, name)


@pytest.mark.parametrize(("vm", "volume", "its"), [
    ("half", "half-vda.qcow2", True),
    ("half", "half-vdb", True),
    ("half", "half-sdaa.img", True),
    ("half", "half-2-vda.qcow2", False),  # VM half-2's
    ("half", "half-vda-vda.qcow2", False),  # VM half-vda's
    ("half", "half-.qcow2", False),
    ("half", "halfway-vda.qcow2", False),
    ("half", "other-half-vda.qcow2", False),
    ("a.b", "axb-vda.qcow2", False),  # the name is matched as it is written
    ("a.b", "a.b-vda.qcow2", True),
])
def test_a_volume_is_a_vms_when_named_as_its_disks_are(vm: str, volume: str, its: bool) -> None:
    assert volume_of(vm, volume) is its
