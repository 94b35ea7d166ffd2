"""The safety-net sweep (every ``check_interval``) and the slower reconcile.

The sweep expires pending VMs past ``timeout``, ready VMs past ``ready_ttl`` and running VMs
past their lifetime, retries destroys that failed (after their wait), asks the provider about
pending VMs the feed said nothing about, purges old history, and marks every pool dirty. What
to do with each record is :func:`corral.pools.decide.sweep`'s decision. Every
``reconcile_interval`` the reconcile repairs drift (:mod:`corral.pools.recovery`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping

from corral.domain.models import Pool
from corral.domain.states import DESTROY_INTENT_STATES, LIVE_STATES
from corral.pools import decide
from corral.pools.execute import Executor
from corral.pools.ledger import Ledger
from corral.store.base import Fenced, Store, StoreUnavailable

log = logging.getLogger("corral.pool")

SWEPT = (*LIVE_STATES, *DESTROY_INTENT_STATES)


class Sweeper:
    """``providers_up`` lists the connected providers; ``ondemand_sweep(now)`` looks after on-demand
    requests; ``look_at`` marks pools for the refill; ``reconcile`` repairs drift."""

    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, executor: Executor, *,
                 providers_up: Callable[[], Iterable[str]], ondemand_sweep: Callable[[float], None],
                 look_at: Callable[[Iterable[str]], None], reconcile: Callable[[], Awaitable[int]],
                 check_interval: float, reconcile_interval: float, data_ttl_s: float,
                 store_up: Callable[[], None] | None = None,
                 unavailable: Callable[[StoreUnavailable, str], None] | None = None) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.executor = executor
        self.providers_up = providers_up
        self.ondemand_sweep = ondemand_sweep
        self.look_at = look_at
        self.reconcile = reconcile
        self.check_interval = check_interval
        self.reconcile_interval = reconcile_interval
        self.data_ttl_s = data_ttl_s
        self.store_up = store_up
        self.unavailable = unavailable

    async def loop(self) -> None:
        last_reconcile = time.monotonic()
        while True:
            await asyncio.sleep(self.check_interval)
            try:
                await self.sweep()
                if self.store_up is not None:
                    self.store_up()  # the sweep wrote (its purge): the store takes writes
                if time.monotonic() - last_reconcile >= self.reconcile_interval:
                    last_reconcile = time.monotonic()
                    await self.reconcile()
            except StoreUnavailable as exc:
                if self.unavailable is None:
                    raise
                self.unavailable(exc, "sweep")
            except Fenced as exc:  # another manager runs the pool now; this one stops at its next tick
                log.warning("write refused by fencing", extra={"error": str(exc)})
            except Exception:
                log.exception("sweep failed")

    def _doomed_since(self, doomed: set[str]) -> set[str]:
        """VMs with a failed destroy whose intent was recorded after the records were read (the read
        runs in a thread, a return meanwhile): their failure is kept too."""
        again: set[str] = set()
        for name in self.ledger.destroys.failures:
            if name not in doomed and (vm := self.store.get_vm(name)) is not None \
                    and vm.state in DESTROY_INTENT_STATES:
                again.add(name)
        return again

    async def sweep(self) -> None:
        """Expire what is due, retry destroys, probe pending VMs, and look at every pool."""
        now = self.ledger.clock()
        # Every live VM is read: with thousands that takes milliseconds, so it is read in a
        # worker thread and the loop keeps serving requests meanwhile.
        records = await asyncio.to_thread(self.store.list_vms, states=SWEPT)
        doomed = {vm.name for vm in records if vm.state in DESTROY_INTENT_STATES}
        self.ledger.destroys.keep_only(doomed | self._doomed_since(doomed))
        facts = decide.SweepFacts(
            now=now, check_interval=self.check_interval, pools=self.pools,
            busy=self.ledger.busy_among(vm.name for vm in records),
            providers_up=frozenset(self.providers_up()),
            destroy_waiting=self.ledger.destroy_waiting(doomed),
            cloned=self.ledger.clone_times())
        self.executor.run(decide.sweep(records, facts))
        self.ledger.flush_timings()
        self.ondemand_sweep(now)
        self.store.purge_destroyed(now - self.data_ttl_s)
        self.look_at(self.pools)
        self.look_at(self.store.counts())
