"""Domain events: what the analysers and the pool manager publish, and subscribers react to.

Two families:

- **Inventory events** come from a provider's change feed, after the analysers compared
  the old and the new record of a VM or host: :class:`VmCreated`, :class:`VmStateChanged`,
  :class:`VmDisappeared`, :class:`VmMoved`, :class:`MigrationDone`, :class:`HostDown`,
  :class:`HostUp`, :class:`HostMaintenanceChanged`, :class:`HostOverUtilized`.
- **Lifecycle events** come from the pool manager when a VM moves between corral's states
  (pending, ready, running, …): :class:`VmLifecycle`.

Every event knows its ``kind`` (a short dotted name used by the event stream) and turns
itself into a JSON-ready dict with :meth:`Event.as_dict`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import Enum
from typing import Any, ClassVar

from corral.domain.states import PowerState, VmState


@dataclass(frozen=True, slots=True)
class Event:
    at: float  # unix seconds when the change was seen
    kind: ClassVar[str] = "event"

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.kind}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = value.value if isinstance(value, Enum) else value
        return out


# -- inventory: VMs ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VmEvent(Event):
    provider: str
    vm: str
    pool: str | None
    host: str


@dataclass(frozen=True, slots=True)
class VmCreated(VmEvent):
    """A VM appeared at the provider."""

    kind: ClassVar[str] = "vm.created"
    state: PowerState = PowerState.OFF


@dataclass(frozen=True, slots=True)
class VmStateChanged(VmEvent):
    """A VM's run state at the provider changed (off, booting, up)."""

    kind: ClassVar[str] = "vm.state"
    old: PowerState = PowerState.OFF
    new: PowerState = PowerState.OFF


@dataclass(frozen=True, slots=True)
class VmDisappeared(VmEvent):
    """A VM left the provider (destroyed by anyone, corral included)."""

    kind: ClassVar[str] = "vm.disappeared"


@dataclass(frozen=True, slots=True)
class VmMoved(VmEvent):
    """A VM now runs on another host; ``host`` is the new one."""

    kind: ClassVar[str] = "vm.moved"
    old_host: str = ""


@dataclass(frozen=True, slots=True)
class MigrationDone(VmEvent):
    """A migration corral asked for arrived: the VM shows up on its target ``host``."""

    kind: ClassVar[str] = "vm.migrated"
    seconds: float = 0.0  # from the request to the inventory seeing the VM there


# -- inventory: hosts ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HostEvent(Event):
    provider: str
    host: str


@dataclass(frozen=True, slots=True)
class HostDown(HostEvent):
    """A host stayed unresponsive (or unreported) for the whole grace period."""

    kind: ClassVar[str] = "host.down"
    reason: str = ""


@dataclass(frozen=True, slots=True)
class HostUp(HostEvent):
    """A host that was declared down responds again."""

    kind: ClassVar[str] = "host.up"


@dataclass(frozen=True, slots=True)
class HostMaintenanceChanged(HostEvent):
    kind: ClassVar[str] = "host.maintenance"
    maintenance: bool = False


@dataclass(frozen=True, slots=True)
class HostOverUtilized(HostEvent):
    """A host's CPU or memory use crossed the over-utilisation threshold (percent)."""

    kind: ClassVar[str] = "host.overutilized"
    cpu_percent: float = 0.0
    memory_percent: float = 0.0


# -- lifecycle -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VmLifecycle(Event):
    """A VM moved between corral's states; ``old`` is None for a new record."""

    kind: ClassVar[str] = "vm.lifecycle"
    vm: str = ""
    pool: str = ""
    old: VmState | None = None
    new: VmState = VmState.PENDING
    host: str | None = None
    reason: str | None = None


INVENTORY_EVENTS: tuple[type[Event], ...] = (
    VmCreated, VmStateChanged, VmDisappeared, VmMoved, MigrationDone,
    HostDown, HostUp, HostMaintenanceChanged, HostOverUtilized,
)
