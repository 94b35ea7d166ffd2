"""The VM lifecycle and the moves allowed between its states.

A VM is in exactly one state at a time::

    pending ──► ready ──► running ──► completed ──► destroyed
       │          │                       ▲
       └► failed ─┴───────────────────────┘  (failed and recycled VMs are destroyed too)

``discovered`` marks a VM found at the provider that corral did not create (an orphan
awaiting clean-up); ``migrating`` a checked-out VM being moved to another host.
"""

from __future__ import annotations

from enum import StrEnum


class VmState(StrEnum):
    PENDING = "pending"  # create requested or done, not reachable yet
    READY = "ready"  # reachable, waiting in its pool
    RUNNING = "running"  # checked out
    MIGRATING = "migrating"  # checked out, moving to another host
    COMPLETED = "completed"  # to be destroyed (destroy intent recorded)
    FAILED = "failed"  # clone or boot failed; to be destroyed
    DISCOVERED = "discovered"  # found at the provider, unknown to the store
    DESTROYED = "destroyed"  # gone from the provider; kept as history


TRANSITIONS: dict[VmState, frozenset[VmState]] = {
    VmState.PENDING: frozenset({VmState.READY, VmState.FAILED, VmState.COMPLETED}),
    VmState.READY: frozenset({VmState.RUNNING, VmState.COMPLETED, VmState.FAILED}),
    VmState.RUNNING: frozenset({VmState.MIGRATING, VmState.COMPLETED}),
    VmState.MIGRATING: frozenset({VmState.RUNNING, VmState.COMPLETED}),
    VmState.COMPLETED: frozenset({VmState.DESTROYED}),
    VmState.FAILED: frozenset({VmState.DESTROYED, VmState.COMPLETED}),
    VmState.DISCOVERED: frozenset({VmState.COMPLETED, VmState.DESTROYED}),
    VmState.DESTROYED: frozenset(),
}

# States in which a VM exists (or may exist) at the provider and is owned by corral.
ACTIVE_STATES: frozenset[VmState] = frozenset(s for s in VmState if s is not VmState.DESTROYED)

# States of a VM that is, or is becoming, usable: on its way, in its pool, or checked out.
LIVE_STATES: frozenset[VmState] = frozenset({VmState.PENDING, VmState.READY, VmState.RUNNING, VmState.MIGRATING})


# States that record the intent to destroy a VM: it is (or may still be) at the provider.
DESTROY_INTENT_STATES: tuple[VmState, ...] = (VmState.COMPLETED, VmState.FAILED, VmState.DISCOVERED)


class PowerState(StrEnum):
    """A VM's run state as its provider reports it (not corral's lifecycle)."""

    OFF = "off"  # powered off
    BOOTING = "booting"  # powered on, guest not up yet
    UP = "up"  # powered on and the guest finished booting


def can_move(src: VmState, dst: VmState) -> bool:
    """True when the lifecycle allows moving a VM from ``src`` to ``dst``."""
    return dst in TRANSITIONS[src]
