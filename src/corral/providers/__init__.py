"""VM providers: the simulator (the embedded default), vSphere and libvirt."""

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
