"""The settings of ``corral bench libvirt`` and the hosts it runs on. The set-up they drive is
described in :mod:`corral.bench.libvirt`.

The hosts are files for libvirt's test driver, written by :func:`host_xml` into a temporary
directory at each run (the test driver reloads its file at every open, so each connection
starts from this text): a big KVM host with a ``default`` storage pool holding one template
volume, and one shut-off template domain using it. The template is small (64 MiB, one vCPU, a 16 MiB
volume) and the host big, so that neither placement nor the storage pool (the test driver
gives each 100 GiB) runs out of room before :data:`MAX_VMS_PER_HOST` clones.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from corral.bench.inventory_settings import OVIRT_REFRESH_S

HOSTS = 3
TEMPLATE = "bench-template"
TEMPLATE_VOLUME = f"{TEMPLATE}.qcow2"
STORAGE_POOL = "default"
TEMPLATE_MEMORY_MIB = 64
HOST_MEMORY_GIB = 1024
HOST_CORES = 64  # two threads each
HOST_MHZ = 2400
MAX_VMS_PER_HOST = 2_000
#: the template volume's size: libvirt's test driver gives a storage pool 100 GiB, and full clones count
VOLUME_MIB = 16


@dataclass
class LibvirtBenchSettings:
    vms_per_host: int = 200
    changes: int = 500  # domain changes timed to the change feed, corral and baseline each
    poll_interval: float = OVIRT_REFRESH_S  # the baseline's: seconds between its polls of every host
    poll_rounds: int = 5  # the baseline's timed changes are spread over this many poll intervals
    task_limit: int = 10

    @property
    def vms(self) -> int:
        return HOSTS * self.vms_per_host

    def check(self) -> None:
        """Raise ValueError, saying what is wrong, for settings a run cannot use."""
        if not 1 <= self.vms_per_host <= MAX_VMS_PER_HOST:
            raise ValueError(f"--vms must be between 1 and {MAX_VMS_PER_HOST:,} (VMs per host)")
        if self.changes < 1:
            raise ValueError("--changes must be at least 1")
        if not 0.01 <= self.poll_interval <= 60:
            raise ValueError("--poll-interval must be between 0.01 and 60 seconds")
        if self.poll_rounds < 1:
            raise ValueError("--poll-rounds must be at least 1")
        if not 1 <= self.task_limit <= 100:
            raise ValueError("--task-limit must be between 1 and 100")


def host_xml(index: int) -> str:
    """The test-driver file of host ``index`` (1, 2, 3 …): the node, its storage pool with the
    template's volume, and the template domain, shut off."""
    pool = f"{index:08x}-0000-4000-8000-00000000c0a1"
    domain = f"{index:08x}-0000-4000-8000-00000000d0a1"
    path = f"/var/lib/libvirt/images/{TEMPLATE_VOLUME}"
    return f"""<?xml version='1.0'?>
<node>
  <cpu>
    <mhz>{HOST_MHZ}</mhz>
    <model>x86_64</model>
    <active>{2 * HOST_CORES}</active>
    <nodes>1</nodes>
    <sockets>1</sockets>
    <cores>{HOST_CORES}</cores>
    <threads>2</threads>
  </cpu>
  <memory>{HOST_MEMORY_GIB * 1024 * 1024}</memory>
  <pool type='dir'>
    <name>{STORAGE_POOL}</name>
    <uuid>{pool}</uuid>
    <source/>
    <target><path>/var/lib/libvirt/images</path></target>
    <volume type='file'>
      <name>{escape(TEMPLATE_VOLUME)}</name>
      <capacity unit='bytes'>{VOLUME_MIB * 1024**2}</capacity>
      <allocation unit='bytes'>{VOLUME_MIB * 1024**2 // 2}</allocation>
      <target><path>{escape(path)}</path><format type='qcow2'/></target>
    </volume>
  </pool>
  <domain type='test' xmlns:test='http://libvirt.org/schemas/domain/test/1.0'>
    <name>{escape(TEMPLATE)}</name>
    <uuid>{domain}</uuid>
    <memory unit='MiB'>{TEMPLATE_MEMORY_MIB}</memory>
    <vcpu placement='static'>1</vcpu>
    <os><type>hvm</type><boot dev='hd'/></os>
    <devices>
      <disk type='volume' device='disk'>
        <driver name='qemu' type='qcow2'/>
        <source pool='{STORAGE_POOL}' volume='{escape(TEMPLATE_VOLUME)}'/>
        <target dev='vda' bus='virtio'/>
      </disk>
    </devices>
    <test:runstate>5</test:runstate>
  </domain>
</node>
"""
