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


@pytest.mark.parametrize(("order", "others_after_first"), [
    ("need", 10),  # the emptied pool's first VM goes ahead of (nearly) every VM queued for the others
    ("arrival", 0),  # it waits behind every one of them
])
async def test_an_emptied_pool_goes_ahead_of_pools_refilling(harness, pool_factory, order: str,
                                                             others_after_first: int) -> None:
    manager = await harness.start(
        [pool_factory("a", 0), pool_factory("b", 0), pool_factory("c", 3)],
        sim=sim_settings(hosts=4, bulk_calls=False),
        settings=ManagerSettings(task_limit=2, check_interval=0.05, feed_timeout=1.0,
                                 runner=dataclasses.replace(QUICK_RUNNER, refill_order=order)))
    await harness.wait_full()
    provider = harness.provider
    provider.controls.stall("create", 0.03)  # each call holds its slot: the refills queue up
    manager.set_pool_size("a", 8)
    manager.set_pool_size("b", 8)
    await eventually(lambda: manager.runner.queue.by_class[Priority.REFILL] >= 12)
    queued_before = {w.name for w in manager.runner.queue.works()}
    sent_before = len(created(provider))
    assert manager.checkout(["c"] * 3) is not None
    await harness.wait_full(timeout=20)
    names = created(provider)[sent_before:]
    first_c = next(i for i, name in enumerate(names) if harness.store.get_vm(name).pool == "c")
    others_after = [n for n in names[first_c:] if n in queued_before]
    assert len(others_after) >= others_after_first
    if order == "arrival":
        assert others_after == []
