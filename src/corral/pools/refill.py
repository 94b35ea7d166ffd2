"""The refill: keeps ``ready + pending == size`` for every pool.

Pools are marked dirty by a checkout, a finished clone, a destroy or the sweep; one loop takes
the dirty pools, reads the counts of every pool in one store query, and hands the VMs they lack
to the runner, round-robin across pools (:func:`corral.pools.decide.refill`). A pool's level
counts the VMs the runner holds for it and has not recorded yet; a pool that shrinks first
takes back work the runner has not sent. Clones of a pool that keep failing wait
(:class:`Backoff`), so a broken template causes no storm of create calls.

Refill order follows need: each round notes every pool's cover (:func:`corral.pools.decide.cover`:
its ready and pending VMs against the checkouts ``expected`` during one replenishment, the pool's
size while it has no demand history). The round asks for the neediest pools' VMs first, and the
runner, given :meth:`Refiller.need`, serves queued refills of a needier pool before those of a less
needy one (:mod:`corral.runner.queue`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable, Mapping
from typing import Any

from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.pools import decide
from corral.pools.ledger import Ledger
from corral.providers.base import ENDPOINT_CAUSES, Cause
from corral.runner import Op, Priority, Runner, Work
from corral.store.base import Fenced, Store, StoreUnavailable

log = logging.getLogger("corral.pool")


class Backoff:
    """Pools whose clones wait after failures, or because no host could take their VMs."""

    def __init__(self, check_interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.check_interval = check_interval
        self.clock = clock
        self._waits: dict[str, decide.Wait] = {}

    def backing_off(self, pool: str) -> bool:
        wait = self._waits.get(pool)
        return wait is not None and self.clock() < wait.until

    def clone_outcome(self, pool: str, ok: bool, cause: Cause | None = None) -> None:
        """A clone of ``pool`` succeeded, or failed (with ``cause``: one of the endpoint's waits
        at most ``decide.ENDPOINT_BACKOFF_MAX_S``)."""
        if ok:
            self._waits.pop(pool, None)
        else:
            cap = decide.ENDPOINT_BACKOFF_MAX_S if cause in ENDPOINT_CAUSES else decide.BACKOFF_MAX_S
            self._waits[pool] = decide.after_clone_failure(self._waits.get(pool), self.clock(), self.check_interval,
                                                           cap)

    def hold_off(self, pool: str) -> None:
        """No host can take the pool's VMs now: ask again after one sweep interval."""
        self._waits[pool] = decide.hold_off(self._waits.get(pool), self.clock(), self.check_interval)


class Refiller:
    """``create`` builds the works for new pool VMs; ``then`` runs after each round (on-demand fills);
    ``provider_up`` says whether a provider is connected; ``expected`` gives a pool's checkouts expected
    during one replenishment (None, or no callable: no demand history, the pool's size stands for it)."""

    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, runner: Runner, backoff: Backoff, *,
                 create: Callable[[list[tuple[str, str | None]], Priority], list[Work]],
                 provider_up: Callable[[str], bool], then: Callable[[], None],
                 spawn: Callable[[Coroutine[Any, Any, object], str], None], gather_s: float,
                 expected: Callable[[str], float | None] | None = None,
                 unavailable: Callable[[StoreUnavailable, str], None] | None = None) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.runner = runner
        self.backoff = backoff
        self.create = create
        self.provider_up = provider_up
        self.then = then
        self.spawn = spawn
        self.gather_s = gather_s
        self.expected = expected
        self.unavailable = unavailable
        self._covers: dict[str, float] = {}  # each pool's cover as its last round saw it
        self._dirty: set[str] = set(pools)
        self._wake = asyncio.Event()

    def pool_changed(self, pool: str) -> None:
        """Something changed in ``pool``: look at it at once."""
        self._dirty.add(pool)
        self._wake.set()

    def look_at(self, pools: Iterable[str]) -> None:
        self._dirty.update(pools)
        self._wake.set()

    def wake(self) -> None:
        self._wake.set()

    def need(self, pool: str) -> float:
        """The pool's cover as its last round saw it (lower: needier); a pool not seen yet is dry."""
        return self._covers.get(pool, 0.0)

    @property
    def waking(self) -> bool:
        """True while a round is asked for and has not started."""
        return self._wake.is_set()

    async def loop(self) -> None:
        while True:
            await self._wake.wait()
            if self.gather_s > 0:
                # let a burst of checkouts and finished clones gather into one round: one
                # count of the store and bigger create calls instead of one VM per round
                await asyncio.sleep(self.gather_s)
            self._wake.clear()
            dirty, self._dirty = self._dirty, set()
            try:
                self.refill(dirty)
                self.then()
            except Fenced as exc:  # another manager runs the pool now; this one stops at its next tick
                log.warning("write refused by fencing", extra={"error": str(exc)})
            except StoreUnavailable as exc:  # the sweep looks at every pool again
                self._dirty |= dirty
                if self.unavailable is None:
                    raise
                self.unavailable(exc, "refill")
            except Exception:  # keep the loop alive; the sweep retries
                log.exception("refill failed")

    def refill(self, pools: Iterable[str]) -> None:
        counts = self.store.counts()
        levels = []
        for name in pools:
            pool = self.pools.get(name)
            have = counts.get(name, {})
            levels.append(decide.Level(
                name, pool.size if pool is not None else 0, have.get(VmState.READY, 0), have.get(VmState.PENDING, 0),
                self.runner.waiting(name),
                self.backoff.backing_off(name) or (pool is not None and not self.provider_up(pool.provider)),
                self.expected(name) if self.expected is not None else None))
        covers = {lv.pool: lv.cover for lv in levels}
        self._covers.update(covers)
        surplus, deficits = decide.shortfall(levels)
        for extra in surplus:
            self.remove_surplus(extra.pool, extra.n)
        if not deficits:
            return
        wanted, again = decide.share(deficits, self.runner.room(Priority.REFILL), covers)
        self._dirty.update(again)  # the queue is full: looked at again when work finishes
        if wanted.pools:
            self.runner.submit(self.create([(name, None) for name in wanted.pools], Priority.REFILL))

    def remove_surplus(self, pool: str, surplus: int) -> None:
        queued = sorted(self.runner.works(lambda w: w.op is Op.CREATE and w.spec.pool == pool and not w.recorded
                                          and w.request_id is None), key=lambda w: w.seq, reverse=True)
        # a work whose record's write got no answer may be counted twice (as work and as a pending
        # record): its next try finds out, and the round after sees the true level
        surplus -= sum(1 for w in queued if w.maybe_recorded)
        queued = [w for w in queued if not w.maybe_recorded]
        surplus -= len(self.runner.cancel(queued[:max(surplus, 0)]))  # work not started yet goes first
        if surplus <= 0:
            return
        pending = self.store.list_vms(pool=pool, states=(VmState.PENDING,))
        ready = self.store.list_vms(pool=pool, states=(VmState.READY,))
        busy = self.ledger.busy_among(v.name for v in pending)
        for vm in decide.surplus_victims(pending, ready, busy, surplus):
            log.info("removing surplus VM", extra={"pool": pool, "vm": vm.name})
            self.spawn(self.ledger.destroy(vm, reason="pool size lowered"), f"destroy-{vm.name}")

    def reset(self, pool: str, reason: str) -> int:
        """Destroy the pool's ready and pending VMs (not those of on-demand requests); refill."""
        self.runner.cancel(self.runner.works(
            lambda w: w.op is Op.CREATE and w.spec.pool == pool and w.request_id is None))
        stock = [v for v in self.store.list_vms(pool=pool, states=(VmState.READY, VmState.PENDING))
                 if v.request_id is None]
        for vm in stock:
            if self.ledger.cloning(vm.name):
                self.ledger.destroy_when_cloned(vm.name)  # destroyed when its create call returns
            else:
                self.spawn(self.ledger.destroy(vm, reason=reason), f"destroy-{vm.name}")
        log.info("pool reset", extra={"pool": pool, "count": len(stock), "reason": reason})
        self.pool_changed(pool)
        return len(stock)
