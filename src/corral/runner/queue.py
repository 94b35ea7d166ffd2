"""The runner's bounded priority queue. Pure bookkeeping: no I/O, no clock of its own.

Works wait in one heap ordered by :meth:`Work.key` (class, pool priority, arrival). A rerun
waiting out its backoff sits in a second heap ordered by ``not_before`` and joins the first
when it is due. Cancelled works are skipped when they reach the top (lazy removal), so a
cancel is O(works cancelled), not a heap rebuild.

Pool refills, the last class, wait apart: one first-come-first-served line per pool. Which
pool's line goes next is decided when works are taken, so the order follows need as it is
then, without touching the works already waiting: by the pool's ``priority`` (higher first),
then its ``need`` (lower first: the pool's cover, see :func:`corral.pools.decide.cover`), then
the fewer works taken from its line since it last ran empty (round-robin among pools equally
needy, and a pool that just started refilling goes ahead of those that have had their turns),
then the arrival of its first work. A take asks ``need`` once per pool with refills waiting
and orders those pools in a small heap: O(pools + count log pools), whatever the number of
works queued; put and cancel stay O(log n) and O(1). Without ``need``, refills go by pool
priority and arrival, as the other classes do.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter, deque
from collections.abc import Callable, Iterable

from corral.runner.work import Priority, QueueFull, Work


class _Line:
    """The refills of one pool waiting, first come first served (cancelled ones dropped lazily)."""

    __slots__ = ("taken", "works")

    def __init__(self) -> None:
        self.works: deque[Work] = deque()
        self.taken = 0  # works taken from this line since it last ran empty

    def head(self) -> Work | None:
        while self.works and self.works[0].cancelled:
            self.works.popleft()
        return self.works[0] if self.works else None


class WorkQueue:
    def __init__(self, limit: int, need: Callable[[str], float] | None = None) -> None:
        if limit < 1:
            raise ValueError("a queue must hold at least one work")
        self.limit = limit
        self.need = need  # a pool's need for refills (lower: served first); None: arrival order
        self._ready: list[tuple[tuple[int, int, int], Work]] = []
        self._lines: dict[tuple[str, int], _Line] = {}  # the refills waiting, by pool and its priority
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
            self._enter(work)

    def _enter(self, work: Work) -> None:
        if work.priority is Priority.REFILL:
            self._lines.setdefault((work.pool.name, work.pool_priority), _Line()).works.append(work)
        else:
            heapq.heappush(self._ready, (work.key(), work))

    def _promote(self, now: float) -> None:
        while self._delayed and self._delayed[0][0] <= now:
            due, _, work = heapq.heappop(self._delayed)
            if work.cancelled:
                continue
            work.arrived = due
            self._enter(work)

    def _drop_cancelled_top(self) -> None:
        while self._ready and self._ready[0][1].cancelled:
            heapq.heappop(self._ready)
        for pool in [p for p, line in self._lines.items() if line.head() is None]:
            del self._lines[pool]

    def due(self, now: float) -> int:
        """Works ready to go now (an upper bound: cancelled ones deeper in the heap count)."""
        self._promote(now)
        self._drop_cancelled_top()
        return len(self._ready) + sum(len(line.works) for line in self._lines.values())

    def oldest_arrival(self, now: float) -> float | None:
        """When the longest-waiting due work arrived; None when nothing is due."""
        self._promote(now)
        self._drop_cancelled_top()
        arrivals = [work.arrived for _, work in self._ready if not work.cancelled]
        arrivals += [head.arrived for line in self._lines.values() if (head := line.head()) is not None]
        return min(arrivals, default=None)

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
            self._taken(work, taken)
        others_done = not self._ready  # every due work of the other classes taken or turned down
        for entry in kept:
            heapq.heappush(self._ready, entry)
        if others_done and (before is None or Priority.REFILL < before):
            self._take_refills(count - len(taken), count - len(kept), accept, taken)
        return taken

    def _taken(self, work: Work, taken: list[Work]) -> None:
        taken.append(work)
        work.queued = False
        self._live -= 1
        self.by_class[work.priority] -= 1

    def _line_order(self, line: _Line, head: Work, need: float) -> tuple[float, ...]:
        if self.need is None:
            return (-head.pool_priority, head.seq)
        return (-head.pool_priority, need, line.taken, head.seq)

    def _take_refills(self, count: int, looks: int, accept: Callable[[Work], bool] | None,
                      taken: list[Work]) -> None:
        """Up to ``count`` refills, line by line in the order of :meth:`_line_order`; a line whose
        head ``accept`` turns down is passed over for the rest of this take."""
        order: list[tuple[tuple[float, ...], tuple[str, int]]] = []
        needs: dict[tuple[str, int], float] = {}
        for pool, line in list(self._lines.items()):
            head = line.head()
            if head is None:
                del self._lines[pool]
                continue
            needs[pool] = self.need(pool[0]) if self.need is not None else 0.0
            order.append((self._line_order(line, head, needs[pool]), pool))
        heapq.heapify(order)
        while order and count > 0 and looks > 0:
            _, pool = heapq.heappop(order)
            line = self._lines[pool]
            head = line.head()
            if head is None:
                continue
            if accept is not None and not accept(head):
                looks -= 1
                continue
            line.works.popleft()
            line.taken += 1
            self._taken(head, taken)
            count -= 1
            head = line.head()
            if head is None:
                del self._lines[pool]
            else:
                heapq.heappush(order, (self._line_order(line, head, needs[pool]), pool))

    def most_urgent(self, now: float) -> Priority | None:
        """The class of the most urgent due work; None when nothing is due."""
        self._promote(now)
        self._drop_cancelled_top()
        if self._ready:
            return self._ready[0][1].priority
        return Priority.REFILL if self._lines else None

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
        return ([w for _, w in self._ready if not w.cancelled] + [w for _, _, w in self._delayed if not w.cancelled]
                + [w for line in self._lines.values() for w in line.works if not w.cancelled])
