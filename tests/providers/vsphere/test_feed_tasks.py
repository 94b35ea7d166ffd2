"""Task completions have a collector, a long poll and a thread of their own.

A task's end must neither wait behind nor be parsed with an inventory update set (vcsim
recollects the whole inventory for every change; a real vCenter's snapshot after a reconnect
holds thousands of objects). The tests hold the inventory loop's thread, as a long parse of
such an update set would, and see tasks end all the same.
"""

from __future__ import annotations

import asyncio
import threading
import time

from corral.bench.vcsim import Vcsim
from corral.domain.models import VmSpec

from .conftest import TEMPLATE, make_provider, pool
from .test_feed_restart import alive


async def test_a_tasks_end_arrives_while_the_inventory_loop_is_busy(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")}, feed_max_wait=1, task_timeout=3)
    await provider.connect()
    busy, release = threading.Event(), threading.Event()
    try:
        thread = provider.feed.thread
        assert thread is not None
        # the inventory loop's next WaitForUpdatesEx waits behind this (its current one ends
        # within feed_max_wait)
        thread.submit(lambda: (busy.set(), release.wait(10)))
        assert await asyncio.to_thread(busy.wait, 5)
        started = time.monotonic()
        # a clone, then its move, notes and power-on (vcsim leaves them out): four tasks
        [result] = await provider.create_vms("DC0_C0_H1", [VmSpec(name="t1", pool="p", template=TEMPLATE)])
        took = time.monotonic() - started
        assert result.ok, result.error
        assert took < 2.5, took
        assert "t1" not in provider.cache.vm_ids  # the inventory loop was held all along
        assert provider.session.calls["RelocateVM_Task"] == provider.session.calls["PowerOnVM_Task"] == 1
    finally:
        release.set()
        await provider.close()


async def test_stop_ends_both_long_polls_at_once(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, feed_max_wait=30)
    await provider.connect()
    try:
        feed = provider.feed
        collectors = [feed.collector, feed.tasks.collector]
        assert all(c is not None for c in collectors) and collectors[0]._moId != collectors[1]._moId
        async with asyncio.timeout(5):
            await feed.tasks.ready.wait()
        await asyncio.sleep(0.3)  # both loops are in their long polls now
        started = time.monotonic()
        await feed.stop()
        assert time.monotonic() - started < 2.0
        assert not any(await asyncio.to_thread(lambda: [alive(c) for c in collectors]))
    finally:
        await provider.close()
