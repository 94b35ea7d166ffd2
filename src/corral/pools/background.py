"""The pool manager's background tasks: destroys, readiness checks, migrations, VM tasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from corral.store.base import Fenced, StoreUnavailable

log = logging.getLogger("corral.pool")


class Background:
    """``unavailable(exc, step)`` hears of a step that failed on an unavailable store (it is
    repeated later, by the sweep or the refill; one log line per outage, not one per step)."""

    def __init__(self, unavailable: Callable[[StoreUnavailable, str], None] | None = None) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self.unavailable = unavailable

    def spawn(self, coro: Coroutine[Any, Any, object], name: str) -> None:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or (exc := task.exception()) is None:
            return
        if isinstance(exc, StoreUnavailable) and self.unavailable is not None:
            self.unavailable(exc, task.get_name())
        elif isinstance(exc, Fenced):
            # another manager runs the pool now: the store refused this step's write, and this
            # manager stops acting on the pool at its next tick
            log.warning("write refused by fencing", extra={"task": task.get_name(), "error": str(exc)})
        else:  # retrieving the exception above silences asyncio's own report of it: report it here
            log.error("background step failed", extra={"task": task.get_name()}, exc_info=exc)

    def __len__(self) -> int:
        return len(self._tasks)

    async def stop(self) -> None:
        """Cancel every task and wait for them to end."""
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
