"""The event bus: publish never blocks, every subscriber is isolated, overflow means resync."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio

from corral.domain.events import Event, HostUp, VmCreated
from corral.inventory import RESYNC, EventBus, Resync, Subscription
from corral.store.base import StoreUnavailable
from helpers import eventually


def ev(i: int, pool: str = "pool-a") -> VmCreated:
    return VmCreated(float(i), "sim", f"vm-{i}", pool, "h1")


@pytest_asyncio.fixture
async def bus() -> AsyncIterator[EventBus]:
    b = EventBus()
    yield b
    await b.close()


class Recorder:
    """A handler that keeps what it is given; ``gate`` (when given) stalls it on every event."""

    def __init__(self, gate: asyncio.Event | None = None) -> None:
        self.got: list[Any] = []
        self.gate = gate
        self.started = 0
        self.cancelled = False

    async def __call__(self, event: Event) -> None:
        self.started += 1
        if self.gate is not None:
            try:
                await self.gate.wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        self.got.append(event)

    async def resync(self) -> None:
        self.got.append(RESYNC)


async def read(sub: Subscription) -> list[tuple[int, Any]]:
    return [item async for item in sub]


async def test_every_subscriber_gets_every_event_in_order(bus: EventBus) -> None:
    one, two = Recorder(), Recorder()
    bus.subscribe("one", one)
    bus.subscribe("two", two)
    events = [ev(i) for i in range(20)]
    bus.publish_all(events)
    await eventually(lambda: len(one.got) == 20 and len(two.got) == 20, 2.0)
    assert one.got == events and two.got == events
    assert bus.stats["one"].delivered == 20 and bus.stats["two"].errors == 0


async def test_publish_numbers_events_from_one(bus: EventBus) -> None:
    assert [bus.publish(ev(i)) for i in range(3)] == [1, 2, 3]
    assert bus.seq == 3 and bus.published == 3


async def test_accepts_filters_what_a_subscriber_gets(bus: EventBus) -> None:
    only_b, everything = Recorder(), Recorder()
    bus.subscribe("only-b", only_b, accepts=lambda e: getattr(e, "pool", None) == "pool-b")
    bus.subscribe("everything", everything)
    events = [ev(1, "pool-a"), ev(2, "pool-b"), HostUp(3.0, "sim", "h1"), ev(4, "pool-b")]
    bus.publish_all(events)
    await eventually(lambda: len(everything.got) == 4, 2.0)
    await eventually(lambda: len(only_b.got) == 2, 2.0)
    assert only_b.got == [events[1], events[3]]
    assert bus.stats["only-b"].delivered == 2


async def test_a_failing_handler_keeps_receiving_and_counts_its_errors(bus: EventBus) -> None:
    got: list[Event] = []

    async def flaky(event: Event) -> None:
        if event.at % 2 == 0:
            raise RuntimeError("boom")
        got.append(event)

    bystander = Recorder()
    bus.subscribe("flaky", flaky)
    bus.subscribe("bystander", bystander)
    bus.publish_all([ev(i) for i in range(6)])
    await eventually(lambda: len(got) == 3 and len(bystander.got) == 6, 2.0)
    assert [e.at for e in got] == [1.0, 3.0, 5.0]
    assert bus.stats["flaky"].errors == 3 and bus.stats["bystander"].errors == 0
    bus.publish(ev(7))
    await eventually(lambda: len(got) == 4, 2.0)


async def test_a_store_outage_is_said_once_per_outage_not_per_event(bus: EventBus,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    down = True
    got: list[Event] = []

    async def writes(event: Event) -> None:
        if down:
            raise StoreUnavailable("Redis at 127.0.0.1:1 cannot be reached: refused")
        got.append(event)

    bus.subscribe("writer", writes)
    with caplog.at_level("DEBUG", logger="corral.events"):
        bus.publish_all([ev(i) for i in range(5)])
        await eventually(lambda: bus.stats["writer"].errors == 5, 2.0)
        down = False
        bus.publish(ev(5))
        await eventually(lambda: len(got) == 1, 2.0)
        down = True
        bus.publish_all([ev(6), ev(7)])
        await eventually(lambda: bus.stats["writer"].errors == 7, 2.0)
    said = [r for r in caplog.records if r.name == "corral.events"]
    assert [r.levelname for r in said] == ["WARNING", "WARNING"], [r.getMessage() for r in said]
    assert all("the store is unavailable" in r.getMessage() and "127.0.0.1:1" in r.getMessage() for r in said)


async def test_a_broken_filter_hurts_only_its_own_subscriber(bus: EventBus) -> None:
    def broken(event: Event) -> bool:
        raise ValueError("bad filter")

    bystander = Recorder()
    bus.subscribe("broken", Recorder(), accepts=broken)
    bus.subscribe("bystander", bystander)
    bus.publish_all([ev(1), ev(2)])
    await eventually(lambda: len(bystander.got) == 2, 2.0)
    assert bus.stats["broken"].errors == 2


async def test_a_stalled_subscriber_delays_nobody(bus: EventBus) -> None:
    gate = asyncio.Event()  # never set while the other subscriber is checked
    stalled, fast = Recorder(gate), Recorder()
    stalled_sub = bus.subscribe("stalled", stalled)
    bus.subscribe("fast", fast)
    bus.publish(ev(0))
    await eventually(lambda: stalled.started == 1, 2.0)
    events = [ev(i) for i in range(1, 50)]
    for event in events:
        bus.publish(event)  # returns at once: publish is not a coroutine and never waits
    await eventually(lambda: len(fast.got) == 50, 2.0)
    assert fast.got == [ev(0), *events]
    assert stalled.started == 1 and stalled.got == [] and stalled_sub.queued == 49
    gate.set()
    await eventually(lambda: len(stalled.got) == 50, 2.0)
    assert stalled.got == fast.got


async def test_an_overflow_is_counted_and_resynced_before_newer_events() -> None:
    bus = EventBus(queue_size=3)
    gate = asyncio.Event()
    slow = Recorder(gate)
    bus.subscribe("slow", slow, on_resync=slow.resync)
    try:
        bus.publish(ev(0))
        await eventually(lambda: slow.started == 1, 2.0)  # handling ev(0), stalled
        for i in range(1, 6):  # 1, 2, 3 fill the queue; 4 overflows it; 5 comes after
            bus.publish(ev(i))
        assert bus.stats["slow"].overflows == 1
        gate.set()
        await eventually(lambda: len(slow.got) == 4, 2.0)
        assert slow.got == [ev(0), RESYNC, ev(4), ev(5)]
        assert bus.stats["slow"].resyncs == 1
        bus.publish(ev(6))
        await eventually(lambda: len(slow.got) == 5, 2.0)
        assert slow.got[-1] == ev(6)
        assert bus.stats["slow"].overflows == 1 and bus.stats["slow"].errors == 0
    finally:
        await bus.close()


async def test_an_overflowing_subscriber_does_not_disturb_the_others() -> None:
    bus = EventBus(queue_size=3)
    slow, fast = Recorder(asyncio.Event()), Recorder()
    bus.subscribe("slow", slow, on_resync=slow.resync)
    bus.subscribe("fast", fast)
    try:
        for i in range(10):
            bus.publish(ev(i))
            await asyncio.sleep(0)  # the fast one keeps up
        await eventually(lambda: len(fast.got) == 10, 2.0)
        assert fast.got == [ev(i) for i in range(10)]
        assert bus.stats["slow"].overflows >= 1 and bus.stats["fast"].overflows == 0
    finally:
        await bus.close()


async def test_a_stream_is_iterable_and_ends_when_closed(bus: EventBus) -> None:
    sub = bus.stream("client", accepts=lambda e: e.at != 2.0)
    reader = asyncio.create_task(read(sub))
    bus.publish_all([ev(1), ev(2), ev(3)])
    await eventually(lambda: bus.stats["client"].delivered == 2, 2.0)
    sub.close()
    items = await asyncio.wait_for(reader, 2.0)
    assert items == [(1, ev(1)), (3, ev(3))]
    bus.publish(ev(4))
    assert sub.queued == 0, "a closed stream gets nothing more"


async def test_a_stream_overflow_is_a_resync_marker() -> None:
    bus = EventBus(queue_size=2)
    sub = bus.stream("client")
    bus.publish_all([ev(1), ev(2), ev(3)])
    sub.close()
    items = await asyncio.wait_for(read(sub), 2.0)
    assert items == [(3, RESYNC), (3, ev(3))]
    assert isinstance(items[0][1], Resync)
    assert bus.stats["client"].overflows == 1 and bus.stats["client"].resyncs == 1


async def test_closing_the_bus_ends_every_stream(bus: EventBus) -> None:
    subs = [bus.stream(f"client-{i}") for i in range(3)]
    readers = [asyncio.create_task(read(s)) for s in subs]
    bus.publish(ev(1))
    await eventually(lambda: all(bus.stats[f"client-{i}"].delivered == 1 for i in range(3)), 2.0)
    await bus.close()
    results = await asyncio.wait_for(asyncio.gather(*readers), 2.0)
    assert results == [[(1, ev(1))]] * 3


async def test_since_replays_from_history() -> None:
    bus = EventBus(history=3)
    assert bus.since(0) == []
    bus.publish_all([ev(1), ev(2)])
    assert bus.since(0) == [(1, ev(1)), (2, ev(2))]
    assert bus.since(1) == [(2, ev(2))]
    assert bus.since(2) == []
    bus.publish_all([ev(3), ev(4), ev(5)])  # history now holds 3, 4, 5
    assert bus.since(2) == [(3, ev(3)), (4, ev(4)), (5, ev(5))]
    assert bus.since(4) == [(5, ev(5))]
    assert bus.since(1) is None, "event 2 is gone from the history"
    assert bus.since(0) is None


async def test_since_a_number_this_bus_never_gave_out_cannot_be_answered() -> None:
    # a client reconnecting after a restart sends the last id it saw from the old process;
    # answering [] would drop every event it missed without telling it to resync
    bus = EventBus()
    bus.publish_all([ev(1), ev(2), ev(3)])
    assert bus.since(3) == []
    assert bus.since(500) is None


async def test_a_second_subscriber_of_the_same_name_is_refused(bus: EventBus) -> None:
    bus.subscribe("manager", Recorder())
    with pytest.raises(ValueError, match="manager"):
        bus.subscribe("manager", Recorder())


async def test_close_stops_every_subscriber_task() -> None:
    bus = EventBus()
    stalled, idle = Recorder(asyncio.Event()), Recorder()
    bus.subscribe("stalled", stalled)
    bus.subscribe("idle", idle)
    bus.publish(ev(1))
    await eventually(lambda: stalled.started == 1 and len(idle.got) == 1, 2.0)
    await asyncio.wait_for(bus.close(), 2.0)
    assert stalled.cancelled, "the stalled handler was cancelled"
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("subscriber-")]
    bus.publish(ev(2))
    await asyncio.sleep(0.01)
    assert idle.got == [ev(1)], "nobody listens after close"
    bus.subscribe("stalled", Recorder())  # the name is free again
    await bus.close()


async def test_snapshot_reports_the_counters(bus: EventBus) -> None:
    rec = Recorder()
    bus.subscribe("one", rec)
    bus.publish_all([ev(1), ev(2)])
    await eventually(lambda: len(rec.got) == 2, 2.0)
    snap = bus.snapshot()
    assert snap.published == 2 and list(snap.subscribers) == ["one"]
    one = snap.subscribers["one"]
    assert (one.delivered, one.errors, one.overflows, one.resyncs) == (2, 0, 0, 0)
    assert one.peak_queued >= 1
