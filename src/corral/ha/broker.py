"""The agent's I/O: leases, probes and the manager registry, turned into a ``Snapshot``.

The broker keeps the leases this manager holds (pool -> fencing token) and, per pool, the
local deadline until which acting on it is safe: the time taken *before* the call that set or
extended the lease, plus ``ttl_s * safety``. A manager that cannot renew therefore stops acting
before its lease can expire in Redis. Each call is bounded by a time the driver gives
(``within``): while pools are acted on, never past their deadline.

What a lease and a fencing token guarantee, and what a Redis failover could break, is told in
``ha.leases``: one Redis primary; a failover to a replica that missed the last writes, or a
restart without persistence, can lose a lease or a fencing counter.

With a ``keep`` renewal (``ha.keeper``), a thread of its own also renews the held leases every
``renew_every_s``, whatever the event loop is doing: a tick that comes late because the pool
service keeps the loop busy finds its deadlines kept, and a call of the tick that timed out
while the keeper had answers from the store since the tick began is the loop's lateness, not
the store's.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from dataclasses import replace
from typing import Any, Protocol

from corral.ha.agent import Snapshot, State, score
from corral.ha.keeper import SILENT_TTLS, Keeper
from corral.ha.latest import LatestValue
from corral.ha.leases import Leases, Registry
from corral.ha.ownership import assign
from corral.ha.settings import HaSettings

log = logging.getLogger("corral.ha")

Probe = Callable[[], Awaitable[object]]  # down when it raises, returns False or takes too long


class Renewal(Protocol):
    """A synchronous renewal of leases (``ha.leases.SyncRenewal``), for the keeper's thread."""

    def __call__(self, pools: Collection[str], me: str, ttl_ms: int) -> Mapping[str, int]: ...

    def close(self) -> None: ...


def no_rate() -> float:
    return 0.0


def published_score(info: Mapping[str, Any]) -> int:
    try:
        return int(info.get("score", 0))
    except (TypeError, ValueError):
        return 0


class Broker:
    """All the I/O of one manager's control plane; the driver (``ha.loop``) tells it what to do."""

    def __init__(self, settings: HaSettings, leases: Leases, registry: Registry, *,
                 pools: Callable[[], Collection[str]], ping: Probe, providers: Mapping[str, Probe] | None = None,
                 error_rate: Callable[[], float] = no_rate, load: Callable[[], float] = no_rate,
                 clock: Callable[[], float] = time.monotonic, keep: Renewal | None = None) -> None:
        self.settings = settings
        self.me = settings.manager_id
        self.leases = leases
        self.registry = registry
        self.pools = pools
        self.ping = ping
        self.providers = dict(providers or {})
        self.error_rate = error_rate
        self.load = load
        self.clock = clock
        self.tokens: dict[str, int] = {}  # the pools held, with their fencing tokens
        self.deadlines: dict[str, float] = {}  # pool -> local time until which acting on it is safe
        self.wanted: frozenset[str] = frozenset()
        self.score = 0
        self.providers_up = 0
        self.store_error: str | None = None
        self.publisher: LatestValue[dict[str, object]] = LatestValue(self.write_state, "manager state")
        # the keeper's thread: it renews the held leases while the event loop is busy
        self.renewal = keep
        self.keeper = Keeper(self.keep, settings.renew_every_s) if keep is not None else None
        self._lock = threading.Lock()  # tokens and deadlines, changed by the loop and the keeper
        self.kept_at: float | None = None  # the time taken before the keeper's last answered call
        self.ticked_at: float | None = None  # when the loop last observed: the keeper's sign of its life
        self.kept_lost: dict[str, int] = {}  # pool -> token the keeper found no longer ours, for the next tick

    # -- what is held ---------------------------------------------------------------------------
    @property
    def held(self) -> frozenset[str]:
        return frozenset(self.tokens)

    @property
    def deadline(self) -> float | None:
        """The earliest deadline of the held pools (None when none is held)."""
        return min(self.deadlines.values(), default=None)

    def token(self, pool: str) -> int | None:
        """The fencing token of a held pool, which every store write for the pool carries."""
        return self.tokens.get(pool)

    # -- observing ------------------------------------------------------------------------------
    async def observe(self, stop_requested: bool, within: float) -> Snapshot:
        """Renew the held leases, probe the store and the providers and read the other managers,
        all at once and within ``within`` seconds; then the snapshot for the agent."""
        self.ticked_at = self.clock()
        if self.keeper is not None:
            self.keeper.start()
        self.let_go_lost()
        if within <= 0:  # the deadline of the pools acted on has passed: stop them before any call
            return self.snapshot(stop_requested, store_ok=self.store_error is None)
        t0 = self.clock()
        renewed, pinged, managers = False, False, None
        late: str | None = None
        try:
            async with asyncio.timeout(within):
                renewed, pinged, managers, self.providers_up = await asyncio.gather(
                    self.renew(t0), self.probe(self.ping), self.read_managers(), self.probe_providers())
        except TimeoutError:
            late = f"the store did not answer within {within:.3f} s"
        else:
            if not pinged:
                late = "the store did not answer its ping"
        # the keeper had an answer to a call made since this tick began: the store answers, and
        # what timed out waited for the event loop (the leases it kept; the spreading stands)
        vouched = self.kept_at is not None and self.kept_at >= t0
        if late is not None and not vouched:
            self.trouble(late)
        self.let_go_lost()
        store_ok = (renewed and pinged and managers is not None) or vouched
        if store_ok:
            self.recovered()
        return self.snapshot(stop_requested, store_ok, managers)

    def keep(self) -> None:
        """One round of the keeper's thread: renew the held leases now, with the synchronous
        renewal. A lease renewed keeps its token and its deadline moves to the time taken before
        the call plus ``trusted_s``; one no longer ours is not extended, and is let go at the
        next tick (``let_go_lost``). A failure changes nothing: the deadlines run out."""
        assert self.renewal is not None
        with self._lock:
            held = dict(self.tokens)
        t0 = self.clock()
        if self.ticked_at is not None and t0 - self.ticked_at > self.settings.ttl_s * SILENT_TTLS:
            return  # the loop is hung, not busy: the leases expire and other managers take the pools
        try:
            renewed = self.renewal(list(held), self.me, self.settings.ttl_ms)
        except Exception as exc:  # the store's trouble is the tick's to tell
            log.debug("the keeper could not renew the leases", extra={"manager": self.me,
                                                                      "error": type(exc).__name__})
            return
        with self._lock:
            for pool, token in held.items():
                if self.tokens.get(pool) != token:
                    continue  # let go or taken again since: the loop's records stand
                if renewed.get(pool) == token:
                    self.deadlines[pool] = max(self.deadlines[pool], t0 + self.settings.trusted_s)
                else:
                    self.kept_lost[pool] = token
            self.kept_at = t0

    def let_go_lost(self) -> None:
        """Forget the pools the keeper found no longer ours."""
        with self._lock:
            lost, self.kept_lost = self.kept_lost, {}
        for pool, token in sorted(lost.items()):
            if self.tokens.get(pool) == token:  # not taken again since
                log.warning("lease lost", extra={"pool": pool, "manager": self.me})
                self.forget(pool)

    def snapshot(self, stop_requested: bool, store_ok: bool,
                 managers: Mapping[str, Mapping[str, Any]] | None = None) -> Snapshot:
        """The snapshot of what was observed; the spreading is computed again when the other
        managers were read (else the last one stands)."""
        data = Snapshot(now=self.clock(), stop_requested=stop_requested, store_ok=store_ok,
                        providers_up=self.providers_up, providers_total=len(self.providers),
                        error_rate=self.error_rate(), load=self.load(), held=self.held, deadline=self.deadline)
        self.score = score(data)
        if managers is not None:
            scores = {m: published_score(info) for m, info in managers.items() if m != self.me}
            scores[self.me] = self.score
            self.wanted = assign(self.pools(), scores, self.settings.score_threshold)[self.me]
        return replace(data, wanted=self.wanted)

    async def renew(self, t0: float) -> bool:
        if not self.tokens:
            return True
        try:
            renewed = await self.leases.renew(list(self.tokens), self.me, self.settings.ttl_ms)
        except Exception as exc:  # the store failed: keep the old deadlines, which run out
            self.trouble(exc)
            return False
        for pool in self.held - set(renewed):
            log.warning("lease lost", extra={"pool": pool, "manager": self.me})
            self.forget(pool)
        self.take(renewed, t0)
        return True

    async def read_managers(self) -> dict[str, dict[str, Any]] | None:
        try:
            return await self.registry.managers()
        except Exception as exc:
            self.trouble(exc)
            return None

    async def probe(self, probe: Probe) -> bool:
        try:
            async with asyncio.timeout(self.settings.io_timeout_s):
                return await probe() is not False
        except Exception:  # a probe that fails or times out says "down"
            return False

    async def probe_providers(self) -> int:
        answers = await asyncio.gather(*(self.probe(p) for p in self.providers.values()))
        return sum(answers)

    # -- acting ---------------------------------------------------------------------------------
    async def acquire(self, pools: Collection[str], within: float) -> frozenset[str]:
        """Take the leases of ``pools`` that are free: the pools newly held."""
        t0 = self.clock()
        try:
            async with asyncio.timeout(within):
                got = await self.leases.acquire(pools, self.me, self.settings.ttl_ms)
        except Exception as exc:  # a lease the store set after all expires unused
            self.trouble(exc)
            return frozenset()
        for pool in sorted(set(got) - self.held):
            log.info("lease taken", extra={"pool": pool, "manager": self.me, "fence": got[pool]})
        self.take(got, t0)
        return frozenset(got)

    async def release(self, pools: Collection[str], within: float) -> None:
        """Hand over ``pools`` (the caller has stopped acting on them): forgotten at once, then
        their leases deleted; a lease the store cannot delete now expires after its TTL."""
        mine = [p for p in pools if p in self.tokens]
        for pool in mine:
            self.forget(pool)
        if not mine:
            return
        try:
            async with asyncio.timeout(within):
                await self.leases.release(mine, self.me)
        except Exception as exc:
            self.trouble(exc)
            return
        log.info("leases released", extra={"pools": ",".join(sorted(mine)), "manager": self.me})

    def take(self, tokens: Mapping[str, int], t0: float) -> None:
        with self._lock:
            for pool, token in tokens.items():
                deadline = t0 + self.settings.trusted_s
                if self.tokens.get(pool) == token:  # the keeper may have renewed it later than t0
                    deadline = max(deadline, self.deadlines[pool])
                self.tokens[pool] = token
                self.deadlines[pool] = deadline

    def forget(self, pool: str) -> None:
        with self._lock:
            self.tokens.pop(pool, None)
            self.deadlines.pop(pool, None)

    # -- publishing -----------------------------------------------------------------------------
    def publish(self, state: State, acting: Collection[str]) -> None:
        """Publish this manager's state for the others (never waits: ``LatestValue``)."""
        deadline = self.deadline
        self.publisher.put({
            "state": state.name, "score": self.score, "pools": sorted(self.held), "acting": sorted(acting),
            "lease_left_s": None if deadline is None else round(max(0.0, deadline - self.clock()), 3)})

    async def write_state(self, info: dict[str, object]) -> None:
        async with asyncio.timeout(self.settings.io_timeout_s):
            await self.registry.publish(self.me, info, self.settings.ttl_ms)

    async def close(self) -> None:
        """Stop publishing and leave the registry, so the others spread the pools without this
        manager at once."""
        if self.keeper is not None:
            await asyncio.to_thread(self.keeper.stop, self.settings.io_timeout_s)
        if self.renewal is not None:
            self.renewal.close()
        await self.publisher.close(self.settings.io_timeout_s)
        try:
            async with asyncio.timeout(self.settings.io_timeout_s):
                await self.registry.retire(self.me)
        except Exception as exc:  # the alive key expires after its TTL
            self.trouble(exc)

    # -- the store's trouble, logged once ----------------------------------------------------------
    def trouble(self, error: object) -> None:
        text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
        if self.store_error is None:
            log.warning("store unreachable", extra={"manager": self.me, "error": text})
        self.store_error = text

    def recovered(self) -> None:
        if self.store_error is not None:
            log.info("store reachable again", extra={"manager": self.me})
        self.store_error = None
