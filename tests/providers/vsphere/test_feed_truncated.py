"""Truncated update sets (``maxObjectUpdates``): one answer in several parts.

vcsim never truncates, so these tests run the feed on :class:`FakeVcenter`, which serves
scripted update sets made of real pyvmomi objects.
"""

from __future__ import annotations

import asyncio
import threading

from pyVmomi import vim

from .fake_vcenter import FakeVcenter, Part, enter, leave, modify, running_feed, vm

H1, H2 = vim.HostSystem("host-1"), vim.HostSystem("host-2")
A, B, C, D = (vim.VirtualMachine(f"vm-{n}") for n in range(1, 5))
MAX_WAIT = 1


async def test_a_snapshot_in_three_parts_is_applied_whole_and_only_then_ready() -> None:
    last = threading.Event()
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1"), vm("vm-1", "a", H1), vm("vm-2", "b", H1)], truncated=True),
        Part("s2", [vm("vm-3", "c", H1), vm("vm-4", "d", H1)], truncated=True),
        Part("s3", [vm("vm-5", "e", H1)], gate=last),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT) as feed:
        since = feed.changes.version
        assert await asyncio.to_thread(fake.at_gate.wait, 5)  # two parts read, the last one pending
        assert not feed.ready.is_set()
        assert feed.cache.vm_ids == {} and feed.snapshots == 0  # no half snapshot applied
        last.set()
        async with asyncio.timeout(5):
            await feed.ready.wait()
        assert set(feed.cache.vm_ids) == {"a", "b", "c", "d", "e"}
        assert feed.cache.host("h1").vm_count == 5  # type: ignore[union-attr]
        assert feed.snapshots == 1 and feed.update_sets == 3
        changed = feed.changes.since(since)
        assert changed is not None and set(changed.vms) == {"a", "b", "c", "d", "e"} and changed.hosts == ["h1"]


async def test_an_update_in_two_parts_applies_both_and_touches_every_vm_in_them() -> None:
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1"), enter(H2, name="h2"), vm("vm-1", "a", H1), vm("vm-2", "b", H1),
                    vm("vm-3", "c", H1)]),
        Part("u1", [modify(A, runtime__powerState="poweredOff"), vm("vm-4", "d", H2)], truncated=True),
        Part("u2", [leave(B), modify(C, runtime__host=H2)]),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT) as feed:
        async with asyncio.timeout(5):
            await feed.ready.wait()
        since = feed.changes.version
        assert await asyncio.to_thread(fake.idle.wait, 5)  # both parts served
        await asyncio.sleep(0.05)
        cache = feed.cache
        assert set(cache.vm_ids) == {"a", "c", "d"}
        assert not cache.vm("a").powered_on  # type: ignore[union-attr]
        assert cache.vm("c").host == cache.vm("d").host == "h2"  # type: ignore[union-attr]
        assert cache.host("h1").vm_count == 1 and cache.host("h2").vm_count == 2  # type: ignore[union-attr]
        changed = feed.changes.since(since)
        assert changed is not None and set(changed.vms) == {"a", "b", "c", "d"} and set(changed.hosts) == {"h1", "h2"}
        assert feed.snapshots == 1 and feed.update_sets == 3


async def test_no_part_after_a_truncated_one_waits_max_wait_seconds() -> None:
    fake = FakeVcenter([
        Part("s1", [enter(H1, name="h1")], truncated=True),
        Part("s2", [vm("vm-1", "a", H1)]),
        Part("u1", [vm("vm-2", "b", H1)], truncated=True),
        Part("u2", [vm("vm-3", "c", H1)], truncated=True),
        Part("u3", [vm("vm-4", "d", H1)]),
    ])
    async with running_feed(fake, feed_max_wait=MAX_WAIT):
        assert await asyncio.to_thread(fake.idle.wait, 5)
        # a snapshot does not wait; an incremental wait does, but its truncated answer's later
        # parts are there already and are read on at once
        assert fake.waits == [("", 0), ("s1", 0), ("s2", MAX_WAIT), ("u1", 0), ("u2", 0), ("u3", MAX_WAIT)]
