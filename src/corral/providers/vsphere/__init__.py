"""The vSphere provider: one pyvmomi session per vCenter, inventory and tasks by change feed.

``docs/architecture.md`` says how it works, ``docs/configuration.md`` what it reads.
"""

from corral.providers.vsphere.provider import VsphereProvider
from corral.providers.vsphere.settings import VspherePool, VsphereSettings, vsphere_pools

__all__ = ["VspherePool", "VsphereProvider", "VsphereSettings", "vsphere_pools"]
