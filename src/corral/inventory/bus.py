"""The event bus: one publisher side, many subscribers, each isolated from the others.

:meth:`EventBus.publish` never waits: it numbers the event, keeps it in a short history and
puts it, without blocking, on the bounded queue of every subscriber that accepts it. Each
subscriber drains its own queue in its own task, so a slow, stalled or failing subscriber
delays nobody else and never the feed:

- an exception in a handler is logged and counted, and the next event is handled;
- a full queue is an *overflow*: it is counted, the queue is emptied and the subscriber is
  told to *resync* (re-read the state it cares about) before it sees newer events. Events
  are never dropped silently.

Two ways to subscribe: :meth:`EventBus.subscribe` runs an async handler per event (the pool
manager, metrics); :meth:`EventBus.stream` hands back a :class:`Subscription` that the caller
iterates (one per client of the HTTP event stream).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from corral.domain.events import Event
from corral.store.base import StoreUnavailable

log = logging.getLogger("corral.events")

Handler = Callable[[Event], Awaitable[None]]
Accepts = Callable[[Event], bool]


class Resync:
    """Marker a subscriber receives in place of the events it lost to an overflow."""

    def __repr__(self) -> str:  # pragma: no cover - cosmetic
        return "RESYNC"


RESYNC = Resync()


class SubscriptionClosed(Exception):
    """Raised by :meth:`Subscription.get` once the subscription is closed and drained of nothing more."""


@dataclass(slots=True)
class SubscriberStats:
    delivered: int = 0  # events handed to the handler (or the stream's reader)
    errors: int = 0  # handler calls that raised
    overflows: int = 0  # times the queue was full when an event arrived
    resyncs: int = 0  # resyncs done after overflows
    peak_queued: int = 0

    def counts(self) -> SubscriberCounts:
        return SubscriberCounts(delivered=self.delivered, errors=self.errors, overflows=self.overflows,
                                resyncs=self.resyncs, peak_queued=self.peak_queued)


@dataclass(frozen=True, slots=True)
class SubscriberCounts:
    """One reading of a subscriber's counters (:class:`SubscriberStats`)."""

    delivered: int
    errors: int
    overflows: int
    resyncs: int
    peak_queued: int


@dataclass(frozen=True, slots=True)
class BusStatus:
    """The bus's counters for status and metrics: events published, each subscriber's counts."""

    published: int
    subscribers: Mapping[str, SubscriberCounts]  # by name, sorted


class Subscription:
    """One subscriber's bounded queue of ``(sequence number, event)`` or ``(seq, RESYNC)``."""

    def __init__(self, bus: EventBus, name: str, accepts: Accepts | None, maxsize: int,
                 vms: frozenset[str] | None = None) -> None:
        self.bus = bus
        self.name = name
        self.accepts = accepts
        self.vms = vms  # offered only the events of these VMs (``accepts`` still judges them)
        self.maxsize = maxsize
        self.stats = SubscriberStats()
        self._queue: deque[tuple[int, Event | Resync]] = deque()
        self._ready = asyncio.Event()
        self.closed = False

    def offer(self, seq: int, event: Event) -> None:
        if self.accepts is not None:
            try:
                if not self.accepts(event):
                    return
            except Exception:  # a broken filter is that subscriber's problem only
                self.stats.errors += 1
                log.exception("event filter failed", extra={"subscriber": self.name})
                return
        queue = self._queue
        if len(queue) >= self.maxsize:
            self.stats.overflows += 1
            log.warning("subscriber overflowed, it will resync",
                        extra={"subscriber": self.name, "queued": len(queue)})
            queue.clear()
            queue.append((seq, RESYNC))
        queue.append((seq, event))
        if len(queue) > self.stats.peak_queued:
            self.stats.peak_queued = len(queue)
        if not self._ready.is_set():
            self._ready.set()

    @property
    def queued(self) -> int:
        return len(self._queue)

    async def get(self) -> tuple[int, Event | Resync]:
        """The next item (counted as delivered, or as a resync); waits while the queue is empty."""
        while not self._queue:
            if self.closed:
                raise SubscriptionClosed(self.name)
            self._ready.clear()
            await self._ready.wait()
        item = self._queue.popleft()
        if isinstance(item[1], Resync):
            self.stats.resyncs += 1
        else:
            self.stats.delivered += 1
        return item

    def close(self) -> None:
        self.closed = True
        self._ready.set()
        self.bus._drop(self)

    def __aiter__(self) -> AsyncIterator[tuple[int, Event | Resync]]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[tuple[int, Event | Resync]]:
        while True:
            try:
                item = await self.get()
            except SubscriptionClosed:
                return
            yield item


class EventBus:
    """See the module docstring. ``history`` events are kept for clients that reconnect.

    Events are numbered from ``start + 1``. A server gives its bus a ``start`` of its own
    (its start time in microseconds), so a number a client kept from an earlier process is
    never mistaken for one of this process's.
    """

    def __init__(self, *, queue_size: int = 10_000, history: int = 1_000, start: int = 0) -> None:
        self.queue_size = queue_size
        self.seq = start  # the number of the last event; the next one gets start + 1
        self.published = 0
        self._history: deque[tuple[int, Event]] = deque(maxlen=history)
        self._subs: list[Subscription] = []  # offered every event
        self._by_vm: dict[str, list[Subscription]] = {}  # offered only the events of one of their VMs
        self._workers: dict[str, asyncio.Task[None]] = {}
        self.stats: dict[str, SubscriberStats] = {}  # by subscriber name (streams share one entry)

    # -- publishing ------------------------------------------------------------------------

    @property
    def subscriptions(self) -> tuple[Subscription, ...]:
        """The subscriptions open now, handlers' and streams'."""
        indexed = {id(sub): sub for subs in self._by_vm.values() for sub in subs}
        return (*self._subs, *indexed.values())

    def publish(self, event: Event) -> int:
        """Hand ``event`` to every subscriber that accepts it; never blocks. Returns its number."""
        self.seq += 1
        self.published += 1
        self._history.append((self.seq, event))
        for sub in self._subs:
            sub.offer(self.seq, event)
        if self._by_vm and (vm := getattr(event, "vm", None)) is not None:  # a stream per CI job: only its VM's
            for sub in self._by_vm.get(vm, ()):
                sub.offer(self.seq, event)
        return self.seq

    def publish_all(self, events: list[Event]) -> None:
        for event in events:
            self.publish(event)

    def since(self, seq: int) -> list[tuple[int, Event]] | None:
        """Events after number ``seq`` still in the history; None if some are gone already."""
        if seq == self.seq:
            return []
        if seq > self.seq:
            return None  # not a number this bus gave out (an earlier process's?)
        if not self._history or self._history[0][0] > seq + 1:
            return None
        return [(n, e) for n, e in self._history if n > seq]

    # -- subscribing -----------------------------------------------------------------------

    def subscribe(self, name: str, handler: Handler, *, accepts: Accepts | None = None,
                  on_resync: Callable[[], Awaitable[None]] | None = None,
                  queue_size: int | None = None) -> Subscription:
        """Run ``handler`` for every accepted event, in order, in a task of its own.

        After an overflow ``on_resync`` runs before the next event is handled.
        """
        if name in self._workers:
            raise ValueError(f"a subscriber named {name!r} exists already")
        sub = self._add(name, accepts, queue_size)
        self._workers[name] = asyncio.create_task(self._work(sub, handler, on_resync), name=f"subscriber-{name}")
        return sub

    def stream(self, name: str, *, accepts: Accepts | None = None, queue_size: int | None = None,
               vms: frozenset[str] | None = None) -> Subscription:
        """A subscription the caller reads itself; close it when done. With ``vms`` it is offered
        only events of those VMs (an event without a VM is not offered), so thousands of streams
        each waiting for one VM cost a publish nothing but their own VM's events."""
        return self._add(name, accepts, queue_size, vms)

    def _add(self, name: str, accepts: Accepts | None, queue_size: int | None,
             vms: frozenset[str] | None = None) -> Subscription:
        sub = Subscription(self, name, accepts, queue_size or self.queue_size, vms)
        sub.stats = self.stats.setdefault(name, SubscriberStats())
        if vms is None:
            self._subs.append(sub)
        else:
            for vm in vms:
                self._by_vm.setdefault(vm, []).append(sub)
        return sub

    def _drop(self, sub: Subscription) -> None:
        if sub.vms is None:
            with contextlib.suppress(ValueError):
                self._subs.remove(sub)
            return
        for vm in sub.vms:
            subs = self._by_vm.get(vm, [])
            with contextlib.suppress(ValueError):
                subs.remove(sub)
            if not subs:
                self._by_vm.pop(vm, None)

    async def _work(self, sub: Subscription, handler: Handler,
                    on_resync: Callable[[], Awaitable[None]] | None) -> None:
        store_down = False  # a store outage is said once, when it starts, not for every event
        async for _, item in sub:
            try:
                if isinstance(item, Resync):
                    if on_resync is not None:
                        await on_resync()
                else:
                    await handler(item)
                store_down = False
            except asyncio.CancelledError:
                raise
            except StoreUnavailable as exc:
                # the sweep repairs what this reaction would have written, once the store is back
                sub.stats.errors += 1
                if not store_down:
                    log.warning("event subscriber paused: the store is unavailable (%s)", exc,
                                extra={"subscriber": sub.name, "event": type(item).__name__})
                store_down = True
            except Exception:
                sub.stats.errors += 1
                log.exception("event subscriber failed", extra={"subscriber": sub.name, "event": type(item).__name__})

    async def close(self) -> None:
        """Stop every subscriber task and end every stream."""
        for sub in self.subscriptions:
            sub.close()
        for task in self._workers.values():
            task.cancel()
        for task in self._workers.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._workers.clear()

    def snapshot(self) -> BusStatus:
        """Counters for status and metrics."""
        return BusStatus(self.published, {n: s.counts() for n, s in sorted(self.stats.items())})
