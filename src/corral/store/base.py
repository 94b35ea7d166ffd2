"""The store protocol: the durable, atomic record of every VM's state.

Every state move is a compare-and-set: it succeeds only if the VM is still in one of the
states the caller expects, so two actors can never both move one VM (two callers can never
check out one VM). Methods are synchronous and thread-safe; they are short local calls
(sqlite) or one round trip (redis).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

from corral.domain.models import Vm
from corral.domain.states import VmState


class StoreError(Exception):
    """The store could not carry out an operation."""


class TransitionRejected(StoreError):
    """A state move that the lifecycle does not allow was asked for."""


@runtime_checkable
class Store(Protocol):
    def close(self) -> None: ...

    def add_vm(self, vm: Vm) -> None:
        """Record a new VM (normally ``pending``: the intent to create it).

        Raises :class:`StoreError` if a VM of that name is already recorded in an active state.
        A destroyed VM of the same name is replaced.
        """

    def get_vm(self, name: str) -> Vm | None: ...

    def list_vms(
        self,
        *,
        pool: str | None = None,
        states: Iterable[VmState] | None = None,
    ) -> list[Vm]:
        """VMs filtered by pool and/or states, oldest ``created_at`` first."""

    def transition(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        """Move ``name`` to ``new`` if it is in one of ``expected``; set ``fields`` too.

        Returns the updated VM, or None if the VM is missing or not in an expected state.
        Raises :class:`TransitionRejected` if the lifecycle forbids expected -> new.
        ``fields`` are :class:`~corral.domain.models.Vm` attribute names.
        """

    def update_vm(self, name: str, **fields: object) -> Vm | None:
        """Set fields (never ``state``) on a VM; returns it, or None if missing."""

    def checkout(
        self,
        pool: str,
        *,
        now: float,
        lifetime_s: float,
        token: str | None = None,
        user: str | None = None,
    ) -> Vm | None:
        """Atomically take the longest-ready VM of ``pool``: ready -> running. None if empty."""

    def checkout_many(
        self,
        wanted: list[tuple[str, int]],
        *,
        now: float,
        lifetimes: dict[str, float],
        token: str | None = None,
        user: str | None = None,
    ) -> list[Vm] | None:
        """All or nothing: for each (pool, count) take that many ready VMs in one transaction.

        Returns the VMs in request order, or None (and changes nothing) if any pool is short.
        """

    def counts(self) -> dict[str, dict[VmState, int]]:
        """Per pool, the number of VMs in each active state (pools with none are absent)."""

    def purge_destroyed(self, older_than: float) -> int:
        """Forget destroyed VMs whose ``destroyed_at`` is before ``older_than``; returns the count."""
