"""Domain events: what the analysers publish and subscribers react to."""

from __future__ import annotations

from dataclasses import dataclass

from corral.domain.states import VmState


@dataclass(frozen=True, slots=True)
class Event:
    at: float


@dataclass(frozen=True, slots=True)
class VmStateChanged(Event):
    vm: str
    pool: str
    old: VmState | None
    new: VmState
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class VmDisappeared(Event):
    vm: str
    pool: str | None


@dataclass(frozen=True, slots=True)
class HostDown(Event):
    host: str
