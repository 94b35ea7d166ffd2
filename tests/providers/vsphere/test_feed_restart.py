"""A restarted change feed leaves no collector or view behind on the vCenter.

The feed has two collectors, the inventory's (with its views) and the task loop's, each
restarted on its own. vcsim has no list of a session's collectors and views, so the test records every one the
feed made and asks vcsim about each: reading a property of a destroyed one fails with
ManagedObjectNotFound.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import pytest
from pyVmomi import vmodl

from corral.bench.vcsim import Vcsim
from corral.domain.models import VmSpec
from corral.providers.vsphere import VsphereProvider
from corral.providers.vsphere.collector import CollectorLoop
from corral.providers.vsphere.feed import Feed
from helpers import eventually

from ..contract import FeedReader
from .conftest import TEMPLATE, make_provider, pool

RESTARTS = 20


def alive(ref: Any) -> bool:
    """Whether the vCenter still knows this collector or view (asked on the feed's session)."""
    try:
        ref.filter if isinstance(ref, vmodl.query.PropertyCollector) else ref.view
    except vmodl.fault.ManagedObjectNotFound:
        return False
    return True


class Made:
    """Every collector and view a feed's two loops were seen to use, by moid."""

    def __init__(self) -> None:
        self.refs: dict[str, Any] = {}

    def note(self, feed: Feed) -> None:
        for ref in [feed.collector, feed.tasks.collector, *feed.views]:
            if ref is not None:
                self.refs.setdefault(ref._moId, ref)

    async def alive(self) -> tuple[int, int]:
        """How many of the collectors and views seen are alive on the vCenter."""
        live = await asyncio.to_thread(lambda: [r for r in self.refs.values() if alive(r)])
        collectors = sum(isinstance(r, vmodl.query.PropertyCollector) for r in live)
        return collectors, len(live) - collectors


async def task_loop_ready(feed: Feed) -> None:
    """Connecting waits for the inventory's first snapshot; this waits for the task loop's too."""
    async with asyncio.timeout(5):
        await feed.tasks.ready.wait()


def cancel(collector: Any) -> None:
    try:
        collector.CancelWaitForUpdates()
    except vmodl.fault.ManagedObjectNotFound:  # replaced and destroyed meanwhile
        pass


async def restart(loop: CollectorLoop, timeout: float = 5.0) -> None:
    """Cancel a loop's pending WaitForUpdatesEx from its own session: the wait fails with
    RequestCanceled, a fault the loop answers with a new collector (and views)."""
    old, snapshots = loop.collector, loop.snapshots
    deadline = time.monotonic() + timeout
    while loop.snapshots == snapshots:  # the new collector's snapshot is in
        if time.monotonic() > deadline:
            pytest.fail(f"the {loop.what} loop did not restart")
        if loop.collector is old:  # a cancel that came between two waits ends none: cancel again
            await asyncio.to_thread(cancel, old)
        await asyncio.sleep(0.02)


@pytest.mark.parametrize("datacenter, views", [(None, 1), ("DC0", 2)])
async def test_restarts_leave_two_collectors_and_the_views_alive(vcsim: Vcsim, datacenter: str | None,
                                                                views: int) -> None:
    provider: VsphereProvider = make_provider(vcsim, pools={"p": pool("p")}, datacenter=datacenter)
    await provider.connect()
    try:
        feed, made = provider.feed, Made()
        await task_loop_ready(feed)
        made.note(feed)
        without_views = 0

        async def watch() -> None:  # a full read must always find views to read
            nonlocal without_views
            while True:
                without_views += not feed.views
                await asyncio.sleep(0.0005)

        watcher = asyncio.create_task(watch())
        for _ in range(RESTARTS):
            await restart(feed)
            await restart(feed.tasks)
            made.note(feed)
        watcher.cancel()
        assert feed.snapshots == feed.tasks.snapshots == 1 + RESTARTS and without_views == 0
        assert len(made.refs) == (RESTARTS + 1) * (2 + views)  # every restart made new ones
        assert await made.alive() == (2, views)  # the inventory's collector and views, the task loop's collector
        [result] = await provider.create_vms("DC0_C0_H0", [VmSpec(name="after", pool="p", template=TEMPLATE)])
        assert result.ok, result.error
        reader = FeedReader(provider)
        await reader.until(lambda r: "after" in r.vms, 10)
        await feed.stop()  # a clean close destroys them while the session is still open
        assert await made.alive() == (0, 0)
    finally:
        await provider.close()


async def test_objects_destroyed_behind_the_feeds_back_do_not_stop_the_rebuild(
        vcsim: Vcsim, caplog: pytest.LogCaptureFixture) -> None:
    provider = make_provider(vcsim)
    await provider.connect()
    try:
        feed, made = provider.feed, Made()
        await task_loop_ready(feed)
        made.note(feed)
        snapshots = feed.snapshots
        # the view first, then the collector: that ends the pending wait, and the feed's own
        # destroys of both fail with ManagedObjectNotFound
        caplog.set_level(logging.DEBUG, logger="corral.providers.vsphere")
        await asyncio.to_thread(lambda: (feed.views[0].DestroyView(), feed.collector.DestroyPropertyCollector()))
        await eventually(lambda: feed.snapshots > snapshots, 5)
        made.note(feed)
        assert await made.alive() == (2, 1) and len(made.refs) == 5  # the task loop kept its collector
        assert feed.tasks.snapshots == 1
        failed = [r for r in caplog.records if r.levelno == logging.DEBUG and "destroying" in r.getMessage()]
        assert len(failed) == 2 and {getattr(r, "error", "").split(":")[0] for r in failed} == {"ManagedObjectNotFound"}
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
    finally:
        await provider.close()


async def test_objects_of_a_lost_session_are_dropped_without_a_call(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, feed_max_wait=1)
    await provider.connect()
    try:
        feed, made = provider.feed, Made()
        await task_loop_ready(feed)
        made.note(feed)
        vcsim.terminate_sessions()
        await eventually(lambda: feed.snapshots == feed.tasks.snapshots == 2, 5)
        made.note(feed)
        assert provider.session.relogins == 1  # one login for both loops
        assert provider.session.calls["DestroyPropertyCollector"] == provider.session.calls["DestroyView"] == 0
        assert await made.alive() == (2, 1) and len(made.refs) == 6
    finally:
        await provider.close()
