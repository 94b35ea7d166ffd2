"""Refill order on the real simulator and sqlite store: a pool emptied while two others refill
is served before the VMs already queued for them (``refill_order: need``), or after them
(``arrival``, first come, first served). One VM per create call, as on vSphere."""

from __future__ import annotations

import dataclasses

import pytest

from corral.pools.settings import ManagerSettings
from corral.runner import Priority
from helpers import QUICK_RUNNER, eventually, sim_settings


def created(provider) -> list[str]:
    """The pools of the VMs the simulator was asked to create, in the order of the calls."""
    return [name for call in list(provider.call_log) if call.op == "create" for name in call.names]


@pytest.mark.parametrize(("order", "need_first"), [
    ("need", True),  # the emptied pool's first VM goes ahead of (nearly) every VM queued for the others
    ("arrival", False),  # it waits behind every one of them
])
async def test_an_emptied_pool_goes_ahead_of_pools_refilling(harness, pool_factory, order: str,
                                                             need_first: bool) -> None:
    manager = await harness.start(
        [pool_factory("a", 0), pool_factory("b", 0), pool_factory("c", 3)],
        sim=sim_settings(hosts=4, bulk_calls=False),
        settings=ManagerSettings(task_limit=2, check_interval=0.05, feed_timeout=1.0,
                                 runner=dataclasses.replace(QUICK_RUNNER, refill_order=order)))
    await harness.wait_full()
    provider = harness.provider
    provider.controls.stall("create", 0.05)  # each call holds its slot: the refills queue up
    manager.set_pool_size("a", 8)
    manager.set_pool_size("b", 8)
    await eventually(lambda: manager.runner.queue.by_class[Priority.REFILL] >= 12)
    queued_before = {w.name for w in manager.runner.queue.works()}
    sent_before = len(created(provider))
    assert manager.checkout(["c"] * 3) is not None
    await harness.wait_full(timeout=20)
    names = created(provider)[sent_before:]
    first_c = next(i for i, name in enumerate(names) if harness.store.get_vm(name).pool == "c")
    others_before = [n for n in names[:first_c] if n in queued_before]
    if need_first:  # at most the calls under way or about to start when the checkout came (2 slots, twice)
        assert len(others_before) <= 4 < len(queued_before)
    else:
        assert sorted(others_before) == sorted(queued_before)
