"""Slots for provider calls: at most ``task_limit`` in flight, at most ``host_limit`` per host.

Waiters are served in priority order, not arrival order: when a slot frees, the most urgent
waiter whose host has room goes first. A waiter whose host is full does not hold up waiters
for other hosts (no idle capacity while work waits).
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field


@dataclass(order=True, slots=True)
class _Waiter:
    key: tuple[int, ...]
    seq: int
    host: Hashable = field(compare=False)
    future: asyncio.Future[None] = field(compare=False)


class Gate:
    def __init__(self, task_limit: int, host_limit: int, on_free: Callable[[], None] | None = None) -> None:
        if task_limit < 1 or host_limit < 1:
            raise ValueError("task_limit and host_limit must be at least 1")
        self.task_limit = task_limit
        self.host_limit = host_limit
        self.in_flight = 0
        self.per_host: Counter[Hashable] = Counter()
        self.peak = 0
        self._waiters: list[_Waiter] = []
        self._seq = itertools.count()
        self._on_free = on_free  # told whenever a slot frees or a promise of one is dropped

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    @property
    def outstanding(self) -> int:
        """Calls in flight plus calls waiting for a slot."""
        return self.in_flight + len(self._waiters)

    @property
    def full(self) -> bool:
        """No slot is free for a new call: every slot is taken or promised to a waiter."""
        return self.outstanding >= self.task_limit

    def least_urgent_waiting(self) -> tuple[int, ...] | None:
        """The key of the least urgent call waiting for a slot; None when none waits."""
        return self._waiters[-1].key if self._waiters else None

    def _room(self, host: Hashable) -> bool:
        return self.in_flight < self.task_limit and self.per_host[host] < self.host_limit

    def _take(self, host: Hashable) -> None:
        self.in_flight += 1
        self.per_host[host] += 1
        self.peak = max(self.peak, self.in_flight)

    async def acquire(self, host: Hashable, key: tuple[int, ...]) -> None:
        """Wait for a slot on ``host``; lower ``key`` is served first."""
        if not self._waiters and self._room(host):
            self._take(host)
            return
        waiter = _Waiter(key, next(self._seq), host, asyncio.get_running_loop().create_future())
        bisect.insort(self._waiters, waiter)
        self._grant()
        try:
            await waiter.future
        except asyncio.CancelledError:
            if waiter.future.done() and not waiter.future.cancelled():
                self.release(host)  # granted just as it was cancelled: give the slot back
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
                self._grant()  # one promise fewer: others may go, and the intake may look again
                self._notify()
            raise

    def release(self, host: Hashable) -> None:
        self.in_flight -= 1
        self.per_host[host] -= 1
        if self.per_host[host] <= 0:
            del self.per_host[host]
        self._grant()
        self._notify()

    def _notify(self) -> None:
        if self._on_free is not None:
            self._on_free()

    def _grant(self) -> None:
        if not self._waiters:
            return
        kept: list[_Waiter] = []
        for waiter in self._waiters:
            if self.in_flight >= self.task_limit:
                kept.append(waiter)
                continue
            if waiter.future.cancelled():
                continue
            if self._room(waiter.host):
                self._take(waiter.host)
                waiter.future.set_result(None)
            else:
                kept.append(waiter)
        self._waiters = kept
