"""The ledger: the one writer of VM records, and what the manager knows of VMs between writes.

- Moves between states are compare-and-set (:meth:`Ledger.move`): a move that finds the VM in
  another state than expected does nothing. Every move of a VM between corral's states is
  published on the event bus as a :class:`~corral.domain.events.VmLifecycle` event.
- In flight: the VMs whose create call is under way, those to destroy once it returns (a
  pool reset), and those a step holds (:meth:`Ledger.holding`: a destroy or a probe).
- A destroy is intent → call → result (:meth:`Ledger.destroy`): the intent is recorded
  (``completed``, ``failed`` or ``discovered``) before the provider is called, so a crash in
  between is finished by recovery; what to do after the call is decided by
  :mod:`corral.pools.destroying`.
- Clone and boot times are statistics, kept in memory and written in batches by the sweep.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Iterator, Mapping
from types import MappingProxyType
from typing import Any

from corral.domain.events import Event, VmLifecycle
from corral.domain.models import TimingKind, Vm
from corral.domain.states import DESTROY_INTENT_STATES, VmState
from corral.pools.destroying import DestroyRetries, Outcome, outcome_of
from corral.pools.stats import Stats
from corral.providers.base import Provider, ProviderError
from corral.store.base import Store

log = logging.getLogger("corral.pool")

# States a destroy may start from, with the state that records the intent.
DESTROY_INTENT: dict[VmState, VmState] = {
    VmState.PENDING: VmState.FAILED,
    VmState.READY: VmState.COMPLETED,
    VmState.RUNNING: VmState.COMPLETED,
    VmState.MIGRATING: VmState.COMPLETED,
    VmState.FAILED: VmState.FAILED,
    VmState.COMPLETED: VmState.COMPLETED,
    VmState.DISCOVERED: VmState.DISCOVERED,
}


class Ledger:
    """Writes VM records and keeps the in-flight marks.

    ``queued`` says whether the runner holds work for a VM; ``withdraw`` takes that work back
    before a destroy (False when its call is under way); ``spawn`` runs a coroutine in the
    background; ``pool_changed`` tells the refill to look at a pool.
    """

    def __init__(self, store: Store, providers: Mapping[str, Provider], publish: Callable[[Event], object],
                 clock: Callable[[], float], stats: Stats, *, retry_first_s: float,
                 spawn: Callable[[Coroutine[Any, Any, object], str], None], pool_changed: Callable[[str], None],
                 queued: Callable[[str], bool], withdraw: Callable[[str], bool]) -> None:
        self.store = store
        self.providers = providers
        self.publish = publish
        self.clock = clock
        self.stats = stats
        self.spawn = spawn
        self.pool_changed = pool_changed
        self.queued = queued
        self.withdraw = withdraw
        self.destroys = DestroyRetries(first_delay_s=retry_first_s)  # failed destroys
        self._inflight: set[str] = set()  # names whose create call is under way
        self._stale: set[str] = set()  # in-flight names to destroy once created (pool reset)
        self._busy: set[str] = set()  # names being destroyed or probed
        self._cloned: dict[str, float] = {}  # pending VMs whose create call returned: when
        self._timings: list[tuple[str, str, str, float, float]] = []  # clone/boot times not yet stored

    # -- records -------------------------------------------------------------------------------
    def lifecycle(self, vm: Vm, old: VmState | None, reason: str | None = None) -> None:
        """Publish that ``vm`` (the record after the move) left state ``old``."""
        self.publish(VmLifecycle(self.clock(), vm=vm.name, pool=vm.pool, old=old, new=vm.state, host=vm.host,
                                 reason=reason if reason is not None else vm.reason))

    def move(self, name: str, expected: tuple[VmState, ...], new: VmState,
             fields: Mapping[str, object] | None = None, *, was: VmState | None = None, note: str | None = None,
             publish: bool = True, soon: bool = False, **more: object) -> Vm | None:
        """Move ``name`` from one of ``expected`` to ``new`` (compare-and-set), setting ``fields`` and
        ``more``, and publish it as a move from ``was`` (default: the first expected state), ``note``
        its reason. None: not moved. ``soon``: a move recovery redoes if a crash loses it, which
        the store may commit with its next write."""
        write = self.store.transition_soon if soon else self.store.transition
        moved = write(name, expected, new, **{**(fields or {}), **more})
        if moved is not None and publish:
            self.lifecycle(moved, was if was is not None else expected[0], note)
        return moved

    def update(self, name: str, **fields: object) -> Vm | None:
        """Set fields (never the state) of a record."""
        return self.store.update_vm(name, **fields)

    def add_pending(self, vms: list[Vm]) -> None:
        """Record new VMs (the intent to create them), in one transaction."""
        self.store.add_vms(vms)
        for vm in vms:
            self.lifecycle(vm, None)

    def add_discovered(self, vm: Vm) -> None:
        """Record a VM found at the provider that the store did not know."""
        self.store.add_vm(vm)

    def checkout(self, wanted: list[str], *, lifetimes: dict[str, float], token: str | None,
                 user: str | None) -> list[Vm] | None:
        """All or nothing: one ready VM per entry of ``wanted``, moved to running."""
        vms = self.store.checkout_many([(name, 1) for name in wanted], now=self.clock(), lifetimes=lifetimes,
                                       token=token, user=user)
        for vm in vms or ():
            self.lifecycle(vm, VmState.READY)
        return vms

    def mark_ready(self, name: str, ip: str | None) -> Vm | None:
        """Move a pending VM to ready, with its clone time; records its boot time."""
        now = self.clock()
        # a crash may lose it: recovery checks the readiness of pending VMs whose guest is up
        done = self.store.transition_soon(name, (VmState.PENDING,), VmState.READY, ready_at=now, ip=ip,
                                    cloned_at=self._cloned.pop(name, None))
        if done is not None:
            self.lifecycle(done, VmState.PENDING)
            self.timing(TimingKind.BOOT, done.pool, name, now - done.created_at, now)
        return done

    # -- in flight -----------------------------------------------------------------------------
    def clone_started(self, name: str) -> None:
        self._inflight.add(name)

    def clone_ended(self, name: str) -> bool:
        """The create call of ``name`` is over; True if the VM is to be destroyed (its pool was reset)."""
        self._inflight.discard(name)
        if name in self._stale:
            self._stale.discard(name)
            return True
        return False

    def cloning(self, name: str) -> bool:
        return name in self._inflight

    @property
    def clones_in_flight(self) -> int:
        return len(self._inflight)

    def destroy_when_cloned(self, name: str) -> None:
        self._stale.add(name)

    @contextlib.contextmanager
    def holding(self, name: str) -> Iterator[None]:
        """Mark ``name`` busy (no destroy or probe starts) while a step on it runs."""
        self._busy.add(name)
        try:
            yield
        finally:
            self._busy.discard(name)

    def busy(self, name: str) -> bool:
        """True while a clone, HA restart, destroy or readiness check of ``name`` is under way or queued."""
        return name in self._inflight or name in self._busy or self.queued(name)

    def busy_among(self, names: Iterable[str]) -> frozenset[str]:
        return frozenset(name for name in names if self.busy(name))

    def destroy_waiting(self, names: Iterable[str]) -> frozenset[str]:
        """Those of ``names`` whose last destroy failed and whose wait is not over."""
        now = time.monotonic()
        return frozenset(name for name in names if not self.destroys.due(name, now))

    # -- clone times -----------------------------------------------------------------------------
    def cloned(self, name: str, at: float) -> None:
        """The create call of ``name`` returned at ``at``: kept in memory and written with the move to
        ready, one store write less per VM."""
        self._cloned[name] = at

    def clone_times(self) -> Mapping[str, float]:
        """The clone times not yet in the store (read-only)."""
        return MappingProxyType(self._cloned)

    def timing(self, kind: TimingKind, pool: str, vm: str, seconds: float, at: float) -> None:
        """Clone and boot times are statistics: kept here and stored in batches by the sweep, never
        written on the way of an outcome (a write that fails there would leave the outcome half told)."""
        self._timings.append((kind.value, pool, vm, seconds, at))

    def flush_timings(self) -> None:
        rows, self._timings = self._timings, []
        if not rows:
            return
        try:
            self.store.record_durations(rows)
        except Exception:  # kept for the next flush (the store may be unavailable for a while)
            self._timings = rows + self._timings
            raise

    # -- destroy ---------------------------------------------------------------------------------
    async def destroy(self, vm: Vm, *, reason: str | None = None) -> bool:
        """Record the intent, destroy at the provider, record the result. Safe to repeat.

        True when the provider had the VM and destroyed it. A VM the provider no longer has is
        recorded destroyed too; one whose last destroy failed waits as :mod:`corral.pools.destroying`
        decides.
        """
        if vm.name in self._busy or not self.destroys.due(vm.name, time.monotonic()):
            return False
        if not self.withdraw(vm.name):
            return False
        intent = DESTROY_INTENT.get(vm.state)
        if intent is None:
            return False
        self._busy.add(vm.name)
        self._cloned.pop(vm.name, None)
        try:
            if vm.state is not intent:
                fields: dict[str, object] = {"completed_at": self.clock()}
                if reason:
                    fields["reason"] = reason
                moved = self.move(vm.name, (vm.state,), intent, fields)
                if moved is None:
                    return False  # someone else moved it first (e.g. it was checked out)
                vm = moved
                self.pool_changed(vm.pool)
            else:  # a retry: the caller's view may be older than another path's destroy
                current = self.store.get_vm(vm.name)
                if current is None or current.state not in DESTROY_INTENT_STATES:
                    return False
                vm = current
            return await self._call_destroy(vm)
        finally:
            self._busy.discard(vm.name)

    async def _call_destroy(self, vm: Vm) -> bool:
        started = self.clock()
        error: ProviderError | None = None
        try:
            await self.providers[vm.provider].destroy_vm(vm.name)
        except ProviderError as exc:  # VmNotFound among them: the VM is gone already
            error = exc
        outcome = outcome_of(error)
        decision = self.destroys.record(vm.name, outcome, str(error) if error else None, time.monotonic(),
                                        error.cause if error is not None else None)
        if decision.failure is not None:  # said once per change; the same failure again only at DEBUG
            log.log(decision.level, decision.message or "destroy failed again", extra={
                "pool": vm.pool, "vm": vm.name, "error": decision.failure.error,
                "attempts": decision.failure.attempts, "retry_in": decision.failure.delay_s or None})
            return False
        now = self.clock()
        # a crash may lose it: recovery destroys the VM again and finds it gone
        gone = self.move(vm.name, DESTROY_INTENT_STATES, VmState.DESTROYED, was=vm.state, destroyed_at=now, soon=True)
        if gone is not None:
            self.stats.destroyed += 1
            log.log(decision.level, decision.message or "destroyed", extra={
                "pool": vm.pool, "vm": vm.name, "host": vm.host, "duration": now - started, "reason": vm.reason})
        return outcome is Outcome.DESTROYED

    def retry_destroy(self, name: str) -> bool:
        """Someone asks again for a destroy that failed: try it now, whatever its wait. False if
        ``name`` has no failed destroy."""
        if not self.destroys.clear(name):
            return False
        vm = self.store.get_vm(name)
        if vm is None or vm.state not in DESTROY_INTENT_STATES:
            return False
        log.info("destroy asked for again", extra={"pool": vm.pool, "vm": name})
        self.spawn(self.destroy(vm), f"destroy-{name}")
        return True
