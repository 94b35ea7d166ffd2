"""Autosizing in the running pools, on the simulator with the real manager and sqlite store."""

from __future__ import annotations

import asyncio

import pytest

from corral.domain.states import VmState
from helpers import eventually, ready_counts, sim_settings

# a VM is ready some 0.25 s after it is asked for: the model sees a replenishment time it can act on
SLOW_ENOUGH = sim_settings(time_scale=0.02)


def autosized(pool_factory, **kw):
    keys = {"min_size": 1, "max_size": 5, "target_wait": 0.01, "scale_down_after_s": 1.0, "demand_window_s": 0.5}
    return pool_factory("a", kw.pop("size", 1), **{**keys, **kw})


async def test_a_burst_raises_the_size_at_once_and_it_falls_to_min_size_after_the_cooldown(harness, pool_factory):
    manager = await harness.start([autosized(pool_factory)], sim=SLOW_ENOUGH)
    await harness.wait_full()
    (held,) = manager.checkout(["a"])
    manager.demand_seen("a", 7)  # seven more asked for while the pool was empty
    risen = manager.pools["a"].size
    assert risen > 1, "the size rises in the same step as the checkouts"
    assert manager.sizing.view("a").history[-1].size == risen
    await asyncio.sleep(0.3)
    assert manager.pools["a"].size == risen, "no fall before scale_down_after has passed"
    await eventually(lambda: manager.pools["a"].size == 1, timeout=8)
    view = manager.sizing.view("a")
    assert view.target == 1 and view.bound in (None, "min_size"), "the model asks for one at most now"
    changes = list(view.history)
    peak = max(range(len(changes)), key=lambda i: changes[i].size)
    rise, falls = changes[peak], changes[peak + 1:]
    assert rise.size == risen and falls and falls[-1].size == 1
    assert all(c.size > 1 for c in changes[:peak + 1]), "only rises before the peak"
    assert falls[0].at - rise.at >= 1.0, "the first fall waits scale_down_after after the rise"
    await eventually(lambda: ready_counts(harness.store).get("a", 0) == 1
                     and not harness.store.list_vms(pool="a", states=[VmState.PENDING]))
    vm = harness.store.get_vm(held.name)
    assert vm.state is VmState.RUNNING, "a fall never touches a checked-out VM"


@pytest.mark.parametrize(("asked", "size", "bound"), [(200, 5, "max_size"), (0, 2, "min_size")])
async def test_the_size_stays_within_min_and_max(harness, pool_factory, asked, size, bound):
    manager = await harness.start([autosized(pool_factory, min_size=2, size=3)], sim=SLOW_ENOUGH)
    assert manager.pools["a"].size == 3, "size is the starting size"
    if asked:
        manager.demand_seen("a", asked)
    else:
        manager.resize()  # no demand at all: the model asks for none, min_size holds
    assert manager.pools["a"].size == size
    assert manager.sizing.view("a").bound == bound
    await eventually(lambda: ready_counts(harness.store).get("a", 0) == size)


async def test_a_size_set_at_the_api_holds_the_pool_until_reset(harness, pool_factory):
    manager = await harness.start([autosized(pool_factory)], sim=SLOW_ENOUGH)
    manager.set_pool_size("a", 2)  # as the override does
    manager.demand_seen("a", 200)
    assert manager.pools["a"].size == 2, "an override switches autosizing off"
    view = manager.sizing.view("a")
    assert view.held and view.reason == "held by a size set at the API"
    manager.set_pool_size("a", 2, held=False)  # the override's reset
    assert manager.pools["a"].size == 5, "autosizing resumes at once"
    assert not manager.sizing.view("a").held


async def test_a_pool_without_autosizing_keys_keeps_its_size(harness, pool_factory):
    manager = await harness.start([pool_factory("fixed", 2)])
    manager.demand_seen("fixed", 200)
    await harness.wait_full()
    assert manager.pools["fixed"].size == 2
    assert manager.sizing.view("fixed") is None


async def test_time_to_ready_is_measured(harness, pool_factory):
    manager = await harness.start([autosized(pool_factory, min_size=3)], sim=SLOW_ENOUGH)
    await harness.wait_full()
    manager.resize()
    ready_s = manager.sizing.view("a").ready_s
    assert 0.05 < ready_s < 5, "the measured time replaces the 60 s prior"
