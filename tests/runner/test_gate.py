"""The gate for provider calls: a global and a per-host limit, waiters served by priority."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from corral.runner.gate import Gate


async def settle(rounds: int = 5) -> None:
    """Let every ready task run (tasks here never sleep for real)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


def spawn(gate: Gate, host: str, key: tuple[int, ...], entered: list | None = None) -> asyncio.Task[None]:
    async def run() -> None:
        await gate.acquire(host, key)
        if entered is not None:
            entered.append((host, key))

    return asyncio.create_task(run())


async def test_limits_must_be_positive():
    with pytest.raises(ValueError):
        Gate(0, 1)
    with pytest.raises(ValueError):
        Gate(1, 0)


async def test_limits_hold_under_many_concurrent_callers():
    task_limit, host_limit, hosts = 6, 2, [f"h{i}" for i in range(5)]
    gate = Gate(task_limit, host_limit)
    rng = random.Random(7)
    inside = 0
    per_host: Counter[str] = Counter()
    most, most_per_host = 0, Counter[str]()
    done = 0

    async def call(host: str, key: tuple[int, ...], hold: int) -> None:
        nonlocal inside, most, done
        await asyncio.sleep(0)
        await gate.acquire(host, key)
        try:
            inside += 1
            per_host[host] += 1
            most = max(most, inside)
            most_per_host[host] = max(most_per_host[host], per_host[host])
            assert inside <= task_limit and per_host[host] <= host_limit
            assert gate.in_flight >= inside, "granted callers not yet resumed count too"
            for _ in range(hold):
                await asyncio.sleep(0)
            inside -= 1
            per_host[host] -= 1
        finally:
            gate.release(host)
        done += 1

    calls = [call(rng.choice(hosts), (rng.randrange(4), rng.randrange(10)), rng.randrange(1, 6)) for _ in range(300)]
    await asyncio.wait_for(asyncio.gather(*calls), timeout=5)
    assert done == 300
    assert most == task_limit, "the limit is reached, not just respected"
    assert max(most_per_host.values()) == host_limit
    assert gate.peak == task_limit
    assert gate.in_flight == 0 and gate.waiting == 0 and gate.outstanding == 0
    assert not +gate.per_host


async def test_one_host_never_gets_more_than_its_limit():
    gate = Gate(task_limit=100, host_limit=3)
    inside = 0
    most = 0

    async def call() -> None:
        nonlocal inside, most
        await gate.acquire("only", (0,))
        inside += 1
        most = max(most, inside)
        await settle(3)
        inside -= 1
        gate.release("only")

    await asyncio.wait_for(asyncio.gather(*(call() for _ in range(40))), timeout=5)
    assert most == 3 and gate.peak == 3


async def test_waiters_enter_in_key_order_then_arrival_order():
    gate = Gate(task_limit=1, host_limit=1)
    await gate.acquire("h", (0,))
    keys = [(2, 0), (0, 5), (3, 1), (1, 0), (0, 5), (2, -1), (0, 1), (1, 0)]
    order: list[int] = []

    async def call(i: int) -> None:
        await gate.acquire("h", keys[i])
        order.append(i)
        await asyncio.sleep(0)
        gate.release("h")

    tasks = []
    for i in range(len(keys)):
        tasks.append(asyncio.create_task(call(i)))
        await settle(1)  # arrival order is the index
    await settle()
    assert gate.waiting == len(keys) and order == []
    gate.release("h")
    await asyncio.wait_for(asyncio.gather(*tasks), timeout=2)
    assert order == sorted(range(len(keys)), key=lambda i: (keys[i], i))


async def test_several_free_slots_go_to_the_most_urgent_waiters():
    gate = Gate(task_limit=3, host_limit=10)
    for _ in range(3):
        await gate.acquire("h", (0,))
    entered: list = []
    tasks = [spawn(gate, "h", (k,), entered) for k in (5, 1, 4, 2, 3)]
    await settle()
    assert gate.waiting == 5
    gate.release("h")
    gate.release("h")
    await settle()
    assert sorted(k for _, (k,) in entered) == [1, 2]
    assert gate.waiting == 3 and gate.in_flight == 3
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_a_free_slot_is_not_taken_by_a_newcomer_ahead_of_a_waiter():
    gate = Gate(task_limit=1, host_limit=1)
    await gate.acquire("h", (9,))
    entered: list = []
    waiter = spawn(gate, "h", (5,), entered)
    await settle()
    gate.release("h")  # goes to the waiter at once
    newcomer = spawn(gate, "h", (0,), entered)
    await settle()
    assert entered == [("h", (5,))]
    assert not newcomer.done() and gate.waiting == 1
    gate.release("h")
    await asyncio.wait_for(newcomer, timeout=1)
    assert waiter.done()
    assert entered == [("h", (5,)), ("h", (0,))]


async def test_a_waiter_for_a_full_host_does_not_block_others_on_arrival():
    gate = Gate(task_limit=10, host_limit=1)
    await gate.acquire("busy", (0,))
    urgent = spawn(gate, "busy", (0,))
    await settle()
    assert gate.waiting == 1
    await asyncio.wait_for(gate.acquire("free", (9,)), timeout=1)  # less urgent, yet served at once
    assert gate.in_flight == 2 and gate.per_host["free"] == 1
    assert not urgent.done() and gate.waiting == 1
    gate.release("busy")
    await asyncio.wait_for(urgent, timeout=1)
    assert gate.per_host["busy"] == 1 and gate.waiting == 0


async def test_a_freed_slot_goes_past_a_waiter_whose_host_is_full():
    gate = Gate(task_limit=2, host_limit=1)
    await gate.acquire("h1", (0,))
    await gate.acquire("h2", (0,))
    entered: list = []
    urgent = spawn(gate, "h1", (0,), entered)  # h1 is full
    lesser = spawn(gate, "h3", (7,), entered)  # h3 is free, the task limit is not
    await settle()
    assert gate.waiting == 2
    gate.release("h2")
    await settle()
    assert entered == [("h3", (7,))], "the slot is used, not kept idle for h1"
    assert lesser.done() and not urgent.done()
    assert gate.in_flight == 2 and gate.waiting == 1
    gate.release("h1")
    await settle()
    assert urgent.done() and entered[-1] == ("h1", (0,))


async def test_counters_outstanding_waiting_and_peak():
    gate = Gate(task_limit=2, host_limit=5)
    assert (gate.outstanding, gate.waiting, gate.peak) == (0, 0, 0)
    await gate.acquire("a", (0,))
    await gate.acquire("b", (0,))
    assert (gate.in_flight, gate.outstanding, gate.waiting, gate.peak) == (2, 2, 0, 2)
    tasks = [spawn(gate, "a", (1,)) for _ in range(3)]
    await settle()
    assert (gate.in_flight, gate.outstanding, gate.waiting) == (2, 5, 3)
    gate.release("a")
    await settle()
    assert (gate.in_flight, gate.outstanding, gate.waiting) == (2, 4, 2)
    gate.release("b")
    gate.release("a")
    await settle()
    assert (gate.in_flight, gate.outstanding, gate.waiting) == (2, 2, 0)
    assert gate.peak == 2, "peak counts calls in flight, not waiting"
    assert all(t.done() for t in tasks)
    gate.release("a")
    gate.release("a")
    assert gate.outstanding == 0 and not +gate.per_host


async def test_a_cancelled_waiter_leaves_and_leaks_no_slot():
    gate = Gate(task_limit=1, host_limit=1)
    await gate.acquire("h", (0,))
    entered: list = []
    doomed = spawn(gate, "h", (0,), entered)
    later = spawn(gate, "h", (5,), entered)
    await settle()
    assert gate.waiting == 2
    doomed.cancel()
    with pytest.raises(asyncio.CancelledError):
        await doomed
    assert gate.waiting == 1 and gate.outstanding == 2 and gate.in_flight == 1
    gate.release("h")
    await asyncio.wait_for(later, timeout=1)
    assert entered == [("h", (5,))]
    assert gate.in_flight == 1 and gate.waiting == 0
    gate.release("h")
    assert gate.in_flight == 0 and not +gate.per_host
    await asyncio.wait_for(gate.acquire("h", (0,)), timeout=1)  # the slot is still there


async def test_a_timed_out_acquire_leaves_no_trace():
    gate = Gate(task_limit=1, host_limit=1)
    await gate.acquire("h", (0,))
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(gate.acquire("h", (0,)), timeout=0.01)
    assert gate.waiting == 0 and gate.outstanding == 1
    gate.release("h")
    assert gate.in_flight == 0
    await asyncio.wait_for(gate.acquire("h", (0,)), timeout=1)


async def test_a_waiter_cancelled_just_as_it_was_granted_gives_the_slot_back():
    gate = Gate(task_limit=1, host_limit=1)
    await gate.acquire("h", (0,))
    entered: list = []
    granted = spawn(gate, "h", (0,), entered)
    next_one = spawn(gate, "h", (1,), entered)
    await settle()
    gate.release("h")  # grants ``granted`` ...
    assert gate.in_flight == 1 and gate.waiting == 1
    granted.cancel()  # ... which is cancelled before it could run
    with pytest.raises(asyncio.CancelledError):
        await granted
    await asyncio.wait_for(next_one, timeout=1)
    assert entered == [("h", (1,))], "the slot passed on to the next waiter"
    assert gate.in_flight == 1 and gate.per_host["h"] == 1 and gate.waiting == 0
    gate.release("h")
    assert gate.in_flight == 0 and not +gate.per_host


async def test_cancelling_many_waiters_keeps_the_counts_right():
    gate = Gate(task_limit=2, host_limit=2)
    await gate.acquire("a", (0,))
    await gate.acquire("b", (0,))
    tasks = [spawn(gate, h, (i,)) for i, h in enumerate(["a", "b", "c"] * 5)]
    await settle()
    for t in tasks[::2]:
        t.cancel()
    await settle()
    assert gate.waiting == 7 and gate.outstanding == 9
    gate.release("a")
    gate.release("b")
    survivors = tasks[1::2]
    for _ in range(len(survivors)):
        await settle()
        for t in survivors:
            if t.done() and not getattr(t, "released", False):
                t.released = True  # type: ignore[attr-defined]
                host = ["a", "b", "c"][tasks.index(t) % 3]
                gate.release(host)
    await asyncio.wait_for(asyncio.gather(*survivors), timeout=1)
    await settle()
    for t in survivors:
        if not getattr(t, "released", False):
            gate.release(["a", "b", "c"][tasks.index(t) % 3])
    assert gate.in_flight == 0 and gate.waiting == 0 and not +gate.per_host


async def test_full_only_when_every_slot_is_taken_or_promised():
    gate = Gate(task_limit=2, host_limit=2)
    assert not gate.full
    await gate.acquire("h", (0,))
    assert not gate.full
    await gate.acquire("h", (0,))
    assert gate.full


async def test_full_clears_and_on_free_is_told_only_once_outstanding_is_below_the_limit():
    told: list[int] = []
    gate = Gate(task_limit=2, host_limit=5, on_free=lambda: told.append(gate.outstanding))
    await gate.acquire("h", (0,))
    await gate.acquire("h", (0,))
    queued = spawn(gate, "h", (0,))
    await settle()
    assert gate.outstanding == 3 and gate.full
    gate.release("h")  # the waiter moves in: 2 outstanding
    await settle()
    assert queued.done() and gate.outstanding == 2
    assert gate.full, "2 outstanding is not below 2"
    gate.release("h")
    assert not gate.full and gate.outstanding == 1
    assert told == [2, 1]


async def test_a_cancelled_waiter_clears_full_and_tells_on_free():
    told: list[int] = []
    gate = Gate(task_limit=1, host_limit=1, on_free=lambda: told.append(gate.outstanding))
    await gate.acquire("h", (0,))
    queued = spawn(gate, "h", (0,))
    await settle()
    assert gate.outstanding == 2 and gate.full
    queued.cancel()
    await settle()
    assert gate.outstanding == 1 and told == [1], "the intake must hear that a promise was dropped"
    gate.release("h")


async def test_on_free_is_told_on_every_release_after_the_grant():
    seen: list[tuple[int, int]] = []
    gate = Gate(task_limit=1, host_limit=1, on_free=lambda: seen.append((gate.in_flight, gate.waiting)))
    await gate.acquire("h", (0,))
    waiter = spawn(gate, "h", (0,))
    await settle()
    gate.release("h")
    assert seen == [(1, 0)], "told once, after the freed slot went to the waiter"
    await waiter
    gate.release("h")
    assert seen == [(1, 0), (0, 0)]


async def test_full_counts_promised_slots_and_least_urgent_waiting():
    gate = Gate(task_limit=2, host_limit=1)
    assert not gate.full and gate.least_urgent_waiting() is None
    await gate.acquire("a", (0,))
    assert not gate.full
    blocked = [spawn(gate, "a", k) for k in ((3, 1), (1, 0), (3, 0))]  # host a is full: they wait
    await settle()
    assert gate.in_flight == 1 and gate.full, "a free slot with waiters queued is not free for a new call"
    assert gate.least_urgent_waiting() == (3, 1)
    for t in blocked:
        t.cancel()
    await asyncio.gather(*blocked, return_exceptions=True)
    assert not gate.full and gate.least_urgent_waiting() is None
    await gate.acquire("b", (0,))
    assert gate.full
