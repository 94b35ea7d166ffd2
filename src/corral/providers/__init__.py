"""VM providers: the simulator (embedded default), and later vSphere and libvirt."""

from corral.providers.base import (
    HostInfo,
    InventoryUpdate,
    Provider,
    ProviderError,
    ProviderVm,
    VmNotFound,
)

__all__ = [
    "HostInfo",
    "InventoryUpdate",
    "Provider",
    "ProviderError",
    "ProviderVm",
    "VmNotFound",
]
