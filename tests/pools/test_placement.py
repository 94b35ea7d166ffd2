"""The pool manager places its VMs with the scheduler over the live inventory."""

from __future__ import annotations

import asyncio
from collections import Counter

from corral.domain.models import Vm, VmSpec
from corral.domain.states import VmState
from corral.pools.settings import ManagerSettings
from corral.scheduling import Request, Scheduler
from helpers import QUICK_RUNNER, eventually, sim_settings

SETTINGS = dict(task_limit=20, check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER)


def hosts_of(store, pool: str) -> Counter[str]:
    return Counter(v.host for v in store.list_vms(pool=pool, states=[VmState.READY, VmState.PENDING]))


async def test_a_burst_spreads_over_identical_hosts(harness, pool_factory):
    await harness.start([pool_factory("a", 16)], settings=ManagerSettings(**SETTINGS))
    await harness.wait_full()
    assert hosts_of(harness.store, "a") == {f"sim-host-0{i}": 4 for i in range(1, 5)}


async def test_reservations_hold_until_the_inventory_shows_the_vm(harness, pool_factory):
    """Placements in separate calls, before the inventory has seen any of them, spread out;
    each reservation goes once the VM shows up on its host, or when its create fails."""
    manager = await harness.start([pool_factory("a", 0)], settings=ManagerSettings(**SETTINGS))
    pool = manager.pools["a"]
    placed = [manager.placer.place("sim", [(f"burst-{i}", pool)])[0].host for i in range(8)]
    assert Counter(placed) == {f"sim-host-0{i}": 2 for i in range(1, 5)}
    assert manager.placer.reserved("sim") == 8
    # without reservations every one of these calls sees the same hosts and picks the same one
    bare = Scheduler(manager.placer.settings)
    lone = [bare.place(manager.inventory["sim"].hosts(), [Request(f"x{i}", manager.placer.demand(pool))],
                       reserve=False)[0].host for i in range(4)]
    assert len(set(lone)) == 1

    for i, host in enumerate(placed[:6]):  # six are created; two never are
        results = await harness.provider.create_vms(host, [VmSpec(f"burst-{i}", "a", pool.template)])
        assert results[0].ok
    await eventually(lambda: all(manager.inventory["sim"].vm(f"burst-{i}") for i in range(6)))
    manager.placer.settle("sim")
    assert manager.placer.reserved("sim") == 2
    manager.placer.release("sim", "burst-6")
    manager.placer.release("sim", "burst-7")
    assert manager.placer.reserved("sim") == 0
    for i in range(6):
        await harness.provider.destroy_vm(f"burst-{i}")


async def test_a_failed_create_releases_its_reservation(harness, pool_factory):
    manager = await harness.start([pool_factory("a", 0)], settings=ManagerSettings(**SETTINGS))
    harness.provider.controls.fail_next("create", 3)
    manager.set_pool_size("a", 3)
    await eventually(lambda: manager.runner.stats.reruns >= 3)
    await harness.wait_full()
    await eventually(lambda: manager.placer.reserved("sim") == 0)


async def test_clone_target_keeps_a_pool_in_its_cluster(harness, pool_factory):
    sim = sim_settings(hosts=4, hosts_per_cluster=2)
    manager = await harness.start([pool_factory("a", 8, clone_target="sim-cluster-02"), pool_factory("b", 2)],
                                  settings=ManagerSettings(**SETTINGS), sim=sim)
    await harness.wait_full()
    assert set(hosts_of(harness.store, "a")) == {"sim-host-03", "sim-host-04"}
    manager.set_clone_target("b", "no-such-cluster")
    manager.checkout(["b"])
    await eventually(lambda: "b" in manager.placer.failures)
    why = manager.placer.failures["b"]
    assert "(4 hosts rejected): cluster x4" in why and "no-such-cluster" in why
    rejected = manager.placer.rejections  # counted by the kind of reason, for the metrics
    assert set(rejected) == {"cluster"} and rejected["cluster"] >= 4 and rejected["cluster"] % 4 == 0
    manager.set_clone_target("b", None)
    manager.pool_changed("b")
    await harness.wait_full()
    assert "b" not in manager.placer.failures


async def test_anti_affinity_puts_one_vm_of_the_pool_per_host(harness, pool_factory):
    manager = await harness.start([pool_factory("spread", 5, max_per_host=1)], settings=ManagerSettings(**SETTINGS))
    await eventually(lambda: Counter(hosts_of(harness.store, "spread").values()) == {1: 4})
    await eventually(lambda: "spread" in manager.placer.failures)
    assert "anti-affinity" in manager.placer.failures["spread"]
    await asyncio.sleep(0.2)
    assert sum(hosts_of(harness.store, "spread").values()) == 4


async def test_cpu_needs_and_host_state_decide_the_hosts(harness, pool_factory):
    sim = sim_settings(
        hosts=4,
        host_overrides={"sim-host-01": {"cpu_flags": ["sse4_2", "avx", "avx2", "avx512f"]},
                        "sim-host-02": {"cpu_flags": ["sse4_2", "avx", "avx2", "avx512f"]}},
        templates={"tmpl-wide": {"cpus": 1, "memory_mb": 1024, "cpu_flags": ["avx512f"]}},
    )
    manager = await harness.start([pool_factory("plain", 0), pool_factory("wide", 0, template="tmpl-wide")],
                                  settings=ManagerSettings(**SETTINGS), sim=sim)
    harness.provider.controls.set_host_maintenance("sim-host-03")
    harness.provider.controls.set_host_health("sim-host-04", "yellow")
    harness.provider.controls.set_host_health("sim-host-02", "green", config_issues=2)
    await eventually(lambda: manager.inventory["sim"].repo.hosts["sim-host-02"].config_issues == 2)
    manager.set_pool_size("wide", 4)
    manager.set_pool_size("plain", 3)
    await harness.wait_full()
    assert set(hosts_of(harness.store, "wide")) == {"sim-host-01"}
    assert set(hosts_of(harness.store, "plain")) == {"sim-host-01"}

    harness.provider.controls.set_host_maintenance("sim-host-01")
    harness.provider.controls.set_host_health("sim-host-02")
    await eventually(lambda: manager.inventory["sim"].repo.hosts["sim-host-02"].config_issues == 0)
    manager.set_pool_size("wide", 6)
    await harness.wait_full()
    assert hosts_of(harness.store, "wide")["sim-host-02"] == 2  # the only other host with avx512f
    manager.set_pool_size("wide", 7)
    harness.provider.controls.set_host_maintenance("sim-host-02")
    await eventually(lambda: "wide" in manager.placer.failures)
    why = manager.placer.failures["wide"]
    assert "(4 hosts rejected)" in why and "flags avx512f" in why
    assert "in maintenance x3 (sim-host-01; sim-host-02; sim-host-03)" in why
    assert "health x1 (sim-host-04: status yellow)" in why
    harness.provider.controls.set_host_maintenance("sim-host-03", False)
    await eventually(lambda: "lacks avx512f" in manager.placer.failures["wide"])


async def test_a_vm_destroyed_before_the_inventory_saw_it_releases_its_reservation(harness, pool_factory):
    """A VM checked out and returned within moments may be destroyed before the inventory ever
    shows it on its host: its reservation must go with it, or its host's room stays taken until
    the reservation's timeout (under churn, every host looked full)."""
    manager = await harness.start([pool_factory("a", 0)], settings=ManagerSettings(**SETTINGS))
    pool = manager.pools["a"]
    [placed] = manager.placer.place("sim", [("quick-1", pool)])
    assert placed.host is not None and manager.placer.reserved("sim") == 1
    harness.store.add_vm(Vm(name="quick-1", pool="a", template=pool.template, state=VmState.RUNNING,
                            provider="sim", host=placed.host, created_at=1.0))
    await manager.destroy(harness.store.get_vm("quick-1"), reason="returned")  # gone at the provider: recorded
    assert harness.store.get_vm("quick-1").state is VmState.DESTROYED
    assert manager.placer.reserved("sim") == 0
