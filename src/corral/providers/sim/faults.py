"""Failures and stalls that tests inject into the simulator's calls, and hosts that fail VMs."""

from __future__ import annotations

from collections import defaultdict, deque

from corral.providers.base import Cause, ProviderError

#: The operations hooks can name, and the provider methods each covers.
OPERATIONS: dict[str, tuple[str, ...]] = {
    "connect": ("connect",),
    "create": ("create_vms",),
    "start": ("start_vms",),
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
    """Pending injected failures and stalls, per operation, and the hosts that fail every VM put on them."""

    def __init__(self) -> None:
        self._failures: defaultdict[str, deque[bool]] = defaultdict(deque)  # op -> retryable, per failure
        self._stalls: dict[str, float] = {}
        self._failing_hosts: set[str] = set()

    def fail_next(self, op: str, count: int = 1, *, retryable: bool = True) -> None:
        self._failures[_known(op)].extend([retryable] * count)

    def stall(self, op: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a stall cannot be negative")
        self._stalls[_known(op)] = seconds

    def stall_of(self, op: str) -> float:
        return self._stalls.get(op, 0.0)

    def raise_if_failing(self, op: str) -> None:
        """Raise ``ProviderError("injected failure")`` if a failure is pending for ``op``
        (``"injected failure (permanent)"``, not retryable, for one injected so)."""
        pending = self._failures.get(op)
        if pending:
            if pending.popleft():
                raise ProviderError("injected failure", cause=Cause.INJECTED)
            raise ProviderError("injected failure (permanent)", retryable=False, cause=Cause.INJECTED)

    def fail_on_host(self, host: str, failing: bool) -> None:
        if failing:
            self._failing_hosts.add(host)
        else:
            self._failing_hosts.discard(host)

    def host_failure(self, host: str) -> str | None:
        """The error for a VM put on ``host``, or None when the host does not fail VMs."""
        return f"simulated failure on host {host!r}" if host in self._failing_hosts else None
