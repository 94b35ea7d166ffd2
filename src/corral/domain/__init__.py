"""Plain data shared by every layer: hosts, VMs, pools, states and events. No I/O here."""

from corral.domain.events import (
    Event,
    HostDown,
    HostMaintenanceChanged,
    HostOverUtilized,
    HostUp,
    MigrationDone,
    VmCreated,
    VmDisappeared,
    VmLifecycle,
    VmMoved,
    VmStateChanged,
)
from corral.domain.models import HostInfo, Pool, ProviderVm, TemplateInfo, Vm, VmSpec
from corral.domain.states import ACTIVE_STATES, DESTROY_INTENT_STATES, TRANSITIONS, PowerState, VmState, can_move

__all__ = [
    "ACTIVE_STATES",
    "DESTROY_INTENT_STATES",
    "TRANSITIONS",
    "Event",
    "HostInfo",
    "HostDown",
    "HostMaintenanceChanged",
    "HostOverUtilized",
    "HostUp",
    "MigrationDone",
    "Pool",
    "PowerState",
    "ProviderVm",
    "TemplateInfo",
    "Vm",
    "VmCreated",
    "VmDisappeared",
    "VmLifecycle",
    "VmMoved",
    "VmSpec",
    "VmState",
    "VmStateChanged",
    "can_move",
]
