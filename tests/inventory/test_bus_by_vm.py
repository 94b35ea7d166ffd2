"""Streams that follow some VMs are offered only those VMs' events: thousands of CI jobs each
waiting for its VM cost a publish nothing but their own VM's events."""

from __future__ import annotations

import asyncio

from corral.domain.events import Event, HostUp, VmCreated
from corral.inventory import EventBus


def ev(i: int, vm: str) -> VmCreated:
    return VmCreated(float(i), "sim", vm, "pool-a", "h1")


def queued(sub) -> list[Event]:
    """What was offered to ``sub`` and not read yet (read now)."""
    async def read() -> list[Event]:
        return [(await sub.get())[1] for _ in range(sub.queued)]

    return asyncio.run(read())


def test_a_stream_by_vm_gets_its_vms_events_only_and_others_are_never_asked():
    bus = EventBus()
    asked: list[str] = []

    def counting(event: Event) -> bool:
        asked.append(getattr(event, "vm", "-"))
        return True

    mine = bus.stream("s", accepts=counting, vms=frozenset({"vm-1", "vm-3"}))
    every = bus.stream("all")
    events = [ev(1, "vm-1"), ev(2, "vm-2"), HostUp(3.0, "sim", "h1"), ev(4, "vm-3")]
    for event in events:
        bus.publish(event)
    assert queued(mine) == [events[0], events[3]]
    assert asked == ["vm-1", "vm-3"]  # the filter saw only its own VMs' events
    assert queued(every) == events
    assert set(bus.subscriptions) == {mine, every}
    mine.close()
    bus.publish(ev(5, "vm-1"))
    assert queued(mine) == [] and bus.subscriptions == (every,)
