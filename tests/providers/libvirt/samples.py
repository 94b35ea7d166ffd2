"""Domain, volume and capabilities XML as libvirt gives it, for the tests of the pure modules."""

# a UEFI KVM guest as virt-install defines it, running: qcow2 volume disk, a cdrom, two NICs,
# NVRAM, a VNC display on a fixed port, another application's metadata, a CPU model
KVM_DOMAIN = """<domain type='kvm' id='7' xmlns:qemu='http://libvirt.org/schemas/domain/qemu/1.0'>
  <name>debian12</name>
  <uuid>2f3c1a5e-7f0e-4a1b-9c55-0d7c2b1e9a10</uuid>
  <title>Debian 12 template</title>
  <metadata>
    <libosinfo:libosinfo xmlns:libosinfo="http://libosinfo.org/xmlns/libvirt/domain/1.0">
      <libosinfo:os id="http://debian.org/debian/12"/>
    </libosinfo:libosinfo>
  </metadata>
  <memory unit='KiB'>4194304</memory>
  <currentMemory unit='KiB'>4194304</currentMemory>
  <vcpu placement='static'>2</vcpu>
  <os firmware='efi'>
    <type arch='x86_64' machine='pc-q35-7.2'>hvm</type>
    <loader readonly='yes' type='pflash'>/usr/share/OVMF/OVMF_CODE_4M.fd</loader>
    <nvram template='/usr/share/OVMF/OVMF_VARS_4M.fd'>/var/lib/libvirt/qemu/nvram/debian12_VARS.fd</nvram>
    <boot dev='hd'/>
  </os>
  <cpu mode='custom' match='exact' check='partial'>
    <model fallback='forbid'>Skylake-Client-IBRS</model>
    <vendor>Intel</vendor>
    <feature policy='require' name='avx2'/>
    <feature policy='force' name='aes'/>
    <feature policy='disable' name='hle'/>
    <feature policy='optional' name='rtm'/>
    <feature name='vmx'/>
  </cpu>
  <devices>
    <emulator>/usr/bin/qemu-system-x86_64</emulator>
    <disk type='volume' device='disk'>
      <driver name='qemu' type='qcow2' discard='unmap'/>
      <source pool='default' volume='debian12.qcow2'/>
      <backingStore/>
      <target dev='vda' bus='virtio'/>
      <address type='pci' domain='0x0000' bus='0x04' slot='0x00' function='0x0'/>
    </disk>
    <disk type='file' device='cdrom'>
      <driver name='qemu' type='raw'/>
      <source file='/var/lib/libvirt/images/debian-12.iso'/>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='network'>
      <mac address='52:54:00:6b:3c:58'/>
      <source network='default'/>
      <model type='virtio'/>
    </interface>
    <interface type='bridge'>
      <mac address='52:54:00:aa:01:02'/>
      <source bridge='br0'/>
      <model type='virtio'/>
    </interface>
    <graphics type='vnc' port='5905' autoport='no' listen='127.0.0.1'>
      <listen type='address' address='127.0.0.1'/>
    </graphics>
  </devices>
  <qemu:commandline>
    <qemu:arg value='-no-user-config'/>
  </qemu:commandline>
</domain>
"""

# libvirt's test driver style: a file disk, no metadata, memory without a unit
TEST_DOMAIN = """<domain type='test'>
  <name>tmpl</name>
  <uuid>0b0c0d0e-1111-4222-8333-944455556666</uuid>
  <memory>1048576</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type><boot dev='hd'/></os>
  <devices>
    <disk type='file' device='disk'>
      <source file='/default-pool/tmpl.img'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <interface type='network'>
      <mac address='aa:bb:cc:dd:ee:ff'/>
      <source network='default'/>
    </interface>
  </devices>
</domain>
"""

VOLUME = """<volume type='file'>
  <name>debian12.qcow2</name>
  <key>/var/lib/libvirt/images/debian12.qcow2</key>
  <capacity unit='bytes'>21474836480</capacity>
  <allocation unit='bytes'>2147483648</allocation>
  <target>
    <path>/var/lib/libvirt/images/debian12.qcow2</path>
    <format type='qcow2'/>
  </target>
</volume>
"""

KVM_CAPABILITIES = """<capabilities>
  <host>
    <uuid>4c4c4544-0042-3510-8051-b4c04f4e4d32</uuid>
    <cpu>
      <arch>x86_64</arch>
      <model>Skylake-Client-IBRS</model>
      <vendor>Intel</vendor>
      <microcode version='240'/>
      <signature family='6' model='94' stepping='3'/>
      <topology sockets='1' dies='1' cores='4' threads='2'/>
      <feature name='ds'/>
      <feature name='vmx'/>
      <feature name='pdpe1gb'/>
      <pages unit='KiB' size='4'/>
    </cpu>
    <power_management><suspend_mem/></power_management>
  </host>
  <guest><os_type>hvm</os_type></guest>
</capabilities>
"""

# the test driver's: arch and old-style features, no model or vendor
TEST_CAPABILITIES = """<capabilities>
  <host>
    <cpu>
      <arch>i686</arch>
      <features>
        <pae/>
        <nonpae/>
      </features>
      <pages unit='KiB' size='4'/>
    </cpu>
  </host>
</capabilities>
"""
