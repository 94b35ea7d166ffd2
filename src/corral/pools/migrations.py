"""Migrations the pool manager runs: at checkout (``migration_limit``) and for rebalancing.

A checked-out VM whose host is no longer among the least used hosts it could run on is
queued to move to the best one. The API never waits: checkout returns, and at most
``limit`` migrations run at once; the rest wait their turn in a bounded queue and are
judged again when their turn comes. A running VM is recorded ``migrating`` while it moves
(the intent, for crash recovery) and ``running`` again after, with its new ``host``,
``migrated``, ``migrated_at`` and ``migration_s``, as vmpooler keeps them. The target holds
a reservation until the inventory shows the VM there.

A provider that cannot move VMs between hosts says why (``Provider.cannot_migrate``): its
VMs are not queued at checkout (counted ``unsupported``), rebalancing plans nothing for it,
and the status shows the reason; the log says it once per provider, not per checkout.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections import deque
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from corral.domain.models import Pool, Vm
from corral.domain.states import VmState
from corral.inventory import Inventory
from corral.pools.ledger import Ledger
from corral.pools.placing import Placer
from corral.providers.base import Provider, ProviderError
from corral.scheduling import Demand
from corral.scheduling.migration import Decision, Rebalancer, checkout_target, movable
from corral.store.base import Store

log = logging.getLogger("corral.migration")


def _on_host(movable_on: dict[tuple[str, str], list[tuple[str, Demand]]], provider: str,
             host: str) -> list[tuple[str, Demand]]:
    return movable_on.get((provider, host), [])


def cannot_migrate(providers: Mapping[str, Provider]) -> dict[str, str]:
    """The providers that cannot move VMs between hosts, by name, each with its reason."""
    return {name: reason for name, provider in sorted(providers.items())
            if (reason := provider.cannot_migrate) is not None}


@dataclass(slots=True)
class MigrationStats:
    queued: int = 0
    started: int = 0
    done: int = 0
    failed: int = 0
    not_needed: int = 0  # judged when its turn came: the VM's host was fine
    dropped: int = 0  # the queue was full
    rebalanced: int = 0  # migrations started by rebalancing
    unsupported: int = 0  # not tried: the VM's provider cannot migrate

    def counts(self) -> MigrationCounts:
        return MigrationCounts(**asdict(self))


@dataclass(frozen=True, slots=True)
class MigrationCounts:
    """One reading of :class:`MigrationStats` (field names are the JSON keys)."""

    queued: int
    started: int
    done: int
    failed: int
    not_needed: int
    dropped: int
    rebalanced: int
    unsupported: int


class Migrations:
    QUEUE_LIMIT = 1_000

    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, providers: Mapping[str, Provider],
                 placer: Placer, inventory: Inventory, spawn: Callable[[Coroutine[Any, Any, object], str], None],
                 limit: int, rebalancer: Rebalancer | None = None) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.providers = providers
        self.placer = placer
        self.inventory = inventory
        self.spawn = spawn
        self.limit = limit
        self.rebalancer = rebalancer
        self.queue: deque[tuple[str, str | None]] = deque()  # (VM, target chosen by rebalancing)
        self.in_flight: set[str] = set()
        self.stats = MigrationStats()
        self.told: dict[str, str] = {}  # provider -> the reason it cannot migrate, as last logged

    @property
    def enabled(self) -> bool:
        return self.limit > 0

    def checked_out(self, vm: Vm) -> None:
        """A VM was handed out: queue it to be judged (never waits), unless its provider cannot move it."""
        if not self.enabled:
            return
        if self._refuses(vm.provider):
            self.stats.unsupported += 1
            return
        self._offer(vm.name, None)

    def cannot_migrate(self) -> dict[str, str]:
        """Each provider that cannot move VMs between hosts, with its reason (for the status)."""
        return cannot_migrate(self.providers)

    def _refuses(self, provider: str) -> bool:
        """True when ``provider`` cannot migrate; the first time (and when its reason changes) the log says why."""
        known = self.providers.get(provider)
        reason = known.cannot_migrate if known is not None else None
        if reason is None:
            self.told.pop(provider, None)
            return False
        if self.told.get(provider) != reason:
            self.told[provider] = reason
            log.info("migration skipped for this provider's VMs", extra={"provider": provider, "reason": reason})
        return True

    def _offer(self, name: str, target: str | None) -> None:
        if name in self.in_flight or any(queued == name for queued, _ in self.queue):
            return
        if len(self.queue) >= self.QUEUE_LIMIT:
            self.stats.dropped += 1
            log.warning("migration queue full; not migrating", extra={"vm": name})
            return
        self.queue.append((name, target))
        self.stats.queued += 1
        self._start()

    def _start(self) -> None:
        while self.queue and len(self.in_flight) < max(self.limit, 1):
            name, target = self.queue.popleft()
            self.in_flight.add(name)
            self.spawn(self._run(name, target), f"migrate-{name}")

    async def _run(self, name: str, target: str | None) -> None:
        try:
            decision = self._judge(name, target)
            if decision is None:
                return
            if decision.target is None:
                self.stats.not_needed += 1
                log.info("no migration needed", extra={"vm": name, "host": decision.source, "reason": decision.reason})
                return
            await self._migrate(decision)
        except Exception:  # one migration must not stop the others
            log.exception("migration failed", extra={"vm": name})
        finally:
            self.in_flight.discard(name)
            self._start()

    def _judge(self, name: str, target: str | None) -> Decision | None:
        vm = self.store.get_vm(name)
        if vm is None or vm.state not in (VmState.RUNNING, VmState.READY) or vm.host is None or self.ledger.busy(name):
            return None  # gone, returned or busy meanwhile
        if self._refuses(vm.provider):  # it learnt so since the VM was queued (a reconnect)
            self.stats.unsupported += 1
            return None
        pool = self.pools.get(vm.pool)
        if pool is None:
            return None
        if target is not None:  # chosen by rebalancing this cycle
            return Decision(name, vm.host, target, "rebalancing")
        self.placer.settle(vm.provider)  # reservations the inventory caught up with must not count twice
        return checkout_target(self.placer.schedulers[vm.provider], self.inventory[vm.provider].hosts(), name, vm.host,
                               self.placer.demand(pool), self.placer.pool_counts(vm.provider, [pool]))

    async def _migrate(self, decision: Decision) -> None:
        name, source, target = decision.vm, decision.source, decision.target
        assert target is not None
        vm = self.store.get_vm(name)
        if vm is None or self.ledger.busy(name):
            return
        running = vm.state is VmState.RUNNING
        if running:
            moved = self.ledger.move(name, (VmState.RUNNING,), VmState.MIGRATING, note=f"migrating to {target}")
            if moved is None:
                return  # returned meanwhile
        pool = self.pools[vm.pool]
        scheduler = self.placer.schedulers[vm.provider]
        demand = self.placer.demand(pool)
        source_info = self.inventory[vm.provider].repo.host(source)  # gone meanwhile: reserve the plain demand
        scheduler.reservations.reserve(name, target, movable(demand, source_info) if source_info else demand)
        self.inventory[vm.provider].expect_migration(name, target)
        self.stats.started += 1
        started = asyncio.get_running_loop().time()
        log.info("migrating", extra={"pool": vm.pool, "vm": name, "from": source, "to": target,
                                     "reason": decision.reason})
        try:
            with self.ledger.holding(name):  # a return meanwhile destroys it after the move (the sweep retries)
                await self.providers[vm.provider].migrate_vm(name, target)
        except ProviderError as exc:
            self.stats.failed += 1
            scheduler.reservations.release(name)
            log.warning("migration failed", extra={"pool": vm.pool, "vm": name, "from": source, "to": target,
                                                   "error": str(exc)})
            if running:
                self.ledger.move(name, (VmState.MIGRATING,), VmState.RUNNING, note=f"migration failed: {exc}")
            return
        seconds = asyncio.get_running_loop().time() - started
        fields = {"host": target, "migrated": True, "migrated_at": self.ledger.clock(), "migration_s": seconds}
        if running:
            self.ledger.move(name, (VmState.MIGRATING,), VmState.RUNNING, fields, note=f"migrated from {source}")
        else:
            self.ledger.update(name, **fields)
        self.stats.done += 1
        log.info("migrated", extra={"pool": vm.pool, "vm": name, "from": source, "to": target,
                                    "duration": seconds})

    # -- rebalancing --------------------------------------------------------------------------
    def rebalance(self) -> list[Decision]:
        """One rebalancing cycle over every provider; queues the chosen moves."""
        if self.rebalancer is None:
            return []
        demands = {name: self.placer.demand(pool) for name, pool in self.pools.items()}
        movable_on: dict[tuple[str, str], list[tuple[str, Demand]]] = {}  # (provider, host) -> VMs
        for vm in self.store.list_vms(states=(VmState.READY, VmState.RUNNING)):
            if vm.host and vm.pool in demands and not self.ledger.busy(vm.name) and vm.name not in self.in_flight:
                movable_on.setdefault((vm.provider, vm.host), []).append((vm.name, demands[vm.pool]))
        moves: list[Decision] = []
        for provider in self.providers:
            if self._refuses(provider):
                continue
            planned = self.rebalancer.plan(self.placer.schedulers[provider], self.inventory[provider].hosts(),
                                           self.ledger.clock(), functools.partial(_on_host, movable_on, provider))
            for move in planned:
                log.info("rebalancing", extra={"vm": move.vm, "from": move.source, "to": move.target,
                                               "reason": move.reason})
                self.stats.rebalanced += 1
                self._offer(move.vm, move.target)
            moves += planned
        return moves
