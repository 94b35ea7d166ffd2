"""Make the store and a provider's inventory agree: at start-up, and now and then after.

Every lifecycle step recorded its intent in the store before it called the provider, so
whatever a crash interrupted can be finished or undone here:

- a VM recorded ``completed``/``failed``/``discovered`` is destroyed (again; a missing one is fine);
- a VM the store holds as pending/ready/running that the provider does not have is cleaned up;
- a VM the provider has in one of our pools that the store does not know is an orphan: it is
  recorded as ``discovered`` and destroyed;
- a pending VM whose guest is already up is checked for readiness.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from corral.domain.models import ProviderVm, Vm
from corral.domain.states import ACTIVE_STATES, DESTROY_INTENT_STATES, VmState

if TYPE_CHECKING:
    from corral.pools.manager import PoolManager

log = logging.getLogger("corral.recovery")



async def recover(manager: PoolManager, provider_name: str, vms: list[ProviderVm],
                  taken_at: float | None = None) -> int:
    """Reconcile the store with ``vms``, the provider's full inventory read at ``taken_at``.

    Records newer than the snapshot, and VMs with a step under way, are left alone.
    Returns how many records disagreed with the provider (lost VMs, orphans, wrong hosts,
    missed readiness); unfinished destroys are finished but not counted as drift.
    """
    present = {v.name: v for v in vms}
    records = [r for r in manager.store.list_vms(states=ACTIVE_STATES) if r.provider == provider_name]
    known = {r.name for r in records}
    finished = lost = moved = booted = 0
    for record in records:
        if manager.busy(record.name):
            continue
        if taken_at is not None and (manager.cloned_at(record) or record.created_at) >= taken_at:
            continue
        vm = present.get(record.name)
        if record.state in DESTROY_INTENT_STATES:
            if manager.destroys.due(record.name, time.monotonic()):  # a failed destroy waits its turn
                finished += 1
                manager.spawn(manager.destroy(record), f"destroy-{record.name}")
        elif vm is None:
            lost += 1
            manager.stats.vanished += 1
            log.warning("VM not found at the provider", extra={"pool": record.pool, "vm": record.name,
                                                              "state": record.state.value})
            manager.spawn(manager.destroy(record, reason="not found at the provider"), f"destroy-{record.name}")
        else:
            if record.state is VmState.MIGRATING:  # a crash came during a migration
                manager.store.transition(record.name, (VmState.MIGRATING,), VmState.RUNNING, host=vm.host)
                log.info("migration interrupted; the VM stays where it is",
                         extra={"pool": record.pool, "vm": record.name, "host": vm.host})
            elif vm.host != record.host:
                moved += 1
                manager.store.update_vm(record.name, host=vm.host)
            if record.state is VmState.PENDING and vm.powered_on and vm.guest_ready:
                booted += 1
                manager.spawn(manager.check_ready(record.name, ask_provider=False), f"ready-{record.name}")
    orphans = [v for v in vms if v.pool in manager.pools and v.name not in known and not manager.busy(v.name)]
    for vm in orphans:
        manager.spawn(_destroy_orphan(manager, provider_name, vm, taken_at), f"orphan-{vm.name}")
    if finished or lost or orphans or moved or booted:
        log.info("reconciled", extra={"provider": provider_name, "unfinished_destroys": finished,
                                      "lost": lost, "orphans": len(orphans), "moved": moved, "booted": booted})
    return lost + len(orphans) + moved + booted


async def _destroy_orphan(manager: PoolManager, provider_name: str, vm: ProviderVm,
                          taken_at: float | None) -> None:
    existing = manager.store.get_vm(vm.name)
    if existing is not None and existing.state is not VmState.DESTROYED:
        return  # known after all (recorded since the snapshot)
    if existing is not None and taken_at is not None and (existing.destroyed_at or 0.0) >= taken_at:
        return  # corral destroyed it after the snapshot was read
    record = Vm(name=vm.name, pool=vm.pool or "", template=vm.template or "", state=VmState.DISCOVERED,
                provider=provider_name, host=vm.host, ip=vm.ip, created_at=manager.clock(),
                reason="orphan: unknown to the store")
    manager.store.add_vm(record)
    log.warning("destroying orphan VM", extra={"pool": record.pool, "vm": vm.name, "host": vm.host})
    if await manager.destroy(record):
        manager.stats.orphans_destroyed += 1
