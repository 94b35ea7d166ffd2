"""Migration at checkout and rebalancing, end to end on the simulator."""

from __future__ import annotations

import asyncio
import logging

import pytest

from corral.domain.events import VmLifecycle
from corral.domain.states import VmState
from corral.pools.migrations import MigrationCounts, MigrationStats, cannot_migrate
from corral.pools.settings import ManagerSettings
from corral.pools.views import scheduling
from corral.providers.sim import SimProvider
from helpers import QUICK_RUNNER, eventually, sim_settings

BASE = dict(task_limit=20, check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER)
# two hosts; a foreign "big" VM loads one of them; migrations take 0.3 s
SIM = dict(hosts=2, templates={"big": {"cpus": 64, "memory_mb": 160_000}},
           latency={"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0, "migrate": 300.0})


def watch_migrations(provider) -> dict[str, int]:
    """Count the simulator's migrate calls in flight (the highest number seen too)."""
    seen: dict = {"now": 0, "max": 0, "calls": 0, "order": []}
    original = provider.migrate_vm

    async def migrate_vm(name: str, host: str) -> None:
        seen["order"].append(name)
        seen["now"] += 1
        seen["calls"] += 1
        seen["max"] = max(seen["max"], seen["now"])
        try:
            await original(name, host)
        finally:
            seen["now"] -= 1

    provider.migrate_vm = migrate_vm
    return seen


async def load_host(harness, manager, host: str) -> None:
    harness.provider.controls.inject_vm("foreign-big", host, None, template="big")
    await eventually(lambda: manager.inventory["sim"].repo.hosts[host].memory_used_mb >= 160_000)


async def test_checkout_moves_a_vm_off_a_busy_host_without_waiting(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 4)], settings=ManagerSettings(**BASE, migration_limit=1),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    watched = watch_migrations(harness.provider)
    await load_host(harness, manager, "sim-host-01")
    lifecycle: list[VmLifecycle] = []

    async def note(event) -> None:
        lifecycle.append(event)

    manager.bus.subscribe("test", note, accepts=lambda e: isinstance(e, VmLifecycle))
    vms = manager.checkout(["a", "a", "a", "a"])
    assert vms is not None and all(v.state is VmState.RUNNING for v in vms)  # checkout did not wait
    busy = sorted(v.name for v in vms if v.host == "sim-host-01")
    idle = sorted(v.name for v in vms if v.host == "sim-host-02")
    assert len(busy) == 2 and len(idle) == 2

    await eventually(lambda: all(harness.store.get_vm(n).host == "sim-host-02" for n in busy), timeout=10)
    await eventually(lambda: manager.migrations.stats.done == 2 and not manager.migrations.in_flight)
    for name in busy:
        record = harness.store.get_vm(name)
        assert record.state is VmState.RUNNING and record.migrated
        assert record.migration_s is not None and record.migration_s >= 0.25
        assert record.migrated_at is not None
        assert manager.inventory["sim"].vm(name).host == "sim-host-02"
        moves = [(e.old, e.new) for e in lifecycle if e.vm == name]
        assert moves == [(VmState.READY, VmState.RUNNING), (VmState.RUNNING, VmState.MIGRATING),
                         (VmState.MIGRATING, VmState.RUNNING)]
    for name in idle:  # their host is among the least used: they stay
        record = harness.store.get_vm(name)
        assert record.host == "sim-host-02" and not record.migrated
    assert watched["calls"] == 2 and watched["max"] == 1  # migration_limit 1: one at a time
    assert manager.migrations.stats.not_needed == 2
    await eventually(lambda: manager.placer.reserved("sim") == 0)


async def test_no_migration_without_a_limit(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2)], settings=ManagerSettings(**BASE), sim=sim_settings(**SIM))
    await harness.wait_full()
    watched = watch_migrations(harness.provider)
    await load_host(harness, manager, "sim-host-01")
    manager.checkout(["a", "a"])
    await asyncio.sleep(0.5)
    assert watched["calls"] == 0 and manager.migrations.stats.queued == 0


async def test_a_failed_migration_leaves_the_vm_running_where_it_was(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2)], settings=ManagerSettings(**BASE, migration_limit=2),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    await load_host(harness, manager, "sim-host-01")
    harness.provider.controls.fail_next("migrate")
    vms = manager.checkout(["a", "a"])
    (busy,) = [v.name for v in vms if v.host == "sim-host-01"]
    await eventually(lambda: manager.migrations.stats.failed == 1 and not manager.migrations.in_flight)
    record = harness.store.get_vm(busy)
    assert record.state is VmState.RUNNING and record.host == "sim-host-01" and not record.migrated
    await eventually(lambda: manager.placer.reserved("sim") == 0)


async def test_returning_a_vm_while_it_migrates_destroys_it_after(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 2)], settings=ManagerSettings(**BASE, migration_limit=2),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    await load_host(harness, manager, "sim-host-01")
    vms = manager.checkout(["a", "a"])
    (busy,) = [v.name for v in vms if v.host == "sim-host-01"]
    await eventually(lambda: harness.store.get_vm(busy).state is VmState.MIGRATING)
    assert manager.return_vm(busy)
    await eventually(lambda: harness.store.get_vm(busy).state is VmState.DESTROYED, timeout=10)
    assert busy not in {v.name for v in await harness.provider.list_vms()}


async def test_rebalancing_moves_the_lightest_vm_off_a_host_that_stays_busy(harness, pool_factory):
    settings = ManagerSettings(**BASE, rebalance=True, rebalance_threshold=60.0, rebalance_sustain_s=0.3,
                               rebalance_interval_s=0.1)
    sim = sim_settings(**{**SIM, "templates": {**SIM["templates"], "tmpl-heavy": {"cpus": 1, "memory_mb": 8192}}})
    manager = await harness.start([pool_factory("light", 2), pool_factory("heavy", 2, template="tmpl-heavy")],
                                  settings=settings, sim=sim)
    await harness.wait_full()
    on_busy = {v.name: v.pool for v in harness.store.list_vms(states=[VmState.READY]) if v.host == "sim-host-01"}
    assert on_busy
    watched = watch_migrations(harness.provider)
    await load_host(harness, manager, "sim-host-01")  # 160 GB of 256: 62.5 % and more
    # the host stays over the threshold whatever corral moves: every VM of ours leaves it,
    # the lightest first, one per cycle
    await eventually(lambda: manager.migrations.stats.done == len(on_busy), timeout=10)
    memory = {"light": 1024, "heavy": 8192}
    assert watched["order"] == sorted(on_busy, key=lambda n: (memory[on_busy[n]], n))
    assert all(harness.store.get_vm(n).host == "sim-host-02" and harness.store.get_vm(n).migrated for n in on_busy)
    assert watched["max"] == 1
    await asyncio.sleep(0.5)
    assert manager.migrations.stats.done == len(on_busy)  # nothing left to move: the foreign VM is not ours


async def test_a_crash_during_a_migration_is_recovered(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 1)], settings=ManagerSettings(**BASE), sim=sim_settings(**SIM))
    await harness.wait_full()
    (vm,) = manager.checkout(["a"])
    harness.store.transition(vm.name, (VmState.RUNNING,), VmState.MIGRATING)  # what a crash mid-move leaves
    await manager.reconcile()
    record = harness.store.get_vm(vm.name)
    assert record.state is VmState.RUNNING and record.host == vm.host


def test_the_counters_are_read_as_one_frozen_reading() -> None:
    stats = MigrationStats(queued=3, started=2, done=1, rebalanced=1)
    counts = stats.counts()
    stats.done += 1
    assert counts == MigrationCounts(queued=3, started=2, done=1, failed=0, not_needed=0, dropped=0, rebalanced=1,
                                     unsupported=0)


REASON = "the endpoint cannot move VMs between hosts"
REBALANCING = dict(rebalance=True, rebalance_threshold=60.0, rebalance_sustain_s=0.3, rebalance_interval_s=0.1)


@pytest.mark.parametrize(("reasons", "expected"), [
    ({}, {}),
    ({"sim": None}, {}),
    ({"sim": REASON}, {"sim": REASON}),
    ({"vc": None, "kvm": "no shared storage", "sim": REASON}, {"kvm": "no shared storage", "sim": REASON}),
    ({"b": "", "a": REASON}, {"a": REASON, "b": ""}),  # an empty reason still says it cannot
], ids=["none", "can", "cannot", "mixed", "empty-reason"])
def test_the_providers_that_cannot_migrate_are_listed_with_their_reasons(
        reasons: dict[str, str | None], expected: dict[str, str]) -> None:
    providers = {name: SimProvider(name) for name in reasons}
    for name, reason in reasons.items():
        providers[name].cannot_migrate = reason
    listed = cannot_migrate(providers)
    assert listed == expected and list(listed) == sorted(expected)


def skipped_lines(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.provider, r.reason) for r in caplog.records
            if r.name == "corral.migration" and hasattr(r, "reason") and hasattr(r, "provider")]


async def test_a_provider_that_cannot_migrate_leaves_checked_out_vms_where_they_are(
        harness, pool_factory, caplog: pytest.LogCaptureFixture) -> None:
    manager = await harness.start([pool_factory("a", 4)], settings=ManagerSettings(**BASE, migration_limit=2),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    harness.provider.cannot_migrate = REASON
    await load_host(harness, manager, "sim-host-01")
    with caplog.at_level(logging.INFO, logger="corral.migration"):
        vms = manager.checkout(["a", "a"]) + manager.checkout(["a", "a"])
        await asyncio.sleep(0.5)
    hosts = {v.name: v.host for v in vms}
    assert sorted(hosts.values()).count("sim-host-01") == 2  # two would move off the busy host (see the first test)
    assert harness.provider.calls["migrate_vm"] == 0
    stats = manager.migrations.stats
    assert (stats.unsupported, stats.queued, stats.started, stats.not_needed, stats.failed) == (4, 0, 0, 0, 0)
    for name, host in hosts.items():
        record = harness.store.get_vm(name)
        assert record.state is VmState.RUNNING and record.host == host and not record.migrated
    assert skipped_lines(caplog) == [("sim", REASON)]  # once for the provider, not once per checkout
    assert scheduling(manager).migrations.cannot_migrate == {"sim": REASON}
    assert manager.placer.reserved("sim") == 0


async def test_rebalancing_plans_nothing_for_a_provider_that_cannot_migrate(
        harness, pool_factory, caplog: pytest.LogCaptureFixture) -> None:
    manager = await harness.start([pool_factory("a", 2)], settings=ManagerSettings(**BASE, **REBALANCING),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    on_busy = {v.name for v in harness.store.list_vms(states=[VmState.READY]) if v.host == "sim-host-01"}
    assert on_busy
    harness.provider.cannot_migrate = REASON
    with caplog.at_level(logging.INFO, logger="corral.migration"):
        await load_host(harness, manager, "sim-host-01")  # over the threshold from now on
        await asyncio.sleep(1.0)  # the host stayed busy for 0.3 s long ago: several cycles would have moved VMs
    assert harness.provider.calls["migrate_vm"] == 0
    assert (manager.migrations.stats.rebalanced, manager.migrations.stats.queued) == (0, 0)
    assert all(harness.store.get_vm(n).host == "sim-host-01" for n in on_busy)
    assert skipped_lines(caplog) == [("sim", REASON)]
    # once the provider can migrate again, the same cycles move the VMs
    harness.provider.cannot_migrate = None
    await eventually(lambda: manager.migrations.stats.done == len(on_busy), timeout=10)
    assert harness.provider.calls["migrate_vm"] == len(on_busy)
    assert scheduling(manager).migrations.cannot_migrate == {}


async def test_vms_queued_before_the_provider_said_it_cannot_migrate_stay(harness, pool_factory) -> None:
    manager = await harness.start([pool_factory("a", 4)], settings=ManagerSettings(**BASE, migration_limit=1),
                                  sim=sim_settings(**SIM))
    await harness.wait_full()
    await load_host(harness, manager, "sim-host-01")
    vms = manager.checkout(["a", "a", "a", "a"])
    harness.provider.cannot_migrate = REASON  # learnt (say, on a reconnect) before their turn came
    await eventually(lambda: manager.migrations.stats.unsupported == 4 and not manager.migrations.in_flight)
    assert (manager.migrations.stats.queued, manager.migrations.stats.started) == (4, 0)
    assert harness.provider.calls["migrate_vm"] == 0
    assert all(harness.store.get_vm(v.name).host == v.host for v in vms)
