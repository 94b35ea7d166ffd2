"""The pool manager: keeps ``ready + pending == size`` for every pool, on one asyncio loop.

It reacts to events rather than polling each pool: a checkout, a finished clone, or an
inventory event (a guest that came up, a VM that vanished, a host that went down; see
:mod:`corral.pools.reactions`) wakes it at once. A slow sweep (``check_interval``) is the
safety net for timers (pending timeout, ready TTL, running lifetime), retries of destroys,
and readiness of VMs the feed said nothing about; a slower reconcile
(``reconcile_interval``) repairs drift between the store, the inventory and the provider,
and counts what it repaired. Every move of a VM between corral's states is published on the
event bus as a :class:`~corral.domain.events.VmLifecycle` event.

Crash safety: every provider call is preceded by a store write that records the intent
(``pending`` before a clone, ``completed``/``failed``/``discovered`` before a destroy), so after a
``kill -9`` :mod:`corral.pools.recovery` can finish or undo every step.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from corral.domain.events import VmLifecycle
from corral.domain.models import Pool, Vm
from corral.domain.states import DESTROY_INTENT_STATES, VmState
from corral.inventory import Inventory, MonitorSettings
from corral.pools.connections import Connections
from corral.pools.creating import Creator
from corral.pools.destroying import DestroyRetries, Outcome, outcome_of
from corral.pools.ondemand import OndemandQueue
from corral.pools.vmtasks import VmTasks
from corral.pools.migrations import Migrations
from corral.pools.placing import Placer
from corral.pools.reactions import Reactions, accepts
from corral.providers.base import Provider, ProviderError, VmNotFound
from corral.runner import Op, Priority, QueueFull, Runner, RunnerSettings, Work
from corral.scheduling import SchedulerSettings
from corral.scheduling.migration import Rebalancer
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


@dataclass(slots=True)
class ManagerSettings:
    task_limit: int = 10  # provider calls creating or starting VMs in flight at most
    check_interval: float = 5.0  # seconds between safety-net sweeps
    ready_retry_s: float = 1.0  # a guest that is up but not yet reachable is probed again after this
    reconcile_interval: float = 300.0  # seconds between full store/provider comparisons
    prefix: str = ""
    data_ttl_s: float = 168 * 3600.0
    feed_timeout: float = 30.0  # long-poll length of one change-feed call
    ondemand_clone_limit: int = 10  # on-demand clones in flight at most
    ondemand_ttl_s: float = 300.0  # an on-demand request not ready after this has failed
    lifetime_auth_s: float | None = None  # lifetime of VMs handed to a token's user
    refill_gather_s: float = 0.003  # a refill round waits this long for more work to gather
    host_down_grace_s: float = 60.0  # a host silent this long is declared down
    scheduling: SchedulerSettings = field(default_factory=SchedulerSettings)
    migration_limit: int = 0  # migrations at checkout in flight at once; 0: none
    rebalance: bool = False
    rebalance_threshold: float = 80.0  # percent CPU or memory
    rebalance_sustain_s: float = 120.0
    rebalance_interval_s: float = 60.0
    runner: RunnerSettings = field(default_factory=RunnerSettings)  # its task_limit is the one above
    connect_retry_s: float = 1.0  # a provider that cannot be reached is tried again after this, doubled
    connect_retry_max_s: float = 60.0  # each time up to this
    connect_wait_s: float = 10.0  # start waits this long for the providers; a slower one comes in later

    def monitor_settings(self) -> MonitorSettings:
        return MonitorSettings(feed_timeout=self.feed_timeout, host_down_grace_s=self.host_down_grace_s)


@dataclass(slots=True)
class Stats:
    """Counters for the status endpoint and the benchmarks."""

    clones: int = 0
    clone_failures: int = 0
    orphans_destroyed: int = 0
    vanished: int = 0
    destroyed: int = 0
    reconciles: int = 0
    reconcile_repairs: int = 0  # store records a reconcile found disagreeing with the provider (expected 0)


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
        self.pools: dict[str, Pool] = {p.name: p for p in pools}
        self.providers = providers
        self.store = store
        self.settings = settings or ManagerSettings()
        self.clock = clock
        self.stats = Stats()
        self.inventory = inventory or Inventory(providers, self.settings.monitor_settings())
        assert self.inventory.bus is not None
        self.bus = self.inventory.bus
        self.reactions = Reactions(self)
        self._inflight: set[str] = set()  # names whose create call is under way
        self._stale: set[str] = set()  # in-flight names to destroy once created (pool reset)
        self._backoff: dict[str, tuple[float, float]] = {}  # pool -> (no clone before, last delay)
        self._timings: list[tuple[str, str, str, float, float]] = []  # clone/boot times not yet stored
        self._cloned: dict[str, float] = {}  # pending VMs whose create call returned: when
        self._busy: set[str] = set()  # names being destroyed or probed
        self.destroys = DestroyRetries(first_delay_s=self.settings.check_interval)  # failed destroys
        self._dirty: set[str] = set(self.pools)
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._loops: list[asyncio.Task[None]] = []
        self.ondemand = OndemandQueue(self, clone_limit=self.settings.ondemand_clone_limit,
                                      ttl_s=self.settings.ondemand_ttl_s,
                                      lifetime_auth_s=self.settings.lifetime_auth_s)
        self.tasks = VmTasks(self)
        self.placer = Placer(providers, self.inventory, self.settings.scheduling)
        self.creator = Creator(self)
        self.runner = Runner(providers, self.placer, self.creator,
                             dataclasses.replace(self.settings.runner, task_limit=self.settings.task_limit))
        s = self.settings
        rebalancer = Rebalancer(s.rebalance_threshold, s.rebalance_sustain_s) if s.rebalance else None
        self.migrations = Migrations(self, s.migration_limit, rebalancer)
        self.connections = Connections(providers, self._bring_in, first_s=s.connect_retry_s,
                                       max_s=s.connect_retry_max_s)
        self._running = False

    # -- life of the manager ---------------------------------------------------------------
    async def start(self) -> None:
        """Connect, recover from whatever the last run left, then run the loops.

        A provider that cannot be reached does not stop the others: it is left down and
        retried in the background (:mod:`corral.pools.connections`), and brought in when it
        comes up.
        """
        await self.connections.connect_all(self.settings.connect_wait_s)
        self.bus.subscribe("pool-manager", self.reactions.handle, accepts=accepts, on_resync=self.reactions.resync)
        self._running = True
        self.inventory.run([name for name in self.providers if self.connections.up(name)])
        self.runner.run()
        self._loops = [asyncio.create_task(self._refill_loop(), name="refill")]
        self._loops.append(asyncio.create_task(self._sweep_loop(), name="sweep"))
        if self.migrations.rebalancer is not None:
            self._loops.append(asyncio.create_task(self._rebalance_loop(), name="rebalance"))
        self._wake.set()  # every pool starts dirty
        self.connections.keep_trying()
        down = self.connections.down()
        log.info("manager started", extra={"pools": len(self.pools), "providers": len(self.providers),
                                           "providers_down": ",".join(down) or None})

    async def _bring_in(self, provider: str) -> None:
        """``provider`` has just connected: learn its templates, read its inventory and recover
        its VMs; once the manager runs, also follow its change feed and fill its pools."""
        from corral.pools.recovery import recover

        pools = [p for p in self.pools.values() if p.provider == provider]
        await self.placer.learn(pools)
        monitor = self.inventory[provider]
        await monitor.load()
        await recover(self, provider, list(monitor.repo.vms.values()))
        if self._running:
            self.inventory.run([provider])
            for pool in pools:
                self.pool_changed(pool.name)

    async def stop(self) -> None:
        self._running = False
        await self.connections.stop()
        await self.runner.stop()
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        for task in [*self._loops, *self._tasks]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._loops.clear()
        await self.inventory.stop()
        with contextlib.suppress(Exception):
            self.flush_timings()
        for provider in self.providers.values():
            with contextlib.suppress(Exception):
                await provider.close()
        log.info("manager stopped")

    def spawn(self, coro: object, name: str) -> None:
        task = asyncio.create_task(coro, name=name)  # type: ignore[arg-type]
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        return name in self._inflight or name in self._busy or self.runner.holds(name)

    @property
    def clones_in_flight(self) -> int:
        return len(self._inflight)

    def pool_changed(self, pool: str) -> None:
        """Something changed in ``pool``: look at it at once."""
        self._dirty.add(pool)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def lifecycle(self, vm: Vm, old: VmState | None, reason: str | None = None) -> None:
        """Publish that ``vm`` (the record after the move) left state ``old``."""
        self.bus.publish(VmLifecycle(self.clock(), vm=vm.name, pool=vm.pool, old=old, new=vm.state, host=vm.host,
                                     reason=reason if reason is not None else vm.reason))

    # -- pool settings changed at run time ---------------------------------------------------
    def set_pool_size(self, pool: str, size: int) -> None:
        self.pools[pool] = dataclasses.replace(self.pools[pool], size=size)
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

    def reset_pool(self, pool: str, *, reason: str = "pool reset") -> int:
        """Destroy the pool's ready and pending VMs (not those of on-demand requests); refill."""
        self.runner.cancel(self.runner.works(
            lambda w: w.op is Op.CREATE and w.spec.pool == pool and w.request_id is None))
        stock = [v for v in self.store.list_vms(pool=pool, states=(VmState.READY, VmState.PENDING))
                 if v.request_id is None]
        for vm in stock:
            if vm.name in self._inflight:
                self._stale.add(vm.name)  # destroyed when its create call returns
            else:
                self.spawn(self.destroy(vm, reason=reason), f"destroy-{vm.name}")
        log.info("pool reset", extra={"pool": pool, "count": len(stock), "reason": reason})
        self.pool_changed(pool)
        return len(stock)

    def apply_overrides(self, overrides: dict[str, dict[str, object]]) -> None:
        """Settings changed at the API in an earlier run (before start: no VM is touched)."""
        for pool, values in overrides.items():
            if pool not in self.pools:
                continue
            changes = {k: v for k, v in values.items() if k in ("size", "template", "clone_target")}
            self.pools[pool] = dataclasses.replace(self.pools[pool], **changes)  # type: ignore[arg-type]

    # -- checkout and return ---------------------------------------------------------------
    def checkout(self, wanted: list[str], *, token: str | None = None, user: str | None = None,
                 lifetime_s: float | None = None) -> list[Vm] | None:
        """All or nothing: one ready VM per entry of ``wanted`` (pool names, repeats allowed), in order.

        ``lifetime_s`` replaces the pools' lifetimes (a token's ``vm_lifetime_auth``).
        """
        lifetimes = {name: lifetime_s or self.pools[name].lifetime_s for name in wanted}
        vms = self.store.checkout_many([(name, 1) for name in wanted], now=self.clock(), lifetimes=lifetimes,
                                       token=token, user=user)
        for name in lifetimes:
            self.pool_changed(name)
        for vm in vms or ():
            self.lifecycle(vm, VmState.READY)
            log.info("checked out", extra={"pool": vm.pool, "vm": vm.name, "host": vm.host})
            self.migrations.checked_out(vm.name)
        return vms

    def return_vm(self, name: str) -> bool:
        """A user is done with a checked-out VM: destroy it. False if it is not checked out."""
        vm = self.store.transition(
            name, (VmState.RUNNING, VmState.MIGRATING), VmState.COMPLETED,
            completed_at=self.clock(), reason="returned",
        )
        if vm is None:
            return False
        self.lifecycle(vm, VmState.RUNNING)
        log.info("returned", extra={"pool": vm.pool, "vm": vm.name, "host": vm.host})
        self.spawn(self.destroy(vm), f"destroy-{name}")
        return True

    # -- refill ----------------------------------------------------------------------------
    async def _refill_loop(self) -> None:
        while True:
            await self._wake.wait()
            if self.settings.refill_gather_s > 0:
                # let a burst of checkouts and finished clones gather into one round: one
                # count of the store and bigger create calls instead of one VM per round
                await asyncio.sleep(self.settings.refill_gather_s)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                self._refill(dirty)
                self.ondemand.fill()
            except Exception:  # keep the loop alive; the sweep retries
                log.exception("refill failed")

    def _refill(self, pools: set[str]) -> None:
        counts = self.store.counts()
        deficits: dict[str, int] = {}
        for name in pools:
            pool = self.pools.get(name)
            if self.backing_off(name) or (pool is not None and not self.connections.up(pool.provider)):
                continue  # the sweep looks again
            have = counts.get(name, {})
            size = self.pools[name].size if name in self.pools else 0
            level = have.get(VmState.READY, 0) + have.get(VmState.PENDING, 0) + self.runner.waiting(name)
            if level > size:
                self._remove_surplus(name, level - size)
            elif level < size:
                deficits[name] = size - level
        if not deficits:
            return
        room = self.runner.room(Priority.REFILL)
        wanted: list[str] = []
        while room > 0 and deficits:  # one VM per pool per round: no pool starves another
            for name in list(deficits):
                if room == 0:
                    break
                wanted.append(name)
                room -= 1
                deficits[name] -= 1
                if deficits[name] == 0:
                    del deficits[name]
        self._dirty.update(deficits)  # the queue is full: looked at again when work finishes
        if wanted:
            self.runner.submit(self.creator.create([(name, None) for name in wanted], Priority.REFILL))

    def clone_for_requests(self, wanted: list[tuple[str, str]]) -> None:
        """Queue clones of (pool, on-demand request id) in the runner, above pool refills."""
        works = self.creator.create(wanted, Priority.ONDEMAND)
        try:
            self.runner.submit(works)
        except QueueFull as exc:
            log.warning("on-demand clones wait: %s", exc)
            return
        self.ondemand.inflight.update(w.name for w in works)

    BACKOFF_MAX_S = 60.0

    def _timing(self, task: str, pool: str, vm: str, seconds: float, at: float) -> None:
        """Clone and boot times are statistics: stored in batches (each sweep), not one write each."""
        self._timings.append((task, pool, vm, seconds, at))
        if len(self._timings) >= 1000:
            self.flush_timings()

    def flush_timings(self) -> None:
        rows, self._timings = self._timings, []
        self.store.record_durations(rows)

    def cloned_at(self, vm: Vm) -> float | None:
        """When the create call of ``vm`` returned (recorded in the store once it is ready)."""
        return vm.cloned_at or self._cloned.get(vm.name)

    def backing_off(self, pool: str) -> bool:
        """True while clones of ``pool`` wait after failures (no create-call storm on a broken template)."""
        entry = self._backoff.get(pool)
        return entry is not None and time.monotonic() < entry[0]

    def _clone_outcome(self, pool: str, ok: bool) -> None:
        if ok:
            self._backoff.pop(pool, None)
            return
        last = self._backoff.get(pool, (0.0, 0.0))[1]
        delay = min(max(last * 2, self.settings.check_interval), max(self.BACKOFF_MAX_S, self.settings.check_interval))
        self._backoff[pool] = (time.monotonic() + delay, delay)

    def hold_off(self, pool: str) -> None:
        """No host can take the pool's VMs now: ask again after one sweep interval."""
        last = self._backoff.get(pool, (0.0, 0.0))[1]
        self._backoff[pool] = (time.monotonic() + self.settings.check_interval, last)

    def _remove_surplus(self, pool: str, surplus: int) -> None:
        queued = sorted(self.runner.works(lambda w: w.op is Op.CREATE and w.spec.pool == pool and not w.recorded
                                          and w.request_id is None), key=lambda w: w.seq, reverse=True)
        surplus -= len(self.runner.cancel(queued[:surplus]))  # work not started yet goes first
        if surplus <= 0:
            return
        candidates = [v for v in self.store.list_vms(pool=pool, states=(VmState.PENDING,))
                      if not self.busy(v.name) and v.request_id is None]
        candidates.sort(key=lambda v: v.created_at, reverse=True)
        candidates += sorted((v for v in self.store.list_vms(pool=pool, states=(VmState.READY,)) if v.request_id is None),
                             key=lambda v: v.ready_at or 0)
        for vm in candidates[:surplus]:
            log.info("removing surplus VM", extra={"pool": pool, "vm": vm.name})
            self.spawn(self.destroy(vm, reason="pool size lowered"), f"destroy-{vm.name}")

    # -- readiness -------------------------------------------------------------------------
    async def check_ready(self, name: str, *, ask_provider: bool, provider_name: str | None = None) -> None:
        """Move a pending VM to ready if it is reachable.

        ``ask_provider`` is False when the change feed already said the guest is up; a
        provider whose readiness is more than that (``probes_readiness``: vSphere connects to
        port 22, as vmpooler does) is asked all the same.
        """
        if self.busy(name):
            return
        provider = self.providers.get(provider_name or "")
        if provider is None or ask_provider or _probes(provider):
            # the feed's word is not enough: look at the record first (the compare-and-set
            # below is the real check; this only avoids useless provider calls)
            vm = self.store.get_vm(name)
            if vm is None or vm.state is not VmState.PENDING:
                return
            provider_name, provider = vm.provider, self.providers[vm.provider]
        probes = _probes(provider)
        ask_provider = ask_provider or probes
        self._busy.add(name)
        try:
            try:
                ready = True if not ask_provider else await provider.vm_ready(name)
                seen = self.inventory[provider_name].vm(name)
                ip = seen.ip if seen is not None else None
            except VmNotFound:
                return  # the feed or the sweep deals with vanished VMs
            except ProviderError as exc:
                log.debug("readiness check failed", extra={"vm": name, "error": str(exc)})
                return
            if not ready:
                if probes and seen is not None and seen.guest_ready:
                    # the guest is up but not yet listening: probe again soon, not only at the sweep
                    self.spawn(self._probe_again(name, provider_name), f"ready-{name}")
                return
            now = self.clock()
            done = self.store.transition(name, (VmState.PENDING,), VmState.READY, ready_at=now, ip=ip,
                                         cloned_at=self._cloned.pop(name, None))
            if done is not None:
                self.lifecycle(done, VmState.PENDING)
                self._timing("boot", done.pool, name, now - done.created_at, now)
                log.info("ready", extra={"pool": done.pool, "vm": name, "host": done.host, "duration": now - done.created_at})
                if done.request_id is not None:
                    self.ondemand.vm_ready(done)
                else:
                    self.pool_changed(done.pool)
        finally:
            self._busy.discard(name)

    async def _probe_again(self, name: str, provider_name: str | None) -> None:
        await asyncio.sleep(self.settings.ready_retry_s)
        await self.check_ready(name, ask_provider=True, provider_name=provider_name)

    # -- destroy ---------------------------------------------------------------------------
    async def destroy(self, vm: Vm, *, reason: str | None = None) -> bool:
        """Record the intent, destroy at the provider, record the result. Safe to repeat.

        True when the provider had the VM and destroyed it. A VM the provider no longer has is
        recorded destroyed too; one whose last destroy failed waits as :mod:`corral.pools.destroying`
        decides.
        """
        if vm.name in self._busy or not self.destroys.due(vm.name, time.monotonic()):
            return False
        if not self._withdraw(vm.name):
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
                moved = self.store.transition(vm.name, (vm.state,), intent, **fields)
                if moved is None:
                    return False  # someone else moved it first (e.g. it was checked out)
                self.lifecycle(moved, vm.state)
                vm = moved
                self.pool_changed(vm.pool)
            else:  # a retry: the caller's view may be older than another path's destroy
                current = self.store.get_vm(vm.name)
                if current is None or current.state not in DESTROY_INTENT_STATES:
                    return False
                vm = current
            started = self.clock()
            error: ProviderError | None = None
            try:
                await self.providers[vm.provider].destroy_vm(vm.name)
            except ProviderError as exc:  # VmNotFound among them: the VM is gone already
                error = exc
            outcome = outcome_of(error)
            decision = self.destroys.record(vm.name, outcome, str(error) if error else None, time.monotonic())
            if decision.failure is not None:  # said once per change; the same failure again only at DEBUG
                log.log(decision.level, decision.message or "destroy failed again", extra={
                    "pool": vm.pool, "vm": vm.name, "error": decision.failure.error,
                    "attempts": decision.failure.attempts, "retry_in": decision.failure.delay_s or None})
                return False
            now = self.clock()
            gone = self.store.transition(vm.name, DESTROY_INTENT_STATES, VmState.DESTROYED, destroyed_at=now)
            if gone is not None:
                self.lifecycle(gone, vm.state)
                self.stats.destroyed += 1
                log.log(decision.level, decision.message or "destroyed", extra={
                    "pool": vm.pool, "vm": vm.name, "host": vm.host, "duration": now - started, "reason": vm.reason})
            return outcome is Outcome.DESTROYED
        finally:
            self._busy.discard(vm.name)

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

    # -- the safety-net sweep --------------------------------------------------------------
    async def _sweep_loop(self) -> None:
        last_reconcile = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.check_interval)
            try:
                await self.sweep()
                if time.monotonic() - last_reconcile >= self.settings.reconcile_interval:
                    last_reconcile = time.monotonic()
                    await self.reconcile()
            except Exception:
                log.exception("sweep failed")

    async def sweep(self) -> None:
        """Expire what is due, retry destroys, probe pending VMs, and look at every pool."""
        now = self.clock()
        # Every live VM is read: with thousands that takes milliseconds, so it is read in a
        # worker thread and the loop keeps serving requests meanwhile.
        records = await asyncio.to_thread(
            self.store.list_vms,
            states=(VmState.PENDING, VmState.READY, VmState.RUNNING, VmState.MIGRATING, *DESTROY_INTENT_STATES))
        self.destroys.keep_only({vm.name for vm in records if vm.state in DESTROY_INTENT_STATES})
        for vm in records:
            if self.busy(vm.name) or not self.connections.up(vm.provider):
                continue  # a provider that is down: its VMs are recovered when it is back
            pool = self.pools.get(vm.pool)
            if vm.state in DESTROY_INTENT_STATES:
                if self.destroys.due(vm.name, time.monotonic()):  # a failed destroy waits its turn
                    self.spawn(self.destroy(vm), f"destroy-{vm.name}")
            elif vm.state is VmState.PENDING:
                timeout = pool.timeout_s if pool else 0.0
                if now - vm.created_at > timeout:
                    self.spawn(self.destroy(vm, reason=f"not ready after {timeout:.0f}s"), f"destroy-{vm.name}")
                elif now - (self.cloned_at(vm) or vm.created_at) >= self.settings.check_interval:
                    # the feed said nothing about this one for a while: ask the provider
                    self.spawn(self.check_ready(vm.name, ask_provider=True), f"ready-{vm.name}")
            elif vm.state is VmState.READY and vm.request_id is not None:
                self.ondemand.vm_ready(vm)  # a crash came between ready and handing it out
            elif vm.state is VmState.READY:
                ttl = pool.ready_ttl_s if pool else None
                if ttl is not None and vm.ready_at is not None and now - vm.ready_at > ttl:
                    self.spawn(self.destroy(vm, reason="ready_ttl expired"), f"destroy-{vm.name}")
            elif vm.checkout_at is not None and vm.lifetime_s is not None and now - vm.checkout_at > vm.lifetime_s:
                self.spawn(self.destroy(vm, reason="lifetime expired"), f"destroy-{vm.name}")
        self.flush_timings()
        self.ondemand.sweep(now)
        self.store.purge_destroyed(now - self.settings.data_ttl_s)
        self._dirty.update(self.pools)
        self._dirty.update(self.store.counts())
        self._wake.set()

    async def reconcile(self) -> int:
        """Repair drift (slow path): the inventory against a fresh snapshot, then the store against it.

        Returns the store records repaired; the inventory's own repairs are counted by its monitors.
        Both counts are expected to stay 0 while the change feed works.
        """
        from corral.pools.recovery import recover

        repaired = 0
        for name, monitor in self.inventory.monitors.items():
            if not self.connections.up(name):
                continue
            taken = self.clock()
            await monitor.reconcile()
            repaired += await recover(self, name, list(monitor.repo.vms.values()), taken_at=taken)
        self.stats.reconciles += 1
        self.stats.reconcile_repairs += repaired
        return repaired

    async def _rebalance_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.rebalance_interval_s)
            try:
                self.migrations.rebalance()
            except Exception:
                log.exception("rebalancing failed")

    def _recheck(self, provider_name: str, name: str) -> None:
        """A clone call returned: if the inventory already saw the guest up, check it now."""
        vm = self.inventory[provider_name].vm(name)
        if vm is not None and vm.powered_on and vm.guest_ready:
            self.spawn(self.check_ready(name, ask_provider=False, provider_name=provider_name), f"ready-{name}")


def _probes(provider: Provider) -> bool:
    """Whether the provider's readiness is more than the guest being up (it connects to the VM)."""
    return provider.probes_readiness
