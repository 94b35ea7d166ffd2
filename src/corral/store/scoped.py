"""A store seen through the pools one manager owns.

When several managers share one store, each runs the pools it holds the lease of, and must
not see the VMs of the others' pools: a sweep would expire them, a reconcile would call them
lost. :class:`Scoped` passes every call on to the store beneath, and leaves out of what it
reads the VMs of pools outside its scope. Writes are passed on as they are: the store beneath
(a fenced view of the Redis store) is what refuses a write for a pool this manager no longer
owns.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from corral.domain.models import Vm
from corral.domain.states import VmState
from corral.store.base import Store


class Scoped:
    """``store`` limited, for reading VMs, to the pools in ``pools``."""

    def __init__(self, store: Store, pools: Iterable[str]) -> None:
        self.inner = store
        self.pools = frozenset(pools)

    def __repr__(self) -> str:
        return f"Scoped({self.inner!r}, {len(self.pools)} pools)"

    def __getattr__(self, name: str) -> Any:  # everything not about reading VMs
        return getattr(self.inner, name)

    def get_vm(self, name: str) -> Vm | None:
        vm = self.inner.get_vm(name)
        return vm if vm is not None and vm.pool in self.pools else None

    def list_vms(self, *, pool: str | None = None, states: Iterable[VmState] | None = None) -> list[Vm]:
        if pool is not None:
            return self.inner.list_vms(pool=pool, states=states) if pool in self.pools else []
        return [vm for vm in self.inner.list_vms(states=states) if vm.pool in self.pools]

    def counts(self) -> dict[str, dict[VmState, int]]:
        return {pool: n for pool, n in self.inner.counts().items() if pool in self.pools}

    def request_vms(self, request_id: str) -> list[Vm]:
        return [vm for vm in self.inner.request_vms(request_id) if vm.pool in self.pools]
