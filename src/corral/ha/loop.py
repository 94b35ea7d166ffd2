"""The driver: every ``renew_every_s``, observe (broker) -> decide (agent) -> act (broker and
the caller's ``apply``).

Acting follows three rules. A pool is acquired before the pool service acts on it: a pool won
at this tick is acted on from the next one, once the agent sees it held. A pool is handed over
by first narrowing what the pool service acts on (``apply``) and only then releasing its lease,
so two managers never act on it at once; a pool ``apply`` may still be acting on is never
released. While pools are acted on, no store call may run past their deadline: a manager that
cannot renew stops acting when its deadline comes, before its leases can expire in Redis.

``stop()`` (on SIGTERM, say) drains: apply(nothing), release every lease, leave the registry,
so the other managers take the pools at their next tick instead of after the TTL.

A lease and a fencing token hold for one Redis primary; see ``ha.leases`` for what a failover
to a replica, or a restart of a Redis without persistence, could break.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from corral.ha.agent import Starting, State, Stopped
from corral.ha.broker import Broker

log = logging.getLogger("corral.ha")

Apply = Callable[[frozenset[str]], Awaitable[None]]


class HaLoop:
    """Runs one manager's agent. ``apply(acting)`` makes the pool service run exactly the pools
    in ``acting`` (the pools' fencing tokens are ``broker.token(pool)``); it must return
    promptly when the set shrinks."""

    def __init__(self, broker: Broker, apply: Apply) -> None:
        self.broker = broker
        self.apply = apply
        self.settings = broker.settings
        self.clock = broker.clock
        self.state: State = Starting()
        self.acting: frozenset[str] = frozenset()  # what apply() may be running (never released)
        self.applied = True  # whether apply() made ``acting`` so; after a failure it is asked again
        self.stop_requested = False
        self.wake = asyncio.Event()

    def stop(self) -> None:
        """Ask for a drain: the loop hands every pool over, then ends."""
        self.stop_requested = True
        self.wake.set()

    def within(self) -> float:
        """How long the next store call may take: never past the deadline of pools acted on."""
        limit = self.settings.io_timeout_s
        deadline = self.broker.deadline
        if self.acting and deadline is not None:
            return max(0.0, min(limit, deadline - self.clock()))
        return limit

    async def tick(self) -> State:
        data = await self.broker.observe(self.stop_requested, self.within())
        before, self.state = self.state, self.state.consume(data)
        if self.state != before:
            log.info("state", extra={"manager": self.broker.me, "from": before.name, "to": self.state.name,
                                     "score": self.broker.score})
        plan = self.state.plan(data)
        await self.run_only(plan.acting)
        # never release a pool apply() may still act on (when it failed, self.acting kept it)
        await self.broker.release(plan.release - self.acting, self.within())
        self.broker.publish(self.state, self.acting)
        if plan.bid:
            await self.broker.acquire(plan.bid, self.within())
        return self.state

    async def run_only(self, acting: frozenset[str]) -> None:
        if acting == self.acting and self.applied:
            return
        try:
            await self.apply(acting)
        except Exception:
            # unknown what runs now: count both sets as acting, so nothing of them is released,
            # and ask again at the next tick (a start that failed runs nothing)
            log.exception("the pool service did not take the pools it should run",
                          extra={"manager": self.broker.me, "pools": ",".join(sorted(acting))})
            self.acting |= acting
            self.applied = False
        else:
            self.acting = acting
            self.applied = True

    async def run(self) -> State:
        """Tick until stopped (``stop()``); then leave the registry. Returns the last state."""
        try:
            while True:
                started = self.clock()
                await self.tick()
                if isinstance(self.state, Stopped):
                    break
                if not (self.stop_requested and not self.acting):  # a drain goes on at once
                    await self.pause(started)
        finally:
            await self.shutdown()
        return self.state

    async def pause(self, started: float) -> None:
        """Wait for the next tick: ``renew_every_s`` after this one started, a stop, or the
        deadline of the pools acted on, whichever comes first."""
        wait = self.settings.renew_every_s - (self.clock() - started)
        deadline = self.broker.deadline
        if self.acting and deadline is not None:
            wait = min(wait, deadline - self.clock())
        if wait <= 0:
            return
        if self.stop_requested:  # draining, but apply() failed: try again after a tick
            await asyncio.sleep(wait)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.wake.wait(), wait)

    async def shutdown(self) -> None:
        if self.acting:  # cancelled or failed while acting: stop the pool service first
            with contextlib.suppress(Exception):
                await self.apply(frozenset())
                self.acting = frozenset()
        await self.broker.close()
