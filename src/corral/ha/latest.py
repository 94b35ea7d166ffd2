"""A writer that keeps only the newest value: a queue of one.

``put`` never waits: the value replaces any value not yet written, and one task writes the
newest value whenever the previous write has finished. A slow or unreachable store thus delays
what others read of this manager, never the manager's own decisions, and no backlog of stale
states builds up. A failed write is logged (once, until a write succeeds again) and not
retried: the next ``put`` brings a newer value anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

log = logging.getLogger("corral.ha")

T = TypeVar("T")


class LatestValue(Generic[T]):
    """Writes the newest value put, through ``write``; ``what`` names it in log lines."""

    def __init__(self, write: Callable[[T], Awaitable[None]], what: str = "value") -> None:
        self.write = write
        self.what = what
        self.pending: list[T] = []  # at most one
        self.wake = asyncio.Event()
        self.idle = asyncio.Event()
        self.idle.set()
        self.task: asyncio.Task[None] | None = None
        self.closed = False
        self.written = 0
        self.replaced = 0  # values put and overtaken before they were written
        self.failures = 0
        self.last_error: str | None = None

    def put(self, value: T) -> None:
        if self.closed:
            return
        if self.pending:
            self.replaced += 1
        self.pending[:] = [value]
        self.idle.clear()
        self.wake.set()
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self.run(), name=f"latest-{self.what}")

    async def run(self) -> None:
        while True:
            await self.wake.wait()
            self.wake.clear()
            while self.pending:
                value = self.pending.pop()
                try:
                    await self.write(value)
                except Exception as exc:  # any failure of the store: logged, then the next value
                    self.failed(exc)
                else:
                    self.written += 1
                    if self.last_error is not None:
                        log.info("writing again", extra={"what": self.what})
                    self.last_error = None
            self.idle.set()

    def failed(self, exc: Exception) -> None:
        self.failures += 1
        error = f"{type(exc).__name__}: {exc}"
        if self.last_error is None:
            log.warning("cannot write", extra={"what": self.what, "error": error})
        self.last_error = error

    async def flush(self) -> None:
        """Wait until every value put so far is written (or its write failed)."""
        await self.idle.wait()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop: drop the value not yet written, let the write under way finish (up to
        ``timeout`` seconds), and take no more values."""
        self.closed = True
        self.pending.clear()
        if self.task is None:
            return
        self.wake.set()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.idle.wait(), timeout)
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task
        self.task = None
