"""Plain data shared by every layer: hosts, VMs, pools, states and events. No I/O here."""

from corral.domain.events import (
    Event,
    HostDown,
    VmDisappeared,
    VmStateChanged,
)
from corral.domain.models import Host, Pool, Template, Vm, VmSpec
from corral.domain.states import ACTIVE_STATES, DESTROY_INTENT_STATES, TRANSITIONS, VmState, can_move

__all__ = [
    "ACTIVE_STATES",
    "DESTROY_INTENT_STATES",
    "TRANSITIONS",
    "Event",
    "Host",
    "HostDown",
    "Pool",
    "Template",
    "Vm",
    "VmDisappeared",
    "VmSpec",
    "VmState",
    "VmStateChanged",
    "can_move",
]
