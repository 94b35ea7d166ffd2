"""The change feed: WaitForUpdatesEx, no per-object reads in steady state, changes made outside corral."""

from __future__ import annotations

import asyncio

import pytest

from corral.bench.vcsim import Vcsim, wait_task
from corral.domain.models import VmSpec
from corral.providers.base import ProviderError

from ..contract import FeedReader
from .conftest import TEMPLATE, make_provider, pool


async def test_steady_state_is_one_long_poll_per_collector_and_no_reads(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")}, feed_max_wait=1)
    await provider.connect()
    try:
        [result] = await provider.create_vms("DC0_C0_H0", [VmSpec(name="quiet", pool="p", template=TEMPLATE)])
        assert result.ok
        feed = FeedReader(provider)
        await feed.read()
        before = dict(provider.session.calls)
        for _ in range(20):  # readers of the feed cost the vCenter nothing
            await provider.wait_for_updates(feed.version, 0.05)
        await asyncio.sleep(2.5)
        calls = {k: v - before.get(k, 0) for k, v in provider.session.calls.items() if v != before.get(k, 0)}
        # the inventory's loop and the task loop, each 2 to 4 long polls of 1 s in 2.5 s
        assert set(calls) == {"WaitForUpdatesEx"} and 4 <= calls["WaitForUpdatesEx"] <= 8, calls
    finally:
        await provider.close()


async def test_changes_made_outside_corral_reach_the_feed(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        await provider.create_vms("DC0_C0_H0", [VmSpec(name=n, pool="p", template=TEMPLATE) for n in ("x1", "x2")])
        feed = FeedReader(provider)
        # a create returns when its tasks have ended; the clones reach the feed with its next update
        await feed.until(lambda f: {"x1", "x2"} <= set(f.vms) and f.vms["x1"].powered_on, 10)
        assert feed.vms["x1"].pool == "p"
        await asyncio.to_thread(lambda: wait_task(vcsim.vm("x1").PowerOffVM_Task()))
        await feed.until(lambda f: not f.vms["x1"].powered_on, 10)
        await asyncio.to_thread(lambda: (wait_task(vcsim.vm("x2").PowerOffVM_Task()),
                                         wait_task(vcsim.vm("x2").Destroy_Task())))
        await feed.until(lambda f: "x2" in f.removed, 10)
        assert not any(u.full for u in feed.updates[1:])
        assert feed.hosts["DC0_C0_H0"].vm_count == 1  # the host's sums follow its VMs
    finally:
        await provider.close()


async def test_a_lost_session_gives_a_fresh_snapshot_and_only_real_differences(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        specs = [VmSpec(name=n, pool="p", template=TEMPLATE) for n in ("k1", "k2", "k3")]
        await provider.create_vms("DC0_C0_H1", specs)
        feed = FeedReader(provider)
        await feed.until(lambda f: {"k1", "k2", "k3"} <= set(f.vms), 10)
        vcsim.terminate_sessions()
        # while corral has no session, someone destroys k3
        await asyncio.to_thread(lambda: (wait_task(vcsim.vm("k3").PowerOffVM_Task()),
                                         wait_task(vcsim.vm("k3").Destroy_Task())))
        await feed.until(lambda f: "k3" in f.removed, 15)
        # one relogin and a new collector with its snapshot; vcsim also closes the connections
        # of the ended session, and a wait that finds one closed without an answer takes a new
        # collector of its own (``resumable``): a second new snapshot, and still no false removal
        assert provider.session.relogins == 1 and 2 <= provider.feed.snapshots <= 3
        assert feed.removed == {"k3"}  # k1 and k2 never looked gone
        assert not any(u.full for u in feed.updates[1:])  # readers got a delta, not a reset
        assert {"k1", "k2"} <= set(feed.vms)
    finally:
        await provider.close()


async def test_host_metrics_come_in_one_query_for_all_hosts(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim)
    await provider.connect()
    try:
        metrics = await provider.host_metrics(["cpu.usage.average", "mem.usage.average"])
        assert set(metrics) == set(vcsim.hosts())
        assert all(set(m) == {"cpu.usage.average", "mem.usage.average"} for m in metrics.values())
        assert provider.session.calls["QueryPerf"] == 1
        with pytest.raises(ProviderError, match="cpu.nonsense.average"):
            await provider.host_metrics(["cpu.nonsense.average"])
    finally:
        await provider.close()


async def test_hosts_carry_quickstats_and_cluster(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim)
    await provider.connect()
    try:
        update = await provider.wait_for_updates(None, 1)
        host = next(h for h in update.hosts if h.name == "DC0_C0_H0")
        assert host.cluster == "DC0_C0" and host.up and not host.maintenance and host.health == "green"
        assert host.cores > 0 and host.mhz > 0 and host.memory_mb > 0 and host.cpu_used_mhz > 0
        assert host.cpu_vendor == "GenuineIntel"
    finally:
        await provider.close()


async def test_a_datacenter_can_be_chosen_and_an_unknown_one_is_named(vcsim: Vcsim) -> None:
    provider = make_provider(vcsim, datacenter="DC0")
    await provider.connect()
    try:
        assert set(provider.cache.host_ids) == set(vcsim.hosts())
        assert await provider.template_info(TEMPLATE) is not None
    finally:
        await provider.close()
    wrong = make_provider(vcsim, datacenter="DC9", call_timeout=5)
    with pytest.raises(ProviderError, match="DC9"):
        await wrong.connect()
    assert vcsim.sessions() == []  # the failed connect logged out again


async def test_a_full_read_leaves_the_clones_under_way_known(vcsim: Vcsim) -> None:
    """``list_vms`` reads a fresh snapshot of its own; a clone whose task has not yet made the VM
    is missing from it, and must stay known as this provider's (as the clone path marks it)."""
    provider = make_provider(vcsim, pools={"p": pool("p")})
    await provider.connect()
    try:
        provider.cache.known_pools["clone-under-way"] = "p"  # what a clone records before its task starts
        assert "clone-under-way" not in {vm.name for vm in await provider.list_vms()}
        assert provider.cache.known_pools.get("clone-under-way") == "p"
    finally:
        await provider.close()
