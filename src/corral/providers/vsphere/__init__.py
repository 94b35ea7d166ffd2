"""The vSphere provider: one pyvmomi session per vCenter, inventory and tasks by change feed.

See ``docs/providers.md`` for what it reads from the configuration and how it behaves.
"""

from corral.providers.vsphere.provider import VsphereProvider
from corral.providers.vsphere.settings import VspherePool, VsphereSettings, vsphere_pools

__all__ = ["VspherePool", "VsphereProvider", "VsphereSettings", "vsphere_pools"]
