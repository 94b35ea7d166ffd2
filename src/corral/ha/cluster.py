"""One manager's part in a site of several corral processes on one Redis.

It runs the agent's loop (:class:`~corral.ha.loop.HaLoop`), whose ``apply`` is the service
switch (:class:`~corral.ha.switch.ServiceSwitch`), and the wake listener that tells the switch
which pool another process changed. Stopping drains: the pools are handed over at once, not
after their leases' TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from corral.ha.loop import HaLoop
from corral.ha.switch import ServiceSwitch

log = logging.getLogger("corral.ha")

Listen = Callable[[Callable[[str], None]], Coroutine[Any, Any, None]]


class Cluster:
    """``listen(on_pool)`` hears wakes until cancelled; ``close()`` closes the connections the
    loop and the listener use, once both have ended."""

    def __init__(self, loop: HaLoop, switch: ServiceSwitch, listen: Listen,
                 close: Callable[[], Awaitable[None]]) -> None:
        self.loop = loop
        self.switch = switch
        self.listen = listen
        self.close = close
        self._tasks: list[asyncio.Task[object]] = []

    @property
    def me(self) -> str:
        return self.loop.broker.me

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self.loop.run(), name="ha-loop"),
                       asyncio.create_task(self.listen(self.switch.look_at), name="ha-wakes")]

    async def wait(self) -> None:
        """Until the loop ends (after a stop, it has drained)."""
        if self._tasks:
            await asyncio.shield(self._tasks[0])

    async def stop(self, timeout_s: float = 60.0) -> None:
        """Drain: stop acting, release every lease, leave the registry; then close."""
        self.loop.stop()
        if self._tasks:
            loop_task, listener = self._tasks
            try:
                await asyncio.wait_for(asyncio.shield(loop_task), timeout_s)
            except (TimeoutError, Exception):
                log.exception("the manager did not drain in time", extra={"manager": self.me})
                loop_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await loop_task
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await listener
            self._tasks = []
        await self.switch.apply(frozenset())  # in case the loop ended without it
        await self.close()
