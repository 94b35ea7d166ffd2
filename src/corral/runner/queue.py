"""The runner's bounded priority queue. Pure bookkeeping: no I/O, no clock of its own.

Works wait in one heap ordered by :meth:`Work.key` (class, pool priority, arrival). A rerun
waiting out its backoff sits in a second heap ordered by ``not_before`` and joins the first
when it is due. Cancelled works are skipped when they reach the top (lazy removal), so a
cancel is O(works cancelled), not a heap rebuild.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Callable, Iterable

from corral.runner.work import Priority, QueueFull, Work


class WorkQueue:
    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("a queue must hold at least one work")
        self.limit = limit
        self._ready: list[tuple[tuple[int, int, int], Work]] = []
        self._delayed: list[tuple[float, int, Work]] = []
        self._seq = itertools.count(1)
        self._live = 0  # works queued and not cancelled
        self.by_class: Counter[Priority] = Counter()
        self.refused = 0  # puts refused because the queue was full

    def __len__(self) -> int:
        return self._live

    def room(self, share: float = 1.0) -> int:
        """How many more works fit below ``share`` of the limit."""
        return max(int(self.limit * share) - self._live, 0)

    def put(self, work: Work, now: float, *, over_limit: bool = False) -> None:
        """Queue ``work``; a new one gets its arrival number. ``over_limit`` ignores the bound
        (for work already accepted once: reruns, and HA restarts of VMs users hold)."""
        if not over_limit and self._live >= self.limit:
            self.refused += 1
            raise QueueFull(f"the runner's queue is full ({self._live} of {self.limit} VMs waiting to be "
                            "created or started); try again later")
        if work.seq == 0:
            work.seq = next(self._seq)
        work.queued = True
        self._live += 1
        self.by_class[work.priority] += 1
        if work.not_before > now:
            heapq.heappush(self._delayed, (work.not_before, work.seq, work))
        else:
            work.arrived = now
            heapq.heappush(self._ready, (work.key(), work))

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            due, _, work = heapq.heappop(self._delayed)
            if work.cancelled:
                continue
            work.arrived = due
            heapq.heappush(self._ready, (work.key(), work))

    def _drop_cancelled_top(self) -> None:
        while self._ready and self._ready[0][1].cancelled:
            heapq.heappop(self._ready)

    def due(self, now: float) -> int:
        """Works ready to go now (an upper bound: cancelled ones deeper in the heap count)."""
        self._promote(now)
        self._drop_cancelled_top()
        return len(self._ready)

    def oldest_arrival(self, now: float) -> float | None:
        """When the longest-waiting due work arrived; None when nothing is due."""
        self._promote(now)
        self._drop_cancelled_top()
        if not self._ready:
            return None
        return min(work.arrived for _, work in self._ready if not work.cancelled)

    def next_due(self) -> float | None:
        """When the next delayed work becomes due (None: none is delayed)."""
        while self._delayed and self._delayed[0][2].cancelled:
            heapq.heappop(self._delayed)
        return self._delayed[0][0] if self._delayed else None

    def take(self, count: int, now: float, accept: Callable[[Work], bool] | None = None,
             before: Priority | None = None) -> list[Work]:
        """Up to ``count`` due works, most urgent first; only classes more urgent than ``before``
        if given. Works ``accept`` turns down stay queued (at most ``count`` are looked at and
        turned down, so a call is O(count log n))."""
        self._promote(now)
        taken: list[Work] = []
        kept: list[tuple[tuple[int, int, int], Work]] = []
        while self._ready and len(taken) < count and len(kept) < count:
            work = self._ready[0][1]
            if not work.cancelled and before is not None and work.priority >= before:
                break
            entry = heapq.heappop(self._ready)
            if work.cancelled:
                continue
            if accept is not None and not accept(work):
                kept.append(entry)
                continue
            taken.append(work)
            work.queued = False
            self._live -= 1
            self.by_class[work.priority] -= 1
        for entry in kept:
            heapq.heappush(self._ready, entry)
        return taken

    def most_urgent(self, now: float) -> Priority | None:
        """The class of the most urgent due work; None when nothing is due."""
        self._promote(now)
        self._drop_cancelled_top()
        return self._ready[0][1].priority if self._ready else None

    def cancel(self, works: Iterable[Work]) -> int:
        """Mark ``works`` cancelled; returns how many of them were queued (and are now dropped)."""
        count = 0
        for work in works:
            if work.queued and not work.cancelled:
                work.queued = False
                self._live -= 1
                self.by_class[work.priority] -= 1
                count += 1
            work.cancelled = True
        return count

    def works(self) -> list[Work]:
        """Every queued, live work (for cancellation by pool or request)."""
        return [w for _, w in self._ready if not w.cancelled] + [w for _, _, w in self._delayed if not w.cancelled]
