"""The pool service of one manager, run over the pools it holds the lease of and only those.

The agent decides which pools this manager acts on; :class:`ServiceSwitch` makes it so. A
change of the set stops the running service (its loops end, its provider sessions close) and
starts one over the new set: recovery then takes over whatever the last run left in the
store, as after a restart. To hand a pool over, the caller first applies a set without it and
only then releases its lease, so two managers never act on one pool at once; a manager that
lost its lease without knowing is held off by fencing (the store refuses its writes).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from corral.store.base import StoreUnavailable

log = logging.getLogger("corral.ha")


class PoolRun(Protocol):
    """What the switch runs: the pool service over a set of pools."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def look_at(self, pool: str, settings: bool = False) -> None: ...


class ServiceSwitch:
    """Runs ``make(pools)`` for the pools acted on, started and stopped as the set changes."""

    def __init__(self, make: Callable[[frozenset[str]], PoolRun], *, gather_s: float = 0.02) -> None:
        self.make = make
        self.acting: frozenset[str] = frozenset()
        self.service: PoolRun | None = None
        self.gather_s = gather_s  # wakes arriving within this are looked at once, together
        self.looks = 0  # looks at a pool (after gathering)
        self._lock = asyncio.Lock()
        self._woken: dict[str, bool] = {}  # pool -> whether a wake was about its settings
        self._gathering: asyncio.TimerHandle | None = None
        # told of each new service before it starts (its event bus exists, nothing happened yet):
        # what follows its events then hears its first fill too
        self.on_new: Callable[[PoolRun], None] | None = None

    async def apply(self, acting: frozenset[str]) -> None:
        """Act on ``acting`` from now on; returns once the old service has stopped and the new
        one has started."""
        async with self._lock:
            if acting == self.acting:
                return
            old, self.service = self.service, None
            self.acting = frozenset()
            if old is not None:
                try:
                    await old.stop()
                except Exception:
                    log.exception("stopping the pool service failed")
            if not acting:
                log.info("acting on no pool")
                return
            service = self.make(acting)
            if self.on_new is not None:
                try:
                    self.on_new(service)
                except Exception:
                    log.exception("telling of a new pool service failed")
            await service.start()
            self.service, self.acting = service, acting
            log.info("acting on pools", extra={"pools": ",".join(sorted(acting))})

    def look_at(self, pool: str, settings: bool = False) -> None:
        """A pool's stock (or ``settings``) changed in another process: its service looks (if it
        is ours), once for all the wakes of the pool that arrive within ``gather_s``: under load
        the API processes publish one wake per checkout and return."""
        if self.service is None or pool not in self.acting:
            return
        self._woken[pool] = self._woken.get(pool, False) or settings
        if self._gathering is None:
            self._gathering = asyncio.get_running_loop().call_later(self.gather_s, self._look)

    def _look(self) -> None:
        self._gathering = None
        woken, self._woken = self._woken, {}
        for pool in sorted(woken):
            if self.service is None or pool not in self.acting:
                continue
            self.looks += 1
            try:
                self.service.look_at(pool, woken[pool])
            except StoreUnavailable as exc:  # the loop says so once; the sweep makes up for the wake
                log.debug("woken pool not looked at: the store is unavailable", extra={"pool": pool,
                                                                                       "error": str(exc)})
            except Exception:
                log.exception("looking at a woken pool failed", extra={"pool": pool})
