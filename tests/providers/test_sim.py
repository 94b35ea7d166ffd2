"""What the simulator does beyond the shared contract: its knobs, hooks and persistence."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from pydantic import ValidationError

from corral.domain.models import TemplateInfo, VmSpec
from corral.providers.base import CreateResult, HostUnavailable, Provider, ProviderError, VmNotFound
from corral.providers.sim import SimCall, SimProvider, SimSettings

from .contract import FeedReader, eventually

MakeSim = Callable[..., Awaitable[SimProvider]]
HOST = "sim-host-01"
XEON = "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"  # the default host CPU


def spec(name: str, template: str = "tmpl") -> VmSpec:
    return VmSpec(name=name, pool="pool-a", template=template)


@pytest_asyncio.fixture
async def make_sim() -> AsyncIterator[MakeSim]:
    """Connected simulators from keyword settings (``time_scale`` 0.001 unless given)."""
    made: list[SimProvider] = []

    async def make(**settings: Any) -> SimProvider:
        settings.setdefault("time_scale", 0.001)
        sim = SimProvider("sim-test", SimSettings(**settings))
        await sim.connect()
        made.append(sim)
        return sim

    yield make
    for sim in made:
        await sim.close()


async def until_ready(sim: SimProvider, name: str, timeout: float = 2.0) -> None:
    async def ready() -> bool:
        return await sim.vm_ready(name)

    await eventually(ready, timeout)


async def host(sim: SimProvider, name: str = HOST) -> Any:
    return next(h for h in await sim.list_hosts() if h.name == name)


async def vm(sim: SimProvider, name: str) -> Any:
    return next(v for v in await sim.list_vms() if v.name == name)


# -- time ------------------------------------------------------------------------------


async def test_time_scale_shrinks_every_latency(make_sim: MakeSim) -> None:
    sim = await make_sim(time_scale=0.01, host_clone_slots=1, latency={"create_call": 1, "create_per_vm": 1})
    started = time.monotonic()
    results = await sim.create_vms(HOST, [spec(f"vm-{i}") for i in range(5)])
    elapsed = time.monotonic() - started
    assert all(r.ok for r in results)
    assert 0.06 <= elapsed < 1.0


async def test_a_host_runs_clone_slots_clones_side_by_side(make_sim: MakeSim) -> None:
    # 5 clones, 2 at a time: 3 rounds of 10 simulated seconds after a 1 s call cost
    sim = await make_sim(time_scale=0.01, host_clone_slots=2, latency={"create_call": 1, "create_per_vm": 10})
    started = time.monotonic()
    await sim.create_vms(HOST, [spec(f"vm-{i}") for i in range(5)])
    elapsed = time.monotonic() - started
    assert 0.31 <= elapsed < 0.39 + 0.3
    started = time.monotonic()
    await sim.create_vms(HOST, [spec(f"vm-x{i}") for i in range(2)])
    assert 0.11 <= time.monotonic() - started < 0.2 + 0.3, "two clones fit in one round"


async def test_jitter_stays_within_its_band(make_sim: MakeSim) -> None:
    sim = await make_sim(time_scale=0.01, jitter=0.5, seed=1, latency={"destroy": 10})
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    started = time.monotonic()
    await sim.destroy_vm("vm-1")
    assert 0.045 <= time.monotonic() - started < 0.5


async def test_a_long_poll_waits_real_seconds_not_scaled_ones(make_sim: MakeSim) -> None:
    sim = await make_sim(time_scale=0.001)
    snapshot = await sim.wait_for_updates(None, 1)
    started = time.monotonic()
    assert (await sim.wait_for_updates(snapshot.version, 0.2)).empty
    assert time.monotonic() - started >= 0.18


# -- failure rates and templates -------------------------------------------------------


async def test_create_failure_rate_one_fails_every_vm(make_sim: MakeSim) -> None:
    sim = await make_sim(failure_rates={"create": 1.0})
    results = await sim.create_vms(HOST, [spec("vm-1"), spec("vm-2"), spec("vm-3")])
    assert [r.ok for r in results] == [False] * 3
    assert all(r.error and r.retryable for r in results)
    assert await sim.list_vms() == []


async def test_boot_failure_rate_one_means_never_ready(make_sim: MakeSim) -> None:
    sim = await make_sim(failure_rates={"boot": 1.0}, latency={"boot": 10})  # 10 ms
    assert (await sim.create_vms(HOST, [spec("vm-1")]))[0].ok
    await asyncio.sleep(0.1)
    assert not await sim.vm_ready("vm-1")
    record = await vm(sim, "vm-1")
    assert record.powered_on and not record.guest_ready


async def test_destroy_and_migrate_failure_rates_leave_the_vm_alone(make_sim: MakeSim) -> None:
    sim = await make_sim(failure_rates={"destroy": 1.0, "migrate": 1.0})
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    with pytest.raises(ProviderError):
        await sim.destroy_vm("vm-1")
    with pytest.raises(ProviderError):
        await sim.migrate_vm("vm-1", "sim-host-02")
    assert (await vm(sim, "vm-1")).host == HOST


async def test_strict_templates_fail_unknown_templates(make_sim: MakeSim) -> None:
    sim = await make_sim(strict_templates=True, templates={"small": {"cpus": 1, "memory_mb": 512}})
    ok, missing = await sim.create_vms(HOST, [spec("vm-1", "small"), spec("vm-2", "missing")])
    assert ok.ok
    assert not missing.ok and missing.error == "template 'missing' not found" and not missing.retryable
    used = await host(sim)
    assert used.memory_used_mb == 512 and used.vm_count == 1
    assert used.cpu_used_mhz == pytest.approx(1 * 2600 * 0.25)


async def test_unknown_templates_use_the_defaults_when_not_strict(make_sim: MakeSim) -> None:
    sim = await make_sim(template_defaults={"cpus": 4, "memory_mb": 1000}, vm_cpu_load=0.5)
    assert (await sim.create_vms(HOST, [spec("vm-1", "anything")]))[0].ok
    used = await host(sim)
    assert used.memory_used_mb == 1000
    assert used.cpu_used_mhz == pytest.approx(4 * 2600 * 0.5)


async def test_template_info_reports_size_and_cpu_needs(make_sim: MakeSim) -> None:
    sim = await make_sim(templates={"win": {"cpus": 4, "memory_mb": 8192, "cpu_vendor": "GenuineIntel",
                                            "cpu_family": 6, "cpu_flags": ["avx2", "aes"], "cpu_model": "v4"}})
    win = await sim.template_info("win")
    assert win == TemplateInfo(name="win", cpus=4, memory_mb=8192, cpu_vendor="GenuineIntel", cpu_family=6,
                               cpu_flags=frozenset({"avx2", "aes"}), cpu_model="v4")
    other = await sim.template_info("other")
    assert other == TemplateInfo(name="other", cpus=2, memory_mb=4096), "unknown: the defaults, asking for any CPU"
    assert sim.calls["template_info"] == 2

    strict = await make_sim(strict_templates=True, templates={"win": {"cpus": 4}})
    assert await strict.template_info("other") is None
    assert (await strict.template_info("win")).cpus == 4
    strict.controls.fail_next("template_info")
    with pytest.raises(ProviderError, match="injected failure"):
        await strict.template_info("win")
    await strict.close()
    with pytest.raises(ProviderError, match="not connected"):
        await strict.template_info("win")


async def test_a_powered_off_vm_uses_no_cpu_or_memory(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    await sim.power_off("vm-1")
    used = await host(sim)
    assert used.memory_used_mb == 0 and used.cpu_used_mhz == 0 and used.vm_count == 1


# -- hosts -----------------------------------------------------------------------------


async def test_a_host_count_names_the_hosts(make_sim: MakeSim) -> None:
    sim = await make_sim(hosts=3)
    hosts = await sim.list_hosts()
    assert [h.name for h in hosts] == ["sim-host-01", "sim-host-02", "sim-host-03"]
    assert {(h.cpu_model, h.cores, h.mhz, h.memory_mb) for h in hosts} == {(XEON, 32, 2600, 262144)}


async def test_host_lists_defaults_and_overrides_combine(make_sim: MakeSim) -> None:
    sim = await make_sim(
        hosts=[{"name": "a"}, {"name": "b", "cores": 8}],
        host_defaults={"memory_mb": 1000},
        host_overrides={"a": {"cpu_model": "epyc"}, "b": {"memory_mb": 2000}},
    )
    a, b = await sim.list_hosts()
    assert (a.name, a.cpu_model, a.cores, a.memory_mb) == ("a", "epyc", 32, 1000)
    assert (b.name, b.cpu_model, b.cores, b.memory_mb) == ("b", XEON, 8, 2000)


async def test_a_down_host_takes_no_vms_and_its_vms_are_not_ready(make_sim: MakeSim) -> None:
    sim = await make_sim()
    await sim.create_vms(HOST, [spec("vm-1")])
    await until_ready(sim, "vm-1")
    feed = FeedReader(sim)
    await feed.read()

    sim.controls.set_host_down(HOST)
    assert not await sim.vm_ready("vm-1")
    with pytest.raises(HostUnavailable):
        await sim.create_vms(HOST, [spec("vm-2")])
    with pytest.raises(HostUnavailable):
        await sim.migrate_vm("vm-1", HOST)
    update = await feed.read()
    assert [(h.name, h.up) for h in update.hosts] == [(HOST, False)]

    sim.controls.set_host_down(HOST, down=False)
    assert await sim.vm_ready("vm-1")
    assert (await sim.create_vms(HOST, [spec("vm-2")]))[0].ok
    await feed.until(lambda f: f.hosts[HOST].up, timeout=1)


async def test_hosts_report_their_cpu_and_health_in_the_list_and_the_feed(make_sim: MakeSim) -> None:
    sim = await make_sim(hosts=2)
    listed = await host(sim)
    assert listed.cpu_model.split()[4] == "v4", "the fifth word is the model word"
    assert (listed.cpu_vendor, listed.cpu_family) == ("GenuineIntel", 6)
    assert listed.cpu_flags == frozenset({"sse4_2", "avx", "avx2", "aes"})
    assert (listed.health, listed.config_issues, listed.memory_allocated_mb) == ("green", 0, 0.0)
    snapshot = await sim.wait_for_updates(None, 0.1)
    assert snapshot.full and {h.name: h for h in snapshot.hosts}[HOST] == listed


async def test_host_cpu_keys_take_defaults_list_entries_and_overrides(make_sim: MakeSim) -> None:
    epyc = "AMD EPYC 7763 64-Core Processor"
    sim = await make_sim(
        hosts=[{"name": "a"}, {"name": "b", "cpu_flags": ["sse4_2"]}, {"name": "c"}],
        host_defaults={"cpu_family": 25},
        host_overrides={"a": {"cpu_model": epyc, "cpu_vendor": "AuthenticAMD", "cpu_flags": ["avx2", "sev"]},
                        "c": {"cpu_family": 6}},
    )
    a, b, c = await sim.list_hosts()
    assert (a.cpu_model, a.cpu_vendor, a.cpu_family, a.cpu_flags) == (epyc, "AuthenticAMD", 25, {"avx2", "sev"})
    assert (b.cpu_model, b.cpu_vendor, b.cpu_family, b.cpu_flags) == (XEON, "GenuineIntel", 25, {"sse4_2"})
    assert (c.cpu_family, c.cpu_flags) == (6, frozenset({"sse4_2", "avx", "avx2", "aes"}))


async def test_host_health_is_reported_as_a_host_change_and_still_takes_vms(make_sim: MakeSim) -> None:
    sim = await make_sim()
    feed = FeedReader(sim)
    await feed.read()

    sim.controls.set_host_health(HOST, "yellow", config_issues=2)
    update = await feed.read()
    assert [(h.name, h.health, h.config_issues) for h in update.hosts] == [(HOST, "yellow", 2)]
    assert ((await host(sim)).health, (await host(sim)).config_issues) == ("yellow", 2)
    assert (await sim.create_vms(HOST, [spec("vm-1")]))[0].ok, "only the scheduler avoids unhealthy hosts"

    sim.controls.set_host_health(HOST, "red")
    await feed.until(lambda f: (f.hosts[HOST].health, f.hosts[HOST].config_issues) == ("red", 0), timeout=1)
    sim.controls.set_host_health(HOST, "red")
    assert (await feed.read()).hosts == [], "setting the same health again changes no host"
    sim.controls.set_host_health(HOST)
    await feed.until(lambda f: f.hosts[HOST].health == "green", timeout=1)


async def test_set_host_health_refuses_bad_values(make_sim: MakeSim) -> None:
    sim = await make_sim()
    with pytest.raises(ValueError, match="'purple'.*green, yellow, red, gray"):
        sim.controls.set_host_health(HOST, "purple")
    with pytest.raises(ValueError, match="negative"):
        sim.controls.set_host_health(HOST, "green", config_issues=-1)
    with pytest.raises(HostUnavailable):
        sim.controls.set_host_health("no-such-host", "red")
    assert (await host(sim)).health == "green"


async def test_allocated_memory_counts_powered_off_vms_used_memory_does_not(make_sim: MakeSim) -> None:
    sim = await make_sim(templates={"big": {"memory_mb": 8192}})
    await sim.create_vms(HOST, [spec("vm-1"), spec("vm-2", template="big")])
    await sim.power_off("vm-1")
    used = await host(sim)
    assert (used.memory_used_mb, used.memory_allocated_mb) == (8192, 4096 + 8192)
    await sim.migrate_vm("vm-2", "sim-host-02")
    await sim.destroy_vm("vm-1")
    assert ((await host(sim)).memory_allocated_mb, (await host(sim, "sim-host-02")).memory_allocated_mb) == (0, 8192)


async def test_an_unknown_host_is_unavailable(make_sim: MakeSim) -> None:
    sim = await make_sim()
    with pytest.raises(HostUnavailable, match="no-such-host"):
        await sim.create_vms("no-such-host", [spec("vm-1")])


async def test_migration_moves_the_vms_use_between_hosts(make_sim: MakeSim) -> None:
    sim = await make_sim()
    await sim.create_vms(HOST, [spec("vm-1")])
    await sim.migrate_vm("vm-1", "sim-host-02")
    assert (await host(sim)).memory_used_mb == 0
    assert (await host(sim, "sim-host-02")).memory_used_mb == 4096


# -- hooks -----------------------------------------------------------------------------


async def test_fail_next_fails_exactly_that_many_calls(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.fail_next("create", 2)
    for _ in range(2):
        with pytest.raises(ProviderError, match="injected failure"):
            await sim.create_vms(HOST, [spec("vm-1")])
    assert await sim.list_vms() == []
    assert (await sim.create_vms(HOST, [spec("vm-1")]))[0].ok

    sim.controls.fail_next("power")
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.power_off("vm-1")
    await sim.power_off("vm-1")

    sim.controls.fail_next("list_vms")
    with pytest.raises(ProviderError):
        await sim.list_vms()
    assert len(await sim.list_vms()) == 1


async def test_fail_next_can_inject_a_permanent_failure_in_its_turn(make_sim: MakeSim) -> None:
    sim = await make_sim()
    assert (await sim.create_vms(HOST, [spec("vm-1")]))[0].ok
    sim.controls.fail_next("destroy", retryable=False)
    sim.controls.fail_next("destroy")
    with pytest.raises(ProviderError, match=r"injected failure \(permanent\)") as first:
        await sim.destroy_vm("vm-1")
    with pytest.raises(ProviderError, match="injected failure") as second:
        await sim.destroy_vm("vm-1")
    assert (first.value.retryable, second.value.retryable) == (False, True)
    await sim.destroy_vm("vm-1")
    assert await sim.list_vms() == []

    with pytest.raises(ValueError, match="unknown operation"):
        sim.controls.fail_next("reboot")


async def test_stall_slows_calls_until_cleared(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.stall("list_vms", 0.2)
    started = time.monotonic()
    await sim.list_vms()
    assert time.monotonic() - started >= 0.19
    sim.controls.stall("list_vms", 0)
    started = time.monotonic()
    await sim.list_vms()
    assert time.monotonic() - started < 0.1


async def test_injected_vms_look_like_any_other(make_sim: MakeSim) -> None:
    sim = await make_sim()
    feed = FeedReader(sim)
    await feed.read()
    injected = sim.controls.inject_vm("orphan-1", HOST, "pool-a", template="tmpl")
    assert injected.pool == "pool-a" and injected.guest_ready and injected.ip
    assert await vm(sim, "orphan-1") == injected
    assert await sim.vm_ready("orphan-1")
    await feed.until(lambda f: "orphan-1" in f.vms, timeout=1)
    assert (await host(sim)).memory_used_mb == 4096

    sim.controls.inject_vm("stuck-1", HOST, None, guest_ready=False)
    assert not await sim.vm_ready("stuck-1")
    with pytest.raises(ValueError, match="already exists"):
        sim.controls.inject_vm("orphan-1", HOST, "pool-a")


async def test_calls_are_counted_per_method(make_sim: MakeSim) -> None:
    sim = await make_sim()
    await sim.create_vms(HOST, [spec("vm-1"), spec("vm-2")])
    await sim.vm_ready("vm-1")
    await sim.vm_ready("vm-2")
    await sim.destroy_vm("vm-1")
    with pytest.raises(ProviderError):
        await sim.destroy_vm("vm-1")
    assert sim.calls["create_vms"] == 1
    assert sim.calls["vm_ready"] == 2
    assert sim.calls["destroy_vm"] == 2
    assert sim.calls["list_vms"] == 0


async def test_concurrency_limits_calls_in_flight(make_sim: MakeSim) -> None:
    sim = await make_sim(concurrency=2)
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    sim.controls.stall("vm_ready", 0.1)
    observed: list[int] = []
    calls = asyncio.gather(*(sim.vm_ready("vm-1") for _ in range(5)))
    started = time.monotonic()
    while not calls.done():
        observed.append(sim.in_flight)
        await asyncio.sleep(0.005)
    assert await calls == [True] * 5
    assert max(observed) == 2 and sim.peak_in_flight == 2
    assert time.monotonic() - started >= 0.25  # three rounds of 0.1 s


async def test_a_long_poll_does_not_hold_a_slot(make_sim: MakeSim) -> None:
    sim = await make_sim(concurrency=1)
    snapshot = await sim.wait_for_updates(None, 1)
    poll = asyncio.create_task(sim.wait_for_updates(snapshot.version, 5))
    await asyncio.sleep(0.01)
    assert await asyncio.wait_for(sim.list_vms(), 0.5) == []
    sim.controls.set_host_down(HOST)
    assert (await asyncio.wait_for(poll, 1)).hosts[0].name == HOST


# -- HA restarts (start_vms), per-host failures, the call log, bulk calls ----------------


async def test_start_vms_moves_vms_off_a_down_host_and_boots_them(make_sim: MakeSim) -> None:
    sim = await make_sim(latency={"boot": 100})  # 100 ms
    await sim.create_vms(HOST, [spec("vm-1"), spec("vm-2")])
    await until_ready(sim, "vm-1")
    await sim.power_off("vm-2")
    feed = FeedReader(sim)
    await feed.read()

    sim.controls.set_host_down(HOST)
    started = time.monotonic()
    results = await sim.start_vms("sim-host-02", ["vm-1", "vm-2"])
    assert results == [CreateResult("vm-1", ok=True), CreateResult("vm-2", ok=True)]
    for name in ("vm-1", "vm-2"):
        record = await vm(sim, name)
        assert (record.host, record.powered_on, record.guest_ready) == ("sim-host-02", True, False)
    assert not await sim.vm_ready("vm-1"), "it boots again on its new host"
    await until_ready(sim, "vm-1")
    await until_ready(sim, "vm-2")
    assert time.monotonic() - started >= 0.09, "ready only after the boot latency"

    await feed.until(lambda f: {f.vms[n].host for n in ("vm-1", "vm-2")} == {"sim-host-02"}, timeout=1)
    await feed.until(lambda f: all(f.vms[n].guest_ready for n in ("vm-1", "vm-2")), timeout=1)
    await feed.until(lambda f: (f.hosts[HOST].vm_count, f.hosts["sim-host-02"].vm_count) == (0, 2), timeout=1)
    assert not any(u.full for u in feed.updates[1:])
    assert ((await host(sim)).memory_allocated_mb, (await host(sim, "sim-host-02")).memory_used_mb) == (0, 2 * 4096)
    assert sim.calls["start_vms"] == 1


async def test_start_vms_refuses_a_vm_still_running_on_an_up_host(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("running", HOST, "pool-a")
    sim.controls.inject_vm("stranded", "sim-host-03", "pool-a")
    sim.controls.set_host_down("sim-host-03")
    sim.controls.set_host_maintenance(HOST)  # in maintenance, but up: the VM still runs there
    refused, ok = await sim.start_vms("sim-host-02", ["running", "stranded"])
    assert not refused.ok and not refused.retryable
    assert refused.error and "'running'" in refused.error and repr(HOST) in refused.error
    assert ok.ok, "a refusal does not fail the others"
    assert (await vm(sim, "running")).host == HOST and await sim.vm_ready("running")
    assert (await vm(sim, "stranded")).host == "sim-host-02"

    [again] = await sim.start_vms("sim-host-02", ["stranded"])
    assert not again.ok and not again.retryable, "once started, it runs on an up host"


async def test_start_vms_of_a_missing_vm_fails_only_that_vm(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    sim.controls.set_host_down(HOST)
    missing, ok = await sim.start_vms("sim-host-02", ["ghost", "vm-1"])
    assert (missing.name, missing.ok, missing.retryable) == ("ghost", False, False)
    assert missing.error and "'ghost'" in missing.error
    assert ok.ok and (await vm(sim, "vm-1")).host == "sim-host-02"
    assert "ghost" not in {v.name for v in await sim.list_vms()}


async def test_start_vms_on_a_host_that_cannot_take_vms_raises(make_sim: MakeSim) -> None:
    sim = await make_sim(latency={"start_call": 100})  # 100 ms
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    sim.controls.set_host_down(HOST)
    sim.controls.set_host_down("sim-host-02")
    sim.controls.set_host_maintenance("sim-host-03")
    for target in ("sim-host-02", "sim-host-03", "no-such-host"):
        with pytest.raises(HostUnavailable, match=target):
            await sim.start_vms(target, ["vm-1"])

    starting = asyncio.create_task(sim.start_vms("sim-host-04", ["vm-1"]))
    await asyncio.sleep(0.03)
    sim.controls.set_host_down("sim-host-04")  # down while the call runs
    with pytest.raises(HostUnavailable, match="sim-host-04"):
        await starting
    assert (await vm(sim, "vm-1")).host == HOST, "nothing moved"

    sim.controls.fail_next("start")
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.start_vms("sim-host-03", ["vm-1"])
    sim.controls.set_host_maintenance("sim-host-03", False)
    assert (await sim.start_vms("sim-host-03", ["vm-1"]))[0].ok


async def test_fail_on_host_fails_every_vm_put_on_that_host(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("stranded", "sim-host-03", "pool-a")
    sim.controls.set_host_down("sim-host-03")
    sim.controls.fail_on_host("sim-host-02")
    says = "simulated failure on host 'sim-host-02'"

    results = await sim.create_vms("sim-host-02", [spec("vm-1"), spec("vm-2")])
    assert [(r.ok, r.error, r.retryable) for r in results] == [(False, says, True)] * 2
    [moved] = await sim.start_vms("sim-host-02", ["stranded"])
    assert (moved.ok, moved.error, moved.retryable) == (False, says, True)
    assert (await vm(sim, "stranded")).host == "sim-host-03", "not moved"
    assert (await host(sim, "sim-host-02")).vm_count == 0

    assert (await sim.create_vms(HOST, [spec("vm-1")]))[0].ok, "other hosts are unaffected"
    assert (await sim.start_vms(HOST, ["stranded"]))[0].ok

    sim.controls.fail_on_host("sim-host-02", False)
    assert [r.ok for r in await sim.create_vms("sim-host-02", [spec("vm-2"), spec("vm-3")])] == [True, True]
    with pytest.raises(HostUnavailable):
        sim.controls.fail_on_host("no-such-host")


async def test_the_call_log_records_create_and_start_calls_in_dispatch_order(make_sim: MakeSim) -> None:
    sim = await make_sim(concurrency=1)
    sim.controls.inject_vm("stranded", "sim-host-03", "pool-a")
    sim.controls.set_host_down("sim-host-03")
    before = time.monotonic()
    sim.controls.stall("create", 0.05)
    first = asyncio.create_task(sim.create_vms(HOST, [spec("vm-1"), spec("vm-2")]))
    second = asyncio.create_task(sim.start_vms("sim-host-02", ["stranded"]))
    await asyncio.gather(first, second)
    sim.controls.stall("create", 0)
    sim.controls.fail_next("create")
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.create_vms(HOST, [spec("vm-3")])
    with pytest.raises(HostUnavailable):
        await sim.start_vms("sim-host-03", ["stranded"])
    await sim.list_vms()  # not a bulk call: not logged

    assert [(c.op, c.host, c.names) for c in sim.call_log] == [
        ("create", HOST, ("vm-1", "vm-2")),
        ("start", "sim-host-02", ("stranded",)),
        ("create", HOST, ("vm-3",)),
        ("start", "sim-host-03", ("stranded",)),
    ]
    times = [c.at for c in sim.call_log]
    assert before <= times[0] and times == sorted(times) and times[-1] <= time.monotonic()
    assert times[1] - times[0] >= 0.045, "logged when it got its slot, after the stalled create"
    assert sim.call_log.maxlen == 10_000
    with pytest.raises(AttributeError):
        sim.call_log[0].op = "start"  # type: ignore[misc]
    assert isinstance(sim.call_log[0], SimCall)


async def test_start_latency_is_a_call_cost_plus_rounds_of_starts(make_sim: MakeSim) -> None:
    # 5 starts, 2 at a time: 3 rounds of 10 simulated seconds after a 1 s call cost
    sim = await make_sim(time_scale=0.01, host_clone_slots=2, latency={"start_call": 1, "start_per_vm": 10})
    for i in range(5):
        sim.controls.inject_vm(f"vm-{i}", HOST, "pool-a")
    sim.controls.set_host_down(HOST)
    started = time.monotonic()
    assert all(r.ok for r in await sim.start_vms("sim-host-02", [f"vm-{i}" for i in range(5)]))
    assert 0.31 <= time.monotonic() - started < 0.39 + 0.3
    sim.controls.set_host_down("sim-host-02")
    started = time.monotonic()
    await sim.start_vms("sim-host-03", ["vm-0", "vm-1"])
    assert 0.11 <= time.monotonic() - started < 0.2 + 0.3, "two starts fit in one round"
    defaults = SimSettings().latency
    assert (defaults.start_call, defaults.start_per_vm) == (0.5, 0.5)


async def test_bulk_calls_is_reported_as_set(make_sim: MakeSim) -> None:
    bulk = await make_sim()
    assert bulk.bulk_calls is True and isinstance(bulk, Provider)
    single = await make_sim(bulk_calls=False)
    assert single.bulk_calls is False and isinstance(single, Provider)
    assert SimSettings.model_validate({"bulk_calls": False}).bulk_calls is False


async def test_started_vms_keep_their_new_host_across_a_reopen(tmp_path: Path) -> None:
    settings = SimSettings(time_scale=0.001, state_file=str(tmp_path / "sim.db"))
    before = SimProvider("sim", settings)
    await before.connect()
    before.controls.inject_vm("vm-1", HOST, "pool-a")
    before.controls.set_host_down(HOST)
    assert (await before.start_vms("sim-host-02", ["vm-1"]))[0].ok
    await before.close()

    after = SimProvider("sim", settings)
    await after.connect()
    try:
        assert (await vm(after, "vm-1")).host == "sim-host-02"
        await until_ready(after, "vm-1")
    finally:
        await after.close()


# -- the feed --------------------------------------------------------------------------


async def test_a_delta_holds_one_latest_record_per_object(make_sim: MakeSim) -> None:
    sim = await make_sim()
    snapshot = await sim.wait_for_updates(None, 1)
    await sim.create_vms(HOST, [spec("vm-1")])
    await sim.power_off("vm-1")
    await sim.power_on("vm-1")
    await sim.power_off("vm-1")
    update = await sim.wait_for_updates(snapshot.version, 1)
    assert [(v.name, v.powered_on) for v in update.vms] == [("vm-1", False)]
    assert [(h.name, h.vm_count, h.memory_used_mb) for h in update.hosts] == [(HOST, 1, 0)]
    assert update.version > snapshot.version


async def test_versions_it_cannot_answer_get_a_full_snapshot(make_sim: MakeSim) -> None:
    first = await make_sim()
    kept = (await first.wait_for_updates(None, 1)).version
    first.controls.inject_vm("vm-1", HOST, "pool-a")
    restarted = await make_sim()  # another generation, as after a restart
    assert (await restarted.wait_for_updates(kept, 1)).full
    current = (await first.wait_for_updates(None, 1)).version
    assert (await first.wait_for_updates(current + 1000, 1)).full  # from the future

    for i in range(10_001):  # more changes than the log keeps
        first.controls.set_host_down(HOST, down=i % 2 == 0)
    update = await first.wait_for_updates(current, 1)
    assert update.full and {v.name for v in update.vms} == {"vm-1"}


async def test_close_releases_waiters_and_calls_in_flight(make_sim: MakeSim) -> None:
    sim = await make_sim(latency={"boot": 10_000})
    await sim.create_vms(HOST, [spec("vm-1")])
    snapshot = await sim.wait_for_updates(None, 1)
    poll = asyncio.create_task(sim.wait_for_updates(snapshot.version, 30))
    sim.controls.stall("create", 30)
    create = asyncio.create_task(sim.create_vms(HOST, [spec("vm-2")]))
    await asyncio.sleep(0.01)
    await sim.close()
    assert (await asyncio.wait_for(poll, 1)).empty
    with pytest.raises(ProviderError, match="not connected"):
        await asyncio.wait_for(create, 1)
    with pytest.raises(ProviderError, match="not connected"):
        await sim.list_vms()
    await sim.connect()
    assert [v.name for v in await sim.list_vms()] == ["vm-1"]


async def test_a_cancel_in_the_same_step_as_a_change_still_cancels_a_long_poll(make_sim: MakeSim) -> None:
    # Python 3.11's asyncio.wait_for lost such a cancel: the feed watcher then never stopped
    sim = await make_sim()
    snapshot = await sim.wait_for_updates(None, 1)
    poll = asyncio.create_task(sim.wait_for_updates(snapshot.version, 30))
    await asyncio.sleep(0.01)
    sim.controls.set_host_down(HOST)
    poll.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(poll, 1)


async def test_a_cancel_in_the_same_step_as_close_still_cancels_a_call(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.stall("list_vms", 30)
    call = asyncio.create_task(sim.list_vms())
    await asyncio.sleep(0.01)
    await sim.close()
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(call, 1)


# -- persistence -----------------------------------------------------------------------


async def test_the_world_survives_a_reopen_and_boots_finish(tmp_path: Path) -> None:
    settings = SimSettings(time_scale=0.001, latency={"boot": 300}, state_file=str(tmp_path / "sim.db"))
    before = SimProvider("sim", settings)
    await before.connect()
    await before.create_vms(HOST, [spec("booted"), spec("off"), spec("gone")])
    await before.create_vms("sim-host-02", [spec("moved")])
    await until_ready(before, "booted")
    await before.power_off("off")
    await before.destroy_vm("gone")
    await before.migrate_vm("moved", "sim-host-03")
    await before.create_vms(HOST, [spec("booting")])
    kept = {v.name: v for v in await before.list_vms()}
    await before.close()

    after = SimProvider("sim", settings)
    await after.connect()
    try:
        found = {v.name: v for v in await after.list_vms()}
        assert set(found) == {"booted", "off", "moved", "booting"}
        for name in ("booted", "off"):
            assert found[name] == kept[name]
        assert found["moved"].host == "sim-host-03" and found["moved"].guest_ready
        assert await after.vm_ready("booted")
        assert not await after.vm_ready("off")
        assert not await after.vm_ready("booting")
        await until_ready(after, "booting")
        assert (await after.create_vms(HOST, [spec("booted")]))[0].error == "VM 'booted' already exists"
    finally:
        await after.close()


async def test_a_create_interrupted_in_its_sleep_creates_nothing(tmp_path: Path) -> None:
    settings = SimSettings(latency={"create_call": 30}, state_file=str(tmp_path / "sim.db"))
    sim = SimProvider("sim", settings)
    await sim.connect()
    create = asyncio.create_task(sim.create_vms(HOST, [spec("vm-1")]))
    await asyncio.sleep(0.05)
    create.cancel()
    with pytest.raises(asyncio.CancelledError):
        await create
    await sim.close()

    reopened = SimProvider("sim", settings)
    await reopened.connect()
    assert await reopened.list_vms() == []
    await reopened.close()


async def test_vms_survive_kill_9(tmp_path: Path) -> None:
    state = tmp_path / "sim.db"
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal
        from corral.domain.models import VmSpec
        from corral.providers.sim import SimProvider, SimSettings

        async def main():
            sim = SimProvider("sim", SimSettings(time_scale=0.001, state_file={str(state)!r}))
            await sim.connect()
            await sim.create_vms("sim-host-01", [VmSpec("vm-1", "p", "t"), VmSpec("vm-2", "p", "t")])
            os.kill(os.getpid(), signal.SIGKILL)

        asyncio.run(main())
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=60)
    assert done.returncode == -9, done.stderr.decode()

    sim = SimProvider("sim", SimSettings(time_scale=0.001, state_file=str(state)))
    await sim.connect()
    try:
        assert sorted(v.name for v in await sim.list_vms()) == ["vm-1", "vm-2"]
        await until_ready(sim, "vm-2")
    finally:
        await sim.close()


# -- disks and snapshots ---------------------------------------------------------------


async def test_disks_and_snapshots_are_kept_per_vm(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    sim.controls.inject_vm("vm-2", HOST, "pool-a")
    await sim.add_disk("vm-1", 10)
    await sim.create_snapshot("vm-1", "first")
    await sim.add_disk("vm-1", 20)
    await sim.create_snapshot("vm-1", "second")
    assert sim.controls.vm_disks("vm-1") == [10, 20]
    assert sim.controls.vm_snapshots("vm-1") == ["first", "second"]
    assert sim.controls.vm_disks("vm-2") == [] and sim.controls.vm_snapshots("vm-2") == []
    assert (await host(sim)).memory_used_mb == 2 * 4096, "disks use no host memory"
    with pytest.raises(VmNotFound):
        sim.controls.vm_disks("vm-3")
    with pytest.raises(VmNotFound):
        sim.controls.vm_snapshots("vm-3")


async def test_revert_restores_the_disks_and_the_run_state(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    await sim.add_disk("vm-1", 10)
    await sim.create_snapshot("vm-1", "running")
    await sim.add_disk("vm-1", 20)
    await sim.power_off("vm-1")
    await sim.create_snapshot("vm-1", "off")
    feed = FeedReader(sim)
    await feed.read()

    await sim.revert_snapshot("vm-1", "running")
    assert sim.controls.vm_disks("vm-1") == [10]
    assert await sim.vm_ready("vm-1"), "a guest that was ready is ready at once"
    await feed.until(lambda f: f.vms["vm-1"].powered_on and f.vms["vm-1"].guest_ready, timeout=1)
    assert (await host(sim)).memory_used_mb == 4096

    await sim.revert_snapshot("vm-1", "off")
    assert sim.controls.vm_disks("vm-1") == [10, 20]
    record = await vm(sim, "vm-1")
    assert not record.powered_on and not record.guest_ready
    assert sim.controls.vm_snapshots("vm-1") == ["running", "off"], "reverting keeps every snapshot"


async def test_reverting_to_a_snapshot_taken_while_booting_boots_again(make_sim: MakeSim) -> None:
    sim = await make_sim(latency={"boot": 50})  # 50 ms
    await sim.create_vms(HOST, [spec("vm-1")])
    await sim.create_snapshot("vm-1", "booting")
    await until_ready(sim, "vm-1")
    await sim.revert_snapshot("vm-1", "booting")
    assert not await sim.vm_ready("vm-1")
    await until_ready(sim, "vm-1")


async def test_snapshot_and_disk_mistakes_are_permanent_errors(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    await sim.create_snapshot("vm-1", "snap")
    for call, says in [
        (sim.revert_snapshot("vm-1", "other"), "no snapshot 'other'"),
        (sim.create_snapshot("vm-1", "snap"), "already has a snapshot 'snap'"),
        (sim.add_disk("vm-1", 0), "at least 1 GiB"),
    ]:
        with pytest.raises(ProviderError, match=says) as caught:
            await call
        assert not caught.value.retryable and not isinstance(caught.value, VmNotFound)
    assert sim.controls.vm_disks("vm-1") == [] and sim.controls.vm_snapshots("vm-1") == ["snap"]


async def test_disk_and_snapshot_latencies_apply(make_sim: MakeSim) -> None:
    sim = await make_sim(time_scale=0.01, latency={"disk": 10, "snapshot": 20, "revert": 30})
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    for call, least in [
        (sim.add_disk("vm-1", 1), 0.1),
        (sim.create_snapshot("vm-1", "snap"), 0.2),
        (sim.revert_snapshot("vm-1", "snap"), 0.3),
    ]:
        started = time.monotonic()
        await call
        assert least * 0.95 <= time.monotonic() - started < least + 0.3


async def test_disk_snapshot_and_revert_failure_rates_change_nothing(make_sim: MakeSim) -> None:
    sim = await make_sim(failure_rates={"disk": 1.0, "snapshot": 1.0, "revert": 1.0})
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    with pytest.raises(ProviderError, match="simulated failure") as caught:
        await sim.add_disk("vm-1", 5)
    assert caught.value.retryable
    with pytest.raises(ProviderError, match="simulated failure"):
        await sim.create_snapshot("vm-1", "snap")
    assert sim.controls.vm_disks("vm-1") == [] and sim.controls.vm_snapshots("vm-1") == []

    ok = await make_sim(failure_rates={"revert": 1.0})
    ok.controls.inject_vm("vm-1", HOST, "pool-a")
    await ok.create_snapshot("vm-1", "snap")
    await ok.power_off("vm-1")
    with pytest.raises(ProviderError, match="simulated failure"):
        await ok.revert_snapshot("vm-1", "snap")
    assert not (await vm(ok, "vm-1")).powered_on


async def test_disk_and_snapshot_calls_take_hooks_slots_and_counts(make_sim: MakeSim) -> None:
    sim = await make_sim(concurrency=1)
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    for op in ("disk", "snapshot", "revert"):
        sim.controls.fail_next(op)
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.add_disk("vm-1", 1)
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.create_snapshot("vm-1", "snap")
    await sim.create_snapshot("vm-1", "snap")
    with pytest.raises(ProviderError, match="injected failure"):
        await sim.revert_snapshot("vm-1", "snap")

    sim.controls.stall("disk", 0.1)
    adding = asyncio.create_task(sim.add_disk("vm-1", 1))
    await asyncio.sleep(0.02)
    assert sim.in_flight == 1
    started = time.monotonic()
    await sim.vm_ready("vm-1")  # waits for the one slot
    assert time.monotonic() - started >= 0.05
    await adding
    assert sim.controls.vm_disks("vm-1") == [1]
    assert (sim.calls["add_disk"], sim.calls["create_snapshot"], sim.calls["revert_snapshot"]) == (2, 2, 1)


async def test_disk_and_snapshot_calls_need_the_vms_host_up(make_sim: MakeSim) -> None:
    sim = await make_sim()
    sim.controls.inject_vm("vm-1", HOST, "pool-a")
    sim.controls.set_host_down(HOST)
    with pytest.raises(HostUnavailable):
        await sim.add_disk("vm-1", 1)
    with pytest.raises(HostUnavailable):
        await sim.create_snapshot("vm-1", "snap")


async def test_disks_and_snapshots_survive_a_reopen(tmp_path: Path) -> None:
    settings = SimSettings(time_scale=0.001, state_file=str(tmp_path / "sim.db"))
    before = SimProvider("sim", settings)
    await before.connect()
    before.controls.inject_vm("vm-1", HOST, "pool-a")
    await before.add_disk("vm-1", 8)
    await before.create_snapshot("vm-1", "snap")
    await before.add_disk("vm-1", 16)
    await before.power_off("vm-1")
    await before.close()

    after = SimProvider("sim", settings)
    await after.connect()
    try:
        assert after.controls.vm_disks("vm-1") == [8, 16] and after.controls.vm_snapshots("vm-1") == ["snap"]
        await after.revert_snapshot("vm-1", "snap")
        assert after.controls.vm_disks("vm-1") == [8] and await after.vm_ready("vm-1")
        await after.destroy_vm("vm-1")
    finally:
        await after.close()
    reopened = SimProvider("sim", settings)
    await reopened.connect()
    try:
        assert await reopened.list_vms() == []
    finally:
        await reopened.close()


# -- settings --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "where", "says"),
    [
        ({"time_scale": -1}, ("time_scale",), "greater than 0"),
        ({"time_scale": 0}, ("time_scale",), "greater than 0"),
        ({"failure_rates": {"create": 1.5}}, ("failure_rates", "create"), "less than or equal to 1"),
        ({"jitter": 2}, ("jitter",), "less than or equal to 1"),
        ({"concurrency": 0}, ("concurrency",), "greater than or equal to 1"),
        ({"latency": {"boot": -1}}, ("latency", "boot"), "greater than or equal to 0"),
        ({"latency": {"revert": -1}}, ("latency", "revert"), "greater than or equal to 0"),
        ({"latency": {"start_per_vm": -1}}, ("latency", "start_per_vm"), "greater than or equal to 0"),
        ({"failure_rates": {"snapshot": 2}}, ("failure_rates", "snapshot"), "less than or equal to 1"),
        ({"host_overrides": {"sim-host-09": {"cores": 4}}}, ("host_overrides",), "'sim-host-09'"),
        ({"hosts": [{"name": "a"}, {"cores": 2}]}, ("hosts",), "needs a name"),
        ({"hosts": [{"name": "a"}, {"name": "a"}]}, ("hosts",), "repeated: a"),
    ],
)
def test_invalid_settings_are_explained(settings: dict[str, Any], where: tuple[str, ...], says: str) -> None:
    with pytest.raises(ValidationError) as caught:
        SimSettings(**settings)
    errors = caught.value.errors()
    assert any(e["loc"][: len(where)] == where and says in e["msg"] for e in errors), errors


def test_unknown_keys_are_kept_for_the_config_layer() -> None:
    settings = SimSettings.model_validate({"filename": "/tmp/x", "latency": {"boot": 1}})
    assert settings.model_extra == {"filename": "/tmp/x"}
    assert settings.latency.boot == 1


async def test_a_vm_that_vanishes_is_gone_from_the_feed_without_a_call(make_sim: MakeSim) -> None:
    sim = await make_sim(latency={"boot": 10_000})
    await sim.create_vms(HOST, [spec("vm-1")])
    feed = FeedReader(sim)
    await feed.read()
    before = dict(sim.calls)
    assert sim.controls.vm("vm-1") is not None and not sim.controls.vm("vm-1").guest_ready  # type: ignore[union-attr]
    sim.controls.vanish("vm-1")  # its boot timer goes with it
    assert sim.controls.vm("vm-1") is None and dict(sim.calls) == before
    await feed.until(lambda f: "vm-1" in f.removed, 2)
    with pytest.raises(VmNotFound):
        sim.controls.vanish("vm-1")


async def test_a_vanished_vm_stays_gone_across_a_reopen_and_its_host_is_reported(tmp_path: Path) -> None:
    settings = SimSettings(time_scale=0.001, state_file=str(tmp_path / "sim.db"))
    before = SimProvider("sim", settings)
    await before.connect()
    before.controls.inject_vm("vm-1", HOST, "pool-a")
    feed = FeedReader(before)
    await feed.read()
    assert feed.hosts[HOST].vm_count == 1
    before.controls.vanish("vm-1")
    await feed.until(lambda f: "vm-1" in f.removed and f.hosts[HOST].vm_count == 0, 2)
    await before.close()

    after = SimProvider("sim", settings)
    await after.connect()
    try:
        assert "vm-1" not in {v.name for v in await after.list_vms()}
    finally:
        await after.close()
