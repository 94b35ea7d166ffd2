"""The libvirt provider: KVM hosts reached by libvirt URI, each over its own connection, as one provider.

``docs/configuration.md`` says what it reads. Its settings import nothing of libvirt-python,
which is an optional extra: ``corral config check`` reads a libvirt entry without it.
"""

from corral.providers.libvirt.settings import LibvirtHost, LibvirtPool, LibvirtSettings, libvirt_pools

__all__ = ["LibvirtHost", "LibvirtPool", "LibvirtSettings", "libvirt_pools"]
