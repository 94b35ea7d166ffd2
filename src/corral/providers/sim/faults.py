"""Failures and stalls that tests inject into the simulator's calls."""

from __future__ import annotations

from collections import Counter

from corral.providers.base import ProviderError

#: The operations hooks can name, and the provider methods each covers.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "create": ("create_vms",),
    "destroy": ("destroy_vm",),
    "migrate": ("migrate_vm",),
    "power": ("power_on", "power_off"),
    "disk": ("add_disk",),
    "snapshot": ("create_snapshot",),
    "revert": ("revert_snapshot",),
    "vm_ready": ("vm_ready",),
    "list_vms": ("list_vms",),
    "list_hosts": ("list_hosts",),
    "template_info": ("template_info",),
    "wait_for_updates": ("wait_for_updates",),
}


def _known(op: str) -> str:
    if op not in OPERATIONS:
        raise ValueError(f"unknown operation {op!r}; one of {', '.join(OPERATIONS)}")
    return op


class Faults:
    """Pending injected failures and stalls, per operation."""

    def __init__(self) -> None:
        self._failures: Counter[str] = Counter()
        self._stalls: dict[str, float] = {}

    def fail_next(self, op: str, count: int = 1) -> None:
        self._failures[_known(op)] += count

    def stall(self, op: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a stall cannot be negative")
        self._stalls[_known(op)] = seconds

    def stall_of(self, op: str) -> float:
        return self._stalls.get(op, 0.0)

    def raise_if_failing(self, op: str) -> None:
        """Raise ``ProviderError("injected failure")`` if a failure is pending for ``op``."""
        if self._failures[op] > 0:
            self._failures[op] -= 1
            raise ProviderError("injected failure")
