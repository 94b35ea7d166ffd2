"""Failures and stalls that tests inject into the simulator's calls, hosts that fail or stall
VMs, clones that fail at a seeded rate, a session that expires, an endpoint that cannot be
reached and a change feed that drops its connection."""

from __future__ import annotations

import random
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable

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
    """Pending injected failures and stalls, per operation, and the hosts that fail every VM put
    on them; the faults of the endpoint as a whole (see :class:`~corral.providers.sim.controls.SimControls`)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self._failures: defaultdict[str, deque[bool]] = defaultdict(deque)  # op -> retryable, per failure
        self._stalls: dict[str, float] = {}
        self._failing_hosts: set[str] = set()
        self._host_stalls: dict[str, float] = {}  # host -> seconds each call touching it sleeps
        self._clone_rate = 0.0
        self._clone_rng = random.Random(0)
        self._session_every = 0  # the session expires at every this many calls; 0: never
        self._session_calls = 0  # calls made on the session since it was opened or renewed
        self._session_expired = False
        self._renewals_failing = 0  # renewals still to fail
        self._unreachable_until: float | None = None
        self._feed_drops = 0  # change-feed calls still to drop
        self.injected: Counter[str] = Counter()  # failures injected so far: clone, renewal, unreachable, feed

    # -- clones ------------------------------------------------------------------------------------
    def fail_clones(self, rate: float, seed: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"a failure rate is between 0 and 1, not {rate}")
        self._clone_rate = rate
        self._clone_rng = random.Random(seed)

    def clone_fails(self) -> bool:
        """Whether the next VM of a create call fails (drawn from its own seeded generator)."""
        if self._clone_rate > 0 and self._clone_rng.random() < self._clone_rate:
            self.injected["clone"] += 1
            return True
        return False

    # -- the session -------------------------------------------------------------------------------
    def expire_session_every(self, calls: int) -> None:
        if calls < 0:
            raise ValueError(f"a session expires after a number of calls, not {calls}")
        self._session_every = calls
        self._session_calls = 0

    def fail_renewals(self, count: int) -> None:
        self._renewals_failing += count

    def session_call(self) -> bool:
        """Count one call on the session; True when the session has expired and must be renewed first."""
        if self._session_every:
            self._session_calls += 1
            if self._session_calls > self._session_every:
                self._session_expired = True
        return self._session_expired

    def renew(self) -> None:
        """Log in again; a renewal injected to fail raises (cause ``session``) and leaves it expired."""
        if self._renewals_failing:
            self._renewals_failing -= 1
            self.injected["renewal"] += 1
            raise ProviderError("the session expired and could not be renewed (injected)", cause=Cause.SESSION)
        self._session_expired = False
        self._session_calls = 1  # the call that renewed it

    # -- the endpoint ------------------------------------------------------------------------------
    def unreachable_for(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("an outage cannot be negative")
        self._unreachable_until = self.clock() + seconds if seconds else None

    def raise_if_unreachable(self) -> None:
        until = self._unreachable_until
        if until is not None:
            if self.clock() < until:
                self.injected["unreachable"] += 1
                raise ProviderError("the endpoint cannot be reached (injected outage)", cause=Cause.UNREACHABLE)
            self._unreachable_until = None

    def drop_feed(self, count: int) -> None:
        self._feed_drops += count

    def raise_if_feed_dropped(self) -> None:
        if self._feed_drops:
            self._feed_drops -= 1
            self.injected["feed"] += 1
            raise ProviderError("the change feed's connection dropped (injected)", cause=Cause.FEED)

    # -- hosts ---------------------------------------------------------------------------------------
    def stall_host(self, host: str, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("a stall cannot be negative")
        if seconds:
            self._host_stalls[host] = seconds
        else:
            self._host_stalls.pop(host, None)

    def host_stall(self, hosts: Iterable[str | None]) -> float:
        """The seconds a call touching ``hosts`` sleeps (the longest of their stalls)."""
        if not self._host_stalls:
            return 0.0
        return max((self._host_stalls.get(h, 0.0) for h in hosts if h is not None), default=0.0)

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
