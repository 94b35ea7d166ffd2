"""Make the store and a provider's inventory agree: at start-up, and now and then after.

Every lifecycle step recorded its intent in the store before it called the provider, so
whatever a crash interrupted can be finished or undone here (the decision is
:func:`corral.pools.decide.recover`):

- a VM recorded ``completed``/``failed``/``discovered`` is destroyed (again; a missing one is fine);
- a VM the store holds as pending/ready/running that the provider does not have is cleaned up;
- a VM the provider has in one of our pools that the store does not know is an orphan: it is
  recorded as ``discovered`` and destroyed;
- a pending VM whose guest is already up is checked for readiness.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

from corral.domain.models import Pool, ProviderVm, Vm
from corral.domain.states import ACTIVE_STATES, VmState
from corral.inventory import Inventory
from corral.pools import decide
from corral.pools.execute import Executor
from corral.pools.ledger import Ledger
from corral.pools.stats import Stats
from corral.store.base import Store

log = logging.getLogger("corral.recovery")


async def adopt_orphan(store: Store, ledger: Ledger, stats: Stats, vm: ProviderVm, provider_name: str,
                       taken_at: float | None) -> None:
    """Record an orphan ``discovered`` and destroy it, unless the store knows it after all."""
    existing = store.get_vm(vm.name)
    if existing is not None and existing.state is not VmState.DESTROYED:
        return  # known after all (recorded since the snapshot)
    if existing is not None and taken_at is not None and (existing.destroyed_at or 0.0) >= taken_at:
        return  # corral destroyed it after the snapshot was read
    record = Vm(name=vm.name, pool=vm.pool or "", template=vm.template or "", state=VmState.DISCOVERED,
                provider=provider_name, host=vm.host, ip=vm.ip, created_at=ledger.clock(),
                reason="orphan: unknown to the store")
    ledger.add_discovered(record)
    log.warning("destroying orphan VM", extra={"pool": record.pool, "vm": vm.name, "host": vm.host})
    if await ledger.destroy(record):
        stats.orphans_destroyed += 1


class Recoverer:
    """``provider_up`` says whether a provider is connected; ``executor`` carries out the repairs."""

    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, inventory: Inventory,
                 stats: Stats, executor: Executor, provider_up: Callable[[str], bool]) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.inventory = inventory
        self.stats = stats
        self.executor = executor
        self.provider_up = provider_up

    def recover(self, provider_name: str, vms: list[ProviderVm], taken_at: float | None = None) -> int:
        """Reconcile the store with ``vms``, the provider's full inventory read at ``taken_at``.

        Records newer than the snapshot, and VMs with a step under way, are left alone.
        Returns how many records disagreed with the provider (lost VMs, orphans, wrong hosts,
        missed readiness); unfinished destroys are finished but not counted as drift.
        """
        records = [r for r in self.store.list_vms(states=ACTIVE_STATES) if r.provider == provider_name]
        names = [r.name for r in records] + [v.name for v in vms]
        facts = decide.RecoveryFacts(
            pools=frozenset(self.pools), taken_at=taken_at, busy=self.ledger.busy_among(names),
            destroy_waiting=self.ledger.destroy_waiting(r.name for r in records),
            cloned=self.ledger.clone_times())
        result = decide.recover(records, vms, facts)
        for action in result.actions:
            if isinstance(action, decide.Lost):
                log.warning("VM not found at the provider", extra={"pool": action.vm.pool, "vm": action.vm.name,
                                                                  "state": action.vm.state.value})
            elif isinstance(action, decide.EndMigration):
                log.info("migration interrupted; the VM stays where it is",
                         extra={"pool": action.vm.pool, "vm": action.vm.name, "host": action.host})
        self.executor.run(result.actions, provider=provider_name, taken_at=taken_at)
        if result.finished or result.lost or result.orphans or result.moved or result.booted:
            log.info("reconciled", extra={"provider": provider_name, "unfinished_destroys": result.finished,
                                          "lost": result.lost, "orphans": result.orphans, "moved": result.moved,
                                          "booted": result.booted})
        return result.repaired

    async def reconcile(self) -> int:
        """Repair drift (slow path): the inventory against a fresh snapshot, then the store against it.

        Returns the store records repaired; the inventory's own repairs are counted by its monitors.
        Both counts are expected to stay 0 while the change feed works.
        """
        repaired = 0
        for name, monitor in self.inventory.monitors.items():
            if not self.provider_up(name):
                continue
            taken = self.ledger.clock()
            await monitor.reconcile()
            repaired += self.recover(name, list(monitor.repo.vms.values()), taken_at=taken)
        self.stats.reconciles += 1
        self.stats.reconcile_repairs += repaired
        return repaired

    async def resync(self) -> None:
        """After missed events: the store against every inventory as it is now."""
        for name, monitor in self.inventory.monitors.items():
            self.recover(name, list(monitor.repo.vms.values()), taken_at=monitor.as_of)
