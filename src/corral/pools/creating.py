"""The pool manager's side of the central runner: what to ask it for, and what its outcomes mean.

- :meth:`Creator.create` turns VMs a pool or an on-demand request lacks into works;
  :meth:`Creator.restart` turns a checked-out VM of an HA pool whose host went down into one.
- Before a create call the runner asks for the intent to be recorded (:meth:`Creator.record`:
  one ``pending`` record per VM, written in one transaction, with the host it goes to).
- The outcome is recorded after: a created VM waits for readiness; a failed try stays
  ``pending`` while the runner places it again; a VM that failed for good is marked ``failed``
  with the cause and destroyed (a partial clone included).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from typing import Any

from corral.domain.models import Pool, TimingKind, Vm, VmSpec
from corral.domain.states import VmState
from corral.pools.ledger import Ledger
from corral.pools.names import new_hostname
from corral.pools.placing import Placer
from corral.pools.refill import Backoff
from corral.pools.stats import Stats
from corral.runner import NotRecorded, Op, Priority, Work
from corral.store.base import Fenced, Store, StoreUnavailable

log = logging.getLogger("corral.pool")


class Creator:
    """``ondemand_inflight`` is the set of on-demand VMs queued or being created; ``recheck(provider,
    name)`` looks at a VM the inventory may already have seen up; ``pool_changed`` tells the refill."""

    def __init__(self, pools: Mapping[str, Pool], placer: Placer, store: Store, ledger: Ledger, stats: Stats,
                 backoff: Backoff, *, prefix: str, ondemand_inflight: set[str],
                 spawn: Callable[[Coroutine[Any, Any, object], str], None],
                 recheck: Callable[[str, str], None], pool_changed: Callable[[str], None],
                 unavailable: Callable[[StoreUnavailable, str], None] | None = None) -> None:
        self.pools = pools
        self.placer = placer
        self.store = store
        self.ledger = ledger
        self.stats = stats
        self.backoff = backoff
        self.prefix = prefix
        self.ondemand_inflight = ondemand_inflight
        self.spawn = spawn
        self.recheck = recheck
        self.pool_changed = pool_changed
        self.unavailable = unavailable
        self.ha_restarts = 0
        self.ha_failures = 0

    # -- building works ---------------------------------------------------------------------------
    def create(self, wanted: list[tuple[str, str | None]], priority: Priority) -> list[Work]:
        """Works for new VMs of (pool, on-demand request id or None)."""
        works = []
        for name, request_id in wanted:
            pool = self.pools[name]
            info = self.placer.template(pool)
            spec = VmSpec(new_hostname(self.prefix), pool.name, pool.template, cpus=info.cpus,
                          memory_mb=info.memory_mb, folder=pool.folder, request_id=request_id)
            works.append(Work(Op.CREATE, spec, pool, priority, pool_priority=pool.priority))
        return works

    def restart(self, record: Vm, pool: Pool, dead_host: str) -> Work:
        """A work to start ``record`` on another host than ``dead_host``, at top priority."""
        spec = VmSpec(record.name, record.pool, record.template, folder=pool.folder, request_id=record.request_id)
        return Work(Op.START, spec, pool, Priority.HA_RESTART, pool_priority=pool.priority,
                    exclude=frozenset({dead_host}))

    # -- the runner's client ------------------------------------------------------------------------
    def record(self, works: list[Work], host: str) -> list[Work]:
        """Record the intent of a call (:class:`NotRecorded` when the store cannot take it: the
        call is not made, and the runner puts the works back; a write refused by fencing drops
        them: another manager runs their pool now). Whatever fails, none of them is cloning."""
        try:
            return self._record(works, host)
        except Exception as exc:
            for work in works:
                self.ledger.clone_ended(work.name)
            if isinstance(exc, Fenced):  # another manager runs the pool now: its works are dropped
                log.warning("write refused by fencing: clones dropped", extra={"error": str(exc), "count": len(works)})
                for work in works:
                    self.dropped(work, str(exc))
                return []
            if not isinstance(exc, StoreUnavailable) or self.unavailable is None:
                raise
            for work in works:
                if work.op is Op.CREATE and not work.recorded:
                    work.maybe_recorded = True  # the write may have been made, its answer lost
            self.unavailable(exc, "record")
            raise NotRecorded(str(exc)) from None

    def _record(self, works: list[Work], host: str) -> list[Work]:
        if works[0].op is Op.START:
            return [w for w in works if self._still_restartable(w)]
        now = self.ledger.clock()
        fresh: list[Vm] = []
        wanted: list[Work] = []
        for work in works:
            spec = work.spec
            if work.recorded:  # a rerun: its record says where it goes now
                self.ledger.update(spec.name, host=host)
            elif work.maybe_recorded and (known := self.store.get_vm(spec.name)) is not None:
                # the last try's write was made after all (its answer was lost): it is this VM's intent
                if known.state is not VmState.PENDING or known.pool != spec.pool:
                    log.warning("clone dropped: its record has moved on", extra={
                        "pool": spec.pool, "vm": spec.name, "state": known.state.value})
                    self.ondemand_inflight.discard(spec.name)
                    continue
                self.ledger.lifecycle(self.ledger.update(spec.name, host=host) or known, None)
            else:
                fresh.append(Vm(name=spec.name, pool=spec.pool, template=spec.template, provider=work.provider,
                                host=host, created_at=now, request_id=spec.request_id))
            self.ledger.clone_started(spec.name)
            wanted.append(work)
        if fresh:
            self.ledger.add_pending(fresh)
        if wanted:
            log.info("cloning", extra={"host": host, "count": len(wanted),
                                       "pools": ",".join(sorted({w.spec.pool for w in wanted}))})
        return wanted

    def _still_restartable(self, work: Work) -> bool:
        record = self.store.get_vm(work.name)
        if record is None or record.state is not VmState.RUNNING:
            log.info("HA restart dropped: the VM is no longer checked out",
                     extra={"vm": work.name, "state": record.state.value if record else "gone"})
            return False
        return True

    def done(self, work: Work, host: str, seconds: float) -> None:
        with self._outage("clone done"):
            if work.op is Op.START:
                self._restarted(work, host, seconds)
                return
            now = self.ledger.clock()
            name, pool = work.name, work.spec.pool
            self.ledger.cloned(name, now)
            self.stats.clones += 1
            self.ledger.timing(TimingKind.CLONE, pool, name, seconds, now)
            self.backoff.clone_outcome(pool, True)
            log.info("cloned", extra={"pool": pool, "vm": name, "host": host, "duration": seconds,
                                      "tries": work.tries})
            self._settled(work)
            self.recheck(work.provider, name)

    def _restarted(self, work: Work, host: str, seconds: float) -> None:
        self.ha_restarts += 1
        old = self.store.get_vm(work.name)
        vm = self.ledger.update(work.name, host=host)
        dead = ", ".join(sorted(work.exclude))
        log.warning("HA restart done", extra={"pool": work.spec.pool, "vm": work.name, "host": host,
                                              "old_host": dead, "duration": seconds, "tries": work.tries})
        if vm is not None and old is not None:
            self.ledger.lifecycle(vm, old.state, reason=f"restarted on {host}: host {dead} went down")

    def retrying(self, work: Work, host: str | None, error: str) -> None:
        where = f"on {host}" if host else "unplaced"
        log.warning("try failed, placing it again", extra={"pool": work.spec.pool, "vm": work.name, "where": where,
                                                          "tries": work.tries, "error": error, "op": work.op.value})
        self.ledger.clone_ended(work.name)

    def failed(self, work: Work, error: str) -> None:
        with self._outage("clone failed"):
            if work.op is Op.START:
                self.ha_failures += 1
                log.error("HA restart failed", extra={"pool": work.spec.pool, "vm": work.name, "error": error,
                                                      "tries": work.tries})
                self.ledger.update(work.name, reason=f"HA restart failed: {error}")
                return
            name, pool = work.name, work.spec.pool
            self.ondemand_inflight.discard(name)
            if not work.recorded:
                log.warning("clone not started", extra={"pool": pool, "vm": name, "error": error})
                if not work.cancelled:
                    self.backoff.clone_outcome(pool, False, work.cause)  # no storm of works that cannot start
                return
            try:
                self.stats.clone_failures += 1
                self.backoff.clone_outcome(pool, False, work.cause)
                log.warning("clone failed", extra={"pool": pool, "vm": name, "error": error, "tries": work.tries})
                # if the store cannot take it, the record stays pending: the reconcile finds no VM
                # at the provider, or the pool's timeout destroys what is left
                vm = self.ledger.move(name, (VmState.PENDING,), VmState.FAILED, reason=error)
                if vm is not None:
                    self.spawn(self.ledger.destroy(vm), f"destroy-{name}")
            finally:
                self._settled(work)

    @contextlib.contextmanager
    def _outage(self, step: str) -> Iterator[None]:
        """The store cannot take an outcome's write: the outage is told, and what is left is the
        sweep's (its record is still ``pending``; the clone is ended all the same)."""
        try:
            yield
        except StoreUnavailable as exc:
            if self.unavailable is None:
                raise
            self.unavailable(exc, step)

    def dropped(self, work: Work, why: str) -> None:
        """No host could take a new VM: the placer logged why; the pool waits before asking again."""
        self.ondemand_inflight.discard(work.name)
        self.backoff.hold_off(work.spec.pool)

    def _settled(self, work: Work) -> None:
        """A create's call is over: the VM is the store's and the inventory's to follow now."""
        name = work.name
        stale = self.ledger.clone_ended(name)
        self.ondemand_inflight.discard(name)
        if stale:
            vm = self.store.get_vm(name)
            if vm is not None:
                self.spawn(self.ledger.destroy(vm, reason="pool reset"), f"destroy-{name}")
        self.pool_changed(work.spec.pool)
