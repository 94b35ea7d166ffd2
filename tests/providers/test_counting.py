"""Provider failures counted by (provider, operation, cause): the wrapper around a simulator,
with failures injected, and the counts it keeps."""

from __future__ import annotations

from typing import Any

import pytest

from corral.domain.models import VmSpec
from corral.providers.base import Cause, HostUnavailable, ProviderError, VmNotFound
from corral.providers.counting import Counted, ProviderCounts, ProviderFailures, counted
from corral.providers.sim import SimProvider
from helpers import sim_settings

HOST = "sim-host-01"


def spec(name: str) -> VmSpec:
    return VmSpec(name=name, pool="p", template="t")


async def connected() -> tuple[Counted, SimProvider, ProviderCounts]:
    sim = SimProvider("sim", sim_settings())
    counts = ProviderCounts()
    provider = counted({"sim": sim}, counts)["sim"]
    assert isinstance(provider, Counted)
    await provider.connect()
    return provider, sim, counts


async def fail_create_call(provider: Counted, sim: SimProvider) -> None:
    sim.controls.fail_next("create")
    with pytest.raises(ProviderError):
        await provider.create_vms(HOST, [spec("a"), spec("b")])


async def fail_two_vms_of_a_bulk_call(provider: Counted, sim: SimProvider) -> None:
    await provider.create_vms(HOST, [spec("a")])
    results = await provider.create_vms(HOST, [spec("a"), spec("b"), spec("c")])  # "a" exists: refused
    assert [r.ok for r in results] == [False, True, True]
    sim.controls.fail_on_host("sim-host-02")
    results = await provider.create_vms("sim-host-02", [spec("d")])
    assert [r.ok for r in results] == [False]


async def destroy_a_missing_vm(provider: Counted, sim: SimProvider) -> None:
    with pytest.raises(VmNotFound):
        await provider.destroy_vm("nope")


async def create_on_a_host_down(provider: Counted, sim: SimProvider) -> None:
    sim.controls.set_host_down(HOST)
    with pytest.raises(HostUnavailable):
        await provider.create_vms(HOST, [spec("a")])


async def fail_the_feed(provider: Counted, sim: SimProvider) -> None:
    sim.controls.fail_next("wait_for_updates", 2)
    for _ in range(2):
        with pytest.raises(ProviderError):
            await provider.wait_for_updates(None, 0.01)


async def call_after_close(provider: Counted, sim: SimProvider) -> None:
    await provider.close()
    with pytest.raises(ProviderError):
        await provider.list_hosts()


@pytest.mark.parametrize(("act", "expected"), [
    (fail_create_call, {"sim": {"create_vms": {"injected": 1}}}),
    (fail_two_vms_of_a_bulk_call, {"sim": {"create_vms": {"host": 1, "refused": 1}}}),
    (destroy_a_missing_vm, {"sim": {"destroy_vm": {"not_found": 1}}}),
    (create_on_a_host_down, {"sim": {"create_vms": {"host": 1}}}),
    (fail_the_feed, {"sim": {"wait_for_updates": {"injected": 2}}}),
    (call_after_close, {"sim": {"list_hosts": {"session": 1}}}),
], ids=lambda v: getattr(v, "__name__", ""))
async def test_each_failure_is_counted_by_operation_and_cause(act: Any, expected: dict[str, Any]) -> None:
    provider, sim, counts = await connected()
    try:
        await act(provider, sim)
    finally:
        await provider.close()
    assert counts.view().failures == expected


async def test_calls_that_succeed_count_nothing_and_attributes_reach_the_provider() -> None:
    provider, sim, counts = await connected()
    try:
        assert [r.ok for r in await provider.create_vms(HOST, [spec("a")])] == [True]
        await provider.destroy_vm("a")
        assert provider.name == "sim" and provider.bulk_calls == sim.bulk_calls
        assert provider.controls is sim.controls and provider.inner is sim  # read through the wrapper
        provider.probes_readiness = True  # set through it
        assert sim.probes_readiness is True
    finally:
        await provider.close()
    assert counts.view() == ProviderFailures({}, {})


class Renewing(SimProvider):
    """A simulator whose session is renewed before every third call."""

    async def list_hosts(self) -> Any:
        if self.calls["list_hosts"] % 3 == 2:
            self.sessions_renewed += 1
        return await super().list_hosts()


async def test_session_renewals_are_counted_apart_from_failures() -> None:
    counts = ProviderCounts()
    provider = Counted(Renewing("sim", sim_settings()), counts)
    await provider.connect()
    try:
        for _ in range(9):
            await provider.list_hosts()
    finally:
        await provider.close()
    view = counts.view()
    assert view.sessions_renewed == {"sim": 3} and view.failures == {}


@pytest.mark.parametrize(("cause", "shown"), [(None, "other"), (Cause.TIMEOUT, "timeout"), (Cause.FEED, "feed")])
def test_the_counts_view_nests_by_provider_operation_and_cause(cause: Cause | None, shown: str) -> None:
    counts = ProviderCounts()
    counts.failed("b", "destroy_vm", cause)
    counts.failed("a", "create_vms", Cause.INJECTED, 3)
    counts.failed("a", "create_vms", Cause.INJECTED)
    view = counts.view()
    assert view.failures == {"a": {"create_vms": {"injected": 4}}, "b": {"destroy_vm": {shown: 1}}}
    assert list(view.failures) == ["a", "b"]
    assert view.total() == 5 and view.total("a") == 4 and view.total(cause=shown) == 1


async def test_a_provider_replaced_by_a_reload_keeps_its_renewals_counted() -> None:
    counts = ProviderCounts()
    first = Counted(Renewing("sim", sim_settings()), counts)
    await first.connect()
    for _ in range(6):
        await first.list_hosts()
    await first.close()
    second = Counted(Renewing("sim", sim_settings()), counts)  # a reload built it anew
    await second.connect()
    for _ in range(3):
        await second.list_hosts()
    await second.close()
    assert counts.view().sessions_renewed == {"sim": 3}
