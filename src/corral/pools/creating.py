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

import logging
from typing import TYPE_CHECKING

from corral.domain.models import Pool, Vm, VmSpec
from corral.domain.states import VmState
from corral.pools.names import new_hostname
from corral.runner import Op, Priority, Work

if TYPE_CHECKING:
    from corral.pools.manager import PoolManager

log = logging.getLogger("corral.pool")


class Creator:
    def __init__(self, manager: PoolManager) -> None:
        self.manager = manager
        self.ha_restarts = 0
        self.ha_failures = 0

    # -- building works ---------------------------------------------------------------------------
    def create(self, wanted: list[tuple[str, str | None]], priority: Priority) -> list[Work]:
        """Works for new VMs of (pool, on-demand request id or None)."""
        m = self.manager
        works = []
        for name, request_id in wanted:
            pool = m.pools[name]
            info = m.placer.template(pool)
            spec = VmSpec(new_hostname(m.settings.prefix), pool.name, pool.template, cpus=info.cpus,
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
        m = self.manager
        if works[0].op is Op.START:
            return [w for w in works if self._still_restartable(w)]
        now = m.clock()
        fresh: list[Vm] = []
        for work in works:
            spec = work.spec
            if work.recorded:  # a rerun: its record says where it goes now
                m.store.update_vm(spec.name, host=host)
            else:
                fresh.append(Vm(name=spec.name, pool=spec.pool, template=spec.template, provider=work.provider,
                                host=host, created_at=now, request_id=spec.request_id))
            m._inflight.add(spec.name)
        if fresh:
            m.store.add_vms(fresh)
            for record in fresh:
                m.lifecycle(record, None)
        log.info("cloning", extra={"host": host, "count": len(works),
                                   "pools": ",".join(sorted({w.spec.pool for w in works}))})
        return works

    def _still_restartable(self, work: Work) -> bool:
        record = self.manager.store.get_vm(work.name)
        if record is None or record.state is not VmState.RUNNING:
            log.info("HA restart dropped: the VM is no longer checked out",
                     extra={"vm": work.name, "state": record.state.value if record else "gone"})
            return False
        return True

    def done(self, work: Work, host: str, seconds: float) -> None:
        m = self.manager
        if work.op is Op.START:
            self._restarted(work, host, seconds)
            return
        now = m.clock()
        name, pool = work.name, work.spec.pool
        # kept in memory and written with the move to ready: one store write less per VM
        m._cloned[name] = now
        m.stats.clones += 1
        m._timing("clone", pool, name, seconds, now)
        m._clone_outcome(pool, True)
        log.info("cloned", extra={"pool": pool, "vm": name, "host": host, "duration": seconds, "tries": work.tries})
        self._settled(work)
        m._recheck(work.provider, name)

    def _restarted(self, work: Work, host: str, seconds: float) -> None:
        m = self.manager
        self.ha_restarts += 1
        old = m.store.get_vm(work.name)
        vm = m.store.update_vm(work.name, host=host)
        dead = ", ".join(sorted(work.exclude))
        log.warning("HA restart done", extra={"pool": work.spec.pool, "vm": work.name, "host": host,
                                              "old_host": dead, "duration": seconds, "tries": work.tries})
        if vm is not None and old is not None:
            m.lifecycle(vm, old.state, reason=f"restarted on {host}: host {dead} went down")

    def retrying(self, work: Work, host: str | None, error: str) -> None:
        m = self.manager
        where = f"on {host}" if host else "unplaced"
        log.warning("try failed, placing it again", extra={"pool": work.spec.pool, "vm": work.name, "where": where,
                                                          "tries": work.tries, "error": error, "op": work.op.value})
        m._inflight.discard(work.name)

    def failed(self, work: Work, error: str) -> None:
        m = self.manager
        if work.op is Op.START:
            self.ha_failures += 1
            log.error("HA restart failed", extra={"pool": work.spec.pool, "vm": work.name, "error": error,
                                                  "tries": work.tries})
            m.store.update_vm(work.name, reason=f"HA restart failed: {error}")
            return
        name, pool = work.name, work.spec.pool
        m.ondemand.inflight.discard(name)
        if not work.recorded:
            log.warning("clone not started", extra={"pool": pool, "vm": name, "error": error})
            return
        m.stats.clone_failures += 1
        m._clone_outcome(pool, False)
        vm = m.store.transition(name, (VmState.PENDING,), VmState.FAILED, reason=error)
        log.warning("clone failed", extra={"pool": pool, "vm": name, "error": error, "tries": work.tries})
        if vm is not None:
            m.lifecycle(vm, VmState.PENDING)
            m.spawn(m.destroy(vm), f"destroy-{name}")
        self._settled(work)

    def dropped(self, work: Work, why: str) -> None:
        """No host could take a new VM: the placer logged why; the pool waits before asking again."""
        m = self.manager
        m.ondemand.inflight.discard(work.name)
        m.hold_off(work.spec.pool)

    def _settled(self, work: Work) -> None:
        """A create's call is over: the VM is the store's and the inventory's to follow now."""
        m = self.manager
        name = work.name
        m._inflight.discard(name)
        m.ondemand.inflight.discard(name)
        m._dirty.add(work.spec.pool)
        if name in m._stale:
            m._stale.discard(name)
            vm = m.store.get_vm(name)
            if vm is not None:
                m.spawn(m.destroy(vm, reason="pool reset"), f"destroy-{name}")
        m.wake()
