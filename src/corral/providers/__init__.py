"""VM providers: the simulator (embedded default), and later vSphere and libvirt."""

from corral.providers.base import (
    InventoryUpdate,
    Provider,
    ProviderError,
    VmNotFound,
)

__all__ = [
    "InventoryUpdate",
    "Provider",
    "ProviderError",
    "VmNotFound",
]
