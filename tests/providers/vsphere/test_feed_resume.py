"""After a failed call the feed keeps its collector and version only when that is safe.

A refused or dropped connection cannot be caused on demand on vcsim, so the behaviour tests
run the feed on :class:`FakeVcenter` (scripted answers, real pyvmomi objects).
"""

from __future__ import annotations

import asyncio
import http.client
import socket
import ssl

import pytest
from pyVmomi import vim, vmodl

from corral.providers.base import ProviderError
from corral.providers.vsphere.collector import resumable

from .fake_vcenter import FakeVcenter, Part, enter, running_feed, vm

H1 = vim.HostSystem("host-1")
MAX_WAIT = 1


REFUSED = ConnectionRefusedError(111, "refused")
LOST = [
    ConnectionResetError(104, "reset by peer"),
    TimeoutError("timed out"),
    http.client.RemoteDisconnected("closed"),
    http.client.HTTPException("503 Service Unavailable"),
    ssl.SSLError("bad record"),
    vmodl.fault.SystemError(reason="boom"),
    vmodl.query.InvalidCollectorVersion(),
    vmodl.fault.InvalidArgument(),
    ProviderError("something else"),
    ValueError("a bug"),
]


@pytest.mark.parametrize("exc, reading_snapshot, resume", [
    (REFUSED, False, True),
    (socket.gaierror(-2, "Name or service not known"), False, True),
    (REFUSED, True, False),
    *[(exc, False, False) for exc in LOST],
    *[(exc, True, False) for exc in LOST],
])
def test_only_a_call_that_never_left_during_a_delta_is_resumed(exc: BaseException, reading_snapshot: bool,
                                                                resume: bool) -> None:
    assert resumable(exc, reading_snapshot) is resume


def rebuilt_once(fake: FakeVcenter) -> bool:
    """The inventory's collector was replaced (and the first destroyed), the task loop's was not."""
    inventory, tasks = fake.collectors["inventory"], fake.collectors["tasks"]
    return len(inventory) == 2 and ("DestroyPropertyCollector", inventory[0]) in fake.calls and len(tasks) == 1 \
        and ("DestroyPropertyCollector", tasks[0]) not in fake.calls


async def served(fake: FakeVcenter) -> None:
    assert await asyncio.to_thread(fake.idle.wait, 5)
    await asyncio.sleep(0.02)  # the last answer applied


async def test_a_refused_connection_resumes_from_the_same_version_without_a_snapshot() -> None:
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1"), vm("vm-1", "a", H1)]),
        ConnectionRefusedError(111, "refused"),
        Part("u1", [vm("vm-2", "b", H1)]),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT, first_backoff=0.01) as feed:
        await served(fake)
        assert fake.waits[:3] == [("", 0), ("s1", MAX_WAIT), ("s1", MAX_WAIT)]
        assert [len(fake.collectors[k]) for k in ("inventory", "tasks")] == [1, 1] and feed.snapshots == 1
        assert set(feed.cache.vm_ids) == {"a", "b"} and feed.error is None


async def test_a_refused_connection_during_a_snapshot_reads_it_anew_on_a_new_collector() -> None:
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1"), vm("vm-1", "a", H1)], truncated=True),
        ConnectionRefusedError(111, "refused"),
        Part("t1", [enter(H1, name="h1"), vm("vm-1", "a", H1)], truncated=True),
        Part("t2", [vm("vm-2", "b", H1)]),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT, first_backoff=0.01) as feed:
        await served(fake)
        assert fake.waits[:4] == [("", 0), ("s1", 0), ("", 0), ("t1", 0)]
        assert rebuilt_once(fake)
        assert feed.snapshots == 1 and set(feed.cache.vm_ids) == {"a", "b"}


@pytest.mark.parametrize("exc", [http.client.RemoteDisconnected("closed"), vmodl.fault.SystemError(reason="boom")])
async def test_a_lost_answer_or_an_unknown_fault_takes_a_new_collector_and_snapshot(exc: BaseException) -> None:
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1"), vm("vm-1", "a", H1), vm("vm-2", "b", H1)]),
        exc,  # the answer that said vm-2 left may be lost with it
        Part("t1", [enter(H1, name="h1"), vm("vm-1", "a", H1)]),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT, first_backoff=0.01) as feed:
        async with asyncio.timeout(5):
            await feed.ready.wait()
        since = feed.changes.version
        await served(fake)
        assert fake.waits[:3] == [("", 0), ("s1", MAX_WAIT), ("", 0)]
        assert rebuilt_once(fake)
        assert feed.snapshots == 2 and set(feed.cache.vm_ids) == {"a"}
        changed = feed.changes.since(since)
        assert changed is not None and changed.vms == ["b"]  # a did not change and is not reported
