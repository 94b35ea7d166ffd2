"""LatestValue: a queue of one that never blocks the one who puts."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest

from corral.ha.latest import LatestValue


class SlowStore:
    """Records what is written; each write waits until the test opens the gate."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.started = asyncio.Event()
        self.written: list[int] = []
        self.fail_next = 0

    async def write(self, value: int) -> None:
        self.started.set()
        await self.gate.wait()
        if self.fail_next:
            self.fail_next -= 1
            raise ConnectionError("store down")
        self.written.append(value)


async def test_a_slow_store_keeps_only_the_newest_value() -> None:
    store = SlowStore()
    latest: LatestValue[int] = LatestValue(store.write, "state")
    latest.put(1)
    await store.started.wait()  # 1 is being written, and waits
    t0 = time.monotonic()
    for value in range(2, 50):
        latest.put(value)  # never waits for the store
    assert time.monotonic() - t0 < 0.05
    store.gate.set()
    await latest.flush()
    assert store.written == [1, 49]
    assert (latest.written, latest.replaced) == (2, 47)
    await latest.close()


async def test_a_failed_write_is_logged_once_and_the_next_value_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    store = SlowStore()
    store.gate.set()
    store.fail_next = 3
    latest: LatestValue[int] = LatestValue(store.write, "state")
    with caplog.at_level(logging.INFO, logger="corral.ha"):
        for value in range(1, 5):
            latest.put(value)
            await latest.flush()
    assert store.written == [4]
    assert latest.failures == 3 and latest.last_error is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["cannot write", "writing again"]
    assert caplog.records[0].__dict__["error"] == "ConnectionError: store down"
    await latest.close()


async def test_close_lets_the_write_under_way_finish_and_drops_the_rest() -> None:
    store = SlowStore()
    latest: LatestValue[int] = LatestValue(store.write, "state")
    latest.put(1)
    await store.started.wait()
    latest.put(2)
    closing = asyncio.create_task(latest.close())
    await asyncio.sleep(0.02)
    assert not closing.done()  # waits for the write of 1
    store.gate.set()
    await closing
    latest.put(3)  # closed: ignored
    await asyncio.sleep(0.02)
    assert store.written == [1]


async def test_close_gives_up_on_a_write_that_hangs() -> None:
    store = SlowStore()
    latest: LatestValue[int] = LatestValue(store.write, "state")
    latest.put(1)
    await store.started.wait()
    t0 = time.monotonic()
    await latest.close(timeout=0.1)
    assert 0.1 <= time.monotonic() - t0 < 1
    assert store.written == []


async def test_nothing_put_nothing_to_close() -> None:
    store = SlowStore()
    latest: LatestValue[int] = LatestValue(store.write)
    await latest.flush()
    await latest.close()
    assert store.written == [] and not store.started.is_set()
