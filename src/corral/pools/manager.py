"""The pool manager: builds the parts that keep ``ready + pending == size`` for every pool, and
runs their loops on one asyncio loop.

It reacts to events rather than polling each pool: a checkout, a finished clone, or an
inventory event (a guest that came up, a VM that vanished, a host that went down; see
:mod:`corral.pools.reactions`) wakes it at once. A slow sweep (``check_interval``) is the
safety net for timers (pending timeout, ready TTL, running lifetime), retries of destroys,
and readiness of VMs the feed said nothing about; a slower reconcile
(``reconcile_interval``) repairs drift between the store, the inventory and the provider,
and counts what it repaired. Every move of a VM between corral's states is published on the
event bus as a :class:`~corral.domain.events.VmLifecycle` event, by the one writer of VM
records (:mod:`corral.pools.ledger`).

Crash safety: every provider call is preceded by a store write that records the intent
(``pending`` before a clone, ``completed``/``failed``/``discovered`` before a destroy), so after a
``kill -9`` :mod:`corral.pools.recovery` can finish or undo every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
from collections.abc import Callable, Iterable

from corral.domain.events import Event, VmLifecycle
from corral.domain.models import Pool, Vm
from corral.domain.states import VmState
from corral.inventory import Inventory, Subscription
from corral.pools.background import Background
from corral.pools.checkout import Setting, with_overrides
from corral.pools.connections import Connections
from corral.pools.creating import Creator
from corral.pools.decide import Destroy, HaRestart
from corral.pools.destroying import DestroyRetries
from corral.pools.execute import Executor
from corral.pools.ledger import Ledger
from corral.pools.migrations import Migrations
from corral.pools.ondemand import OndemandQueue
from corral.pools.outage import StoreOutage
from corral.pools.placing import Placer
from corral.pools.probing import ReadyChecks
from corral.pools.reactions import Reactions, accepts
from corral.pools.recovery import Recoverer, adopt_orphan
from corral.pools.refill import Backoff, Refiller
from corral.pools.settings import ManagerSettings
from corral.pools.sizing import Sizing
from corral.pools.stats import Stats
from corral.pools.sweep import Sweeper
from corral.pools.vmtasks import VmTasks
from corral.providers.base import Provider
from corral.runner import Runner, Work
from corral.scheduling.migration import Rebalancer
from corral.store.base import Store

log = logging.getLogger("corral.pool")



class PoolManager:
    def __init__(
        self,
        pools: list[Pool],
        providers: dict[str, Provider],
        store: Store,
        settings: ManagerSettings | None = None,
        clock: Callable[[], float] = time.time,
        inventory: Inventory | None = None,
    ) -> None:
        self.pools: dict[str, Pool] = {p.name: p for p in pools}  # changed in place, shared by the parts
        self.providers = providers
        self.store = store
        self.settings = s = settings or ManagerSettings()
        self.clock = clock
        self.stats = Stats()
        self.inventory = inventory or Inventory(providers, s.monitor_settings())
        assert self.inventory.bus is not None
        self.bus = self.inventory.bus
        self.outage = StoreOutage()
        self.background = Background(self.outage.failed)
        self.spawn = self.background.spawn
        self.backoff = Backoff(s.check_interval)
        self.placer = Placer(providers, self.inventory, s.scheduling)
        self.ledger = Ledger(store, providers, self._publish, clock, self.stats, retry_first_s=s.check_interval,
                             spawn=self.spawn, pool_changed=self.pool_changed, queued=self._queued,
                             withdraw=self._withdraw)
        self.checks = ReadyChecks(store, self.ledger, providers, self.inventory, self.spawn, self._became_ready,
                                  retry_s=s.ready_retry_s)
        ondemand_inflight: set[str] = set()
        self.creator = Creator(self.pools, self.placer, store, self.ledger, self.stats, self.backoff, prefix=s.prefix,
                               ondemand_inflight=ondemand_inflight, spawn=self.spawn, recheck=self.checks.recheck,
                               pool_changed=self.pool_changed, unavailable=self.outage.failed)
        self.runner = Runner(providers, self.placer, self.creator,
                             dataclasses.replace(s.runner, task_limit=s.task_limit),
                             need=lambda pool: self.refiller.need(pool))
        self.ondemand = OndemandQueue(self.pools, store, self.ledger, self.runner, inflight=ondemand_inflight,
                                      create=self.creator.create, backing_off=self.backoff.backing_off,
                                      wake=self.wake, spawn=self.spawn, clone_limit=s.ondemand_clone_limit,
                                      ttl_s=s.ondemand_ttl_s, lifetime_auth_s=s.lifetime_auth_s)
        self.tasks = VmTasks(store, self.ledger, providers, self.spawn)
        rebalancer = Rebalancer(s.rebalance_threshold, s.rebalance_sustain_s) if s.rebalance else None
        self.migrations = Migrations(self.pools, store, self.ledger, providers, self.placer, self.inventory,
                                     self.spawn, s.migration_limit, rebalancer)
        self.connections = Connections(providers, self._bring_in, first_s=s.connect_retry_s,
                                       max_s=s.connect_retry_max_s)
        self.executor = Executor(self.ledger, self.stats, self.spawn, check_ready=self.checks.check_ready,
                                 hand_out=self.ondemand.vm_ready, restart=self._restart, submit=self.runner.submit,
                                 adopt_orphan=functools.partial(adopt_orphan, store, self.ledger, self.stats))
        self.recoverer = Recoverer(self.pools, store, self.ledger, self.inventory, self.stats, self.executor,
                                   self.connections.up)
        self.reactions = Reactions(self.pools, store, self.ledger, self.inventory, self.executor)
        self.sizing = Sizing(self.pools, clock, self._room)
        self.refiller = Refiller(self.pools, store, self.ledger, self.runner, self.backoff,
                                 create=self.creator.create, provider_up=self.connections.up,
                                 then=self.ondemand.fill, spawn=self.spawn, gather_s=s.refill_gather_s,
                                 expected=self.sizing.expected, unavailable=self.outage.failed)
        self.sweeper = Sweeper(self.pools, store, self.ledger, self.executor, providers_up=self._providers_up,
                               ondemand_sweep=self.ondemand.sweep, look_at=self._look_at,
                               reconcile=self.recoverer.reconcile, check_interval=s.check_interval,
                               reconcile_interval=s.reconcile_interval, data_ttl_s=s.data_ttl_s,
                               store_up=self.outage.succeeded, unavailable=self.outage.failed)
        self.subscription: Subscription | None = None  # the manager's own on the event bus, once started
        self._loops: list[asyncio.Task[None]] = []
        self._running = False

    # -- life of the manager ---------------------------------------------------------------
    async def start(self) -> None:
        """Connect, recover from whatever the last run left, then run the loops.

        A provider that cannot be reached does not stop the others: it is left down and
        retried in the background (:mod:`corral.pools.connections`), and brought in when it
        comes up.
        """
        await self.connections.connect_all(self.settings.connect_wait_s)
        self.subscription = self.bus.subscribe("pool-manager", self.reactions.handle, accepts=accepts,
                                               on_resync=self.recoverer.resync)
        self._running = True
        self.inventory.run(self._providers_up())
        self.runner.run()
        self._loops = [asyncio.create_task(self.refiller.loop(), name="refill")]
        self._loops.append(asyncio.create_task(self.sweeper.loop(), name="sweep"))
        if self.migrations.rebalancer is not None:
            self._loops.append(asyncio.create_task(self._rebalance_loop(), name="rebalance"))
        self.wake()  # every pool starts dirty
        self.connections.keep_trying()
        down = self.connections.down()
        log.info("manager started", extra={"pools": len(self.pools), "providers": len(self.providers),
                                           "providers_down": ",".join(down) or None})

    async def _bring_in(self, provider: str) -> None:
        """``provider`` has just connected: learn its templates, read its inventory and recover
        its VMs; once the manager runs, also follow its change feed and fill its pools."""
        pools = [p for p in self.pools.values() if p.provider == provider]
        await self.placer.learn(pools)
        monitor = self.inventory[provider]
        await monitor.load()
        self.recoverer.recover(provider, list(monitor.repo.vms.values()))
        if self._running:
            self.inventory.run([provider])
            for pool in pools:
                self.pool_changed(pool.name)

    async def stop(self) -> None:
        self._running = False
        await self.connections.stop()
        await self.runner.stop()
        for task in self._loops:
            task.cancel()
        for task in self._loops:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        await self.background.stop()
        await self.inventory.stop()
        with contextlib.suppress(Exception):
            self.flush_timings()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()
        log.info("manager stopped")

    async def _rebalance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rebalance_interval_s)
            try:
                self.migrations.rebalance()
            except Exception:
                log.exception("rebalancing failed")

    def quiet(self) -> bool:
        """No background task (destroy, probe, migration, VM task) runs and no refill round is due."""
        return not len(self.background) and not self.refiller.waking

    # -- wiring between the parts ---------------------------------------------------------------
    def _publish(self, event: Event) -> None:
        """Publish a move of a VM; a destroyed VM's placement reservation goes with it (a VM
        returned and destroyed before the inventory ever showed it on its host would otherwise
        hold its host's room until the reservation's timeout)."""
        if isinstance(event, VmLifecycle) and event.new is VmState.DESTROYED:
            pool = self.pools.get(event.pool)
            if pool is not None:
                self.placer.release(pool.provider, event.vm)
        self.bus.publish(event)

    def _providers_up(self) -> list[str]:
        return [name for name in self.providers if self.connections.up(name)]

    def _queued(self, name: str) -> bool:
        return self.runner.holds(name)

    def _withdraw(self, name: str) -> bool:
        """Take back the runner's work for ``name`` before it is destroyed; False if it is in flight."""
        work: Work | None = self.runner.held.get(name)
        if work is None:
            return True
        if work.sent:
            return False  # its outcome decides: a failure destroys it, a success leaves it to the next look
        self.runner.cancel([work])
        self.ondemand.inflight.discard(name)
        return True

    def _restart(self, action: HaRestart) -> Work:
        return self.creator.restart(action.vm, action.pool, action.avoid)

    def _became_ready(self, vm: Vm) -> None:
        self.sizing.became_ready(vm.pool, vm.boot_duration_s)
        if vm.request_id is not None:
            self.ondemand.vm_ready(vm)
        else:
            self.pool_changed(vm.pool)

    def _look_at(self, pools: Iterable[str]) -> None:
        """The sweep looks at every pool: autosized pools get their size first."""
        self.resize()
        self.refiller.look_at(pools)

    def _room(self, pool: Pool) -> int | None:
        """The largest size the hosts have room for: while no host could take the pool's last VM,
        the VMs it holds now (ready, pending and being made); otherwise not known (None)."""
        if pool.name not in self.placer.failures:
            return None
        have = self.store.counts().get(pool.name, {})
        return have.get(VmState.READY, 0) + have.get(VmState.PENDING, 0) + self.runner.waiting(pool.name)

    def resize(self, pools: list[str] | None = None) -> None:
        """Set the autosized pools' sizes (of ``pools``; None: all) to their targets; the refill
        makes or removes the VMs (removing only ready and pending ones)."""
        for name, size in self.sizing.targets(pools).items():
            view = self.sizing.view(name)
            log.info("pool size set by autosizing",
                     extra={"pool": name, "size": size, "reason": view.reason if view is not None else None})
            self.pools[name] = dataclasses.replace(self.pools[name], size=size)
            self.pool_changed(name)

    def demand_seen(self, pool: str, count: int) -> None:
        """``count`` checkouts of ``pool`` found it short: they count into its demand too."""
        self.sizing.checked_out(pool, count)
        self.resize([pool])

    def pool_changed(self, pool: str) -> None:
        """Something changed in ``pool``: look at it at once."""
        self.refiller.pool_changed(pool)

    def wake(self) -> None:
        self.refiller.wake()

    # -- what the parts answer ---------------------------------------------------------------------
    @property
    def destroys(self) -> DestroyRetries:
        return self.ledger.destroys

    @property
    def clones_in_flight(self) -> int:
        return self.ledger.clones_in_flight

    def holding(self, name: str) -> contextlib.AbstractContextManager[None]:
        return self.ledger.holding(name)

    def backing_off(self, pool: str) -> bool:
        """True while clones of ``pool`` wait after failures (no create-call storm on a broken template)."""
        return self.backoff.backing_off(pool)

    def flush_timings(self) -> None:
        self.ledger.flush_timings()

    async def destroy(self, vm: Vm, *, reason: str | None = None) -> bool:
        return await self.ledger.destroy(vm, reason=reason)

    def retry_destroy(self, name: str) -> bool:
        return self.ledger.retry_destroy(name)

    async def reconcile(self) -> int:
        return await self.recoverer.reconcile()

    # -- pool settings changed at run time ---------------------------------------------------
    def set_pool_size(self, pool: str, size: int, *, held: bool = True) -> None:
        """Set the pool's size; for an autosized pool, ``held`` stops autosizing until a call with
        ``held`` False (an override reset) resumes it."""
        self.pools[pool] = dataclasses.replace(self.pools[pool], size=size)
        self.sizing.hold(pool, held)
        if not held:
            self.resize([pool])
        self.pool_changed(pool)

    def set_pool_template(self, pool: str, template: str) -> None:
        """Build the pool's VMs from ``template`` from now on; its stock is replaced."""
        if self.pools[pool].template == template:
            return
        self.pools[pool] = dataclasses.replace(self.pools[pool], template=template)
        self.spawn(self.placer.learn([self.pools[pool]]), f"template-{pool}")
        self.reset_pool(pool, reason="pool template changed")

    def set_clone_target(self, pool: str, clone_target: str | None) -> None:
        self.pools[pool] = dataclasses.replace(self.pools[pool], clone_target=clone_target)

    # -- pools and providers changed by a reload of the configuration ---------------------------
    def add_pool(self, pool: Pool) -> None:
        """Run ``pool`` from now on: its template is learnt and it starts filling."""
        self.pools[pool.name] = pool
        self.spawn(self.placer.learn([pool]), f"template-{pool.name}")
        self.pool_changed(pool.name)

    def remove_pool(self, pool: str) -> int:
        """Stop running ``pool``: its ready and pending VMs are destroyed (work not sent is taken
        back); checked-out VMs keep their lifetime and are destroyed when returned or expired
        (a record of a pool no longer run is swept as of size 0). How many VMs are destroyed."""
        self.pools.pop(pool, None)
        self.placer.failures.pop(pool, None)
        return self.refiller.reset(pool, reason="pool removed")

    def change_pool(self, pool: Pool) -> None:
        """Run ``pool`` (changed in the configuration) as it is now: a new template replaces the
        stock (as :meth:`set_pool_template`), a size or any other key applies at once."""
        old = self.pools[pool.name]
        self.pools[pool.name] = pool
        if old.template != pool.template or old.provider != pool.provider:
            self.spawn(self.placer.learn([pool]), f"template-{pool.name}")
            self.reset_pool(pool.name, reason="pool template changed")
        else:
            self.pool_changed(pool.name)

    async def replace_provider(self, name: str, provider: Provider) -> None:
        """Use ``provider`` as endpoint ``name`` from now on (its connection keys changed, or it is
        new): only that endpoint is reconnected. Its feed is followed anew, its VMs recovered
        against the new session, and the old session is closed; a call under way on the old one
        fails and is tried again as any failed call."""
        old = self.providers.get(name)
        await self.connections.forget(name)
        self.providers[name] = provider
        await self.inventory.replace(name, provider)
        self.placer.use(name)
        if self._running:
            self.connections.keep_trying()
        if old is not None and old is not provider:
            with contextlib.suppress(Exception):
                await old.close()
        log.info("provider replaced", extra={"provider": name})

    def reset_pool(self, pool: str, *, reason: str = "pool reset") -> int:
        """Destroy the pool's ready and pending VMs (not those of on-demand requests); refill."""
        return self.refiller.reset(pool, reason)

    def apply_overrides(self, overrides: dict[str, dict[str, object]]) -> None:
        """Settings changed at the API in an earlier run (before start: no VM is touched)."""
        for pool, values in overrides.items():
            if pool not in self.pools:
                continue
            self.pools[pool] = with_overrides(self.pools[pool], values)
            if Setting.SIZE in values:
                self.sizing.hold(pool, True)

    # -- checkout and return ---------------------------------------------------------------
    def checkout(self, wanted: list[str], *, token: str | None = None, user: str | None = None,
                 lifetime_s: float | None = None) -> list[Vm] | None:
        """All or nothing: one ready VM per entry of ``wanted`` (pool names, repeats allowed), in order.

        ``lifetime_s`` replaces the pools' lifetimes (a token's ``vm_lifetime_auth``).
        """
        lifetimes = {name: lifetime_s or self.pools[name].lifetime_s for name in wanted}
        vms = self.ledger.checkout(wanted, lifetimes=lifetimes, token=token, user=user)
        if vms is not None:
            for name in wanted:
                self.sizing.checked_out(name)
            self.resize(list(lifetimes))  # a rise is at once
        for name in lifetimes:
            self.pool_changed(name)
        for vm in vms or ():
            log.info("checked out", extra={"pool": vm.pool, "vm": vm.name, "host": vm.host})
            self.migrations.checked_out(vm)
        return vms

    def return_vm(self, name: str, *, destroy: bool = True) -> Vm | None:
        """A user is done with a checked-out VM: record it ``completed`` and destroy it (or, with
        ``destroy`` False, leave the destroy to the process that runs its pool). The record;
        None if the VM is not checked out."""
        vm = self.ledger.move(name, (VmState.RUNNING, VmState.MIGRATING), VmState.COMPLETED,
                              completed_at=self.clock(), reason="returned")
        if vm is None:
            return None
        log.info("returned", extra={"pool": vm.pool, "vm": vm.name, "host": vm.host})
        if destroy:
            self.spawn(self.ledger.destroy(vm), f"destroy-{name}")
        return vm

    def finish_returns(self, pool: str) -> int:
        """Destroy the VMs of ``pool`` returned through another process (``completed`` records
        with no step under way and no failed destroy waiting its turn); how many."""
        returned = self.store.list_vms(pool=pool, states=(VmState.COMPLETED,))
        names = [vm.name for vm in returned]
        skip = self.ledger.busy_among(names) | self.ledger.destroy_waiting(names)
        due = [Destroy(vm) for vm in returned if vm.name not in skip]
        self.executor.run(due)
        return len(due)
