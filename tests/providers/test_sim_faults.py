"""The simulator's faults of the endpoint as a whole, as a provider's caller sees them: clones
failing at a seeded rate, a session that expires and is renewed, an outage, a stalled host and
a change feed that drops its connection; each with the cause it is counted under."""

from __future__ import annotations

import asyncio
import time

import pytest

from corral.domain.models import VmSpec
from corral.providers.base import Cause, ProviderError
from corral.providers.sim import SimProvider
from helpers import sim_settings

H1, H2 = "sim-host-01", "sim-host-02"


def specs(prefix: str, count: int) -> list[VmSpec]:
    return [VmSpec(name=f"{prefix}{i}", pool="p", template="t") for i in range(count)]


async def opened() -> SimProvider:
    sim = SimProvider("sim", sim_settings())
    await sim.connect()
    return sim


async def failed_clones(seed: int) -> list[str]:
    sim = await opened()
    try:
        sim.controls.fail_clones(0.1, seed=seed)
        results = await sim.create_vms(H1, specs("v", 400))
    finally:
        await sim.close()
    for r in results:
        assert r.ok or (r.cause is Cause.INJECTED and r.retryable)
    return [r.name for r in results if not r.ok]


async def test_clones_fail_at_the_seeded_rate_and_a_seed_fails_the_same_vms() -> None:
    first, again, other = await failed_clones(7), await failed_clones(7), await failed_clones(8)
    assert 20 <= len(first) <= 60  # 10 % of 400, give or take
    assert first == again and first != other


async def test_an_expired_session_is_renewed_and_the_call_goes_on() -> None:
    sim = await opened()
    try:
        sim.controls.expire_session_every(3)
        for _ in range(9):
            await sim.list_hosts()
        assert sim.sessions_renewed == 2  # the 4th and the 7th call found it expired
        sim.controls.fail_renewals(1)
        with pytest.raises(ProviderError) as err:  # the 10th finds it expired, and cannot renew it
            await sim.list_hosts()
        assert err.value.cause is Cause.SESSION
        await sim.list_hosts()  # the next call renews it
        assert sim.sessions_renewed == 3
    finally:
        await sim.close()


async def test_an_outage_fails_every_call_the_feed_and_a_connect_then_ends() -> None:
    sim = await opened()
    try:
        waiting = asyncio.create_task(sim.wait_for_updates((await sim.wait_for_updates(None, 0)).version, 5.0))
        await asyncio.sleep(0.02)
        sim.controls.unreachable_for(0.3)
        for call in (sim.list_hosts(), sim.create_vms(H1, specs("a", 1)), sim.destroy_vm("x"), waiting):
            with pytest.raises(ProviderError) as err:
                await call
            assert err.value.cause is Cause.UNREACHABLE
        other = SimProvider("other", sim_settings())
        other.controls.unreachable_for(0.3)
        with pytest.raises(ProviderError):
            await other.connect()
        await asyncio.sleep(0.35)
        assert len(await sim.list_hosts()) == 4
        await other.connect()
        await other.close()
    finally:
        await sim.close()


async def test_a_stalled_host_slows_only_the_calls_that_touch_it() -> None:
    sim = SimProvider("sim", sim_settings(concurrency=1))  # one slot: a stall held in it would block all
    await sim.connect()
    try:
        await sim.create_vms(H1, specs("a", 1))
        sim.controls.stall_host(H1, 0.5)
        started = time.monotonic()
        slow = asyncio.gather(sim.create_vms(H1, specs("b", 1)), sim.destroy_vm("a0"))
        await asyncio.sleep(0.01)
        await sim.create_vms(H2, specs("c", 2))
        quick = time.monotonic() - started
        await slow
        assert quick < 0.25 and time.monotonic() - started >= 0.5
        sim.controls.stall_host(H1, 0)
        started = time.monotonic()
        await sim.create_vms(H1, specs("d", 1))
        assert time.monotonic() - started < 0.25
    finally:
        await sim.close()


async def test_a_dropped_feed_raises_and_loses_no_change() -> None:
    sim = await opened()
    try:
        version = (await sim.wait_for_updates(None, 0)).version
        waiting = asyncio.create_task(sim.wait_for_updates(version, 5.0))
        await asyncio.sleep(0.02)
        sim.controls.drop_feed(2)
        with pytest.raises(ProviderError) as err:
            await waiting
        assert err.value.cause is Cause.FEED
        await sim.create_vms(H1, specs("a", 2))  # a change while the feed is down
        with pytest.raises(ProviderError):
            await sim.wait_for_updates(version, 0)
        update = await sim.wait_for_updates(version, 0)  # asked again from the last version
        assert not update.full and {vm.name for vm in update.vms} == {"a0", "a1"}
    finally:
        await sim.close()


@pytest.mark.parametrize(("hook", "value"), [("fail_clones", 1.5), ("fail_clones", -0.1),
                                            ("expire_session_every", -1), ("unreachable_for", -1.0)])
def test_bad_hook_arguments_are_refused(hook: str, value: float) -> None:
    with pytest.raises(ValueError):
        getattr(SimProvider("sim", sim_settings()).controls, hook)(value)
