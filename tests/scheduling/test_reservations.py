"""Pending reservations: a burst placed before the inventory catches up still spreads."""

from __future__ import annotations

from collections import Counter

import pytest

from corral.scheduling.model import Demand, Placement, Request
from corral.scheduling.reservations import Reservation, Reservations, Step, settle_step
from corral.scheduling.scheduler import Scheduler, SchedulerSettings

from ._factories import Clock, host, requests, said_all

HOSTS = [host("a", cpu_used_mhz=1_000, memory_used_mb=1_000),
         host("b", cpu_used_mhz=1_000, memory_used_mb=1_000),
         host("c", cpu_used_mhz=0, memory_used_mb=0),  # the emptiest
         host("d", cpu_used_mhz=1_000, memory_used_mb=1_000)]
D = Demand(cpus=2, memory_mb=500)


# -- bursts against a host list that has not caught up ----------------------------------


def test_a_burst_in_separate_calls_spreads_over_the_hosts() -> None:
    s = Scheduler()
    placed = [s.place(HOSTS, [Request(f"vm{i}", D)])[0].host for i in range(14)]
    # c catches up with the others (each VM adds 5% CPU and 5% memory), then they take turns
    assert placed == ["c", "c"] + ["a", "b", "c", "d"] * 3
    # exactly what one bulk call gives: each reservation counts like a placement in the call
    assert placed == [p.host for p in Scheduler().place(HOSTS, requests(D, 14), reserve=False)]
    assert len(s.reservations) == 14
    assert sorted(r.vm for r in s.reservations.on("c")) == sorted(f"vm{i}" for i, h in enumerate(placed) if h == "c")


def test_without_reservations_a_burst_piles_onto_the_emptiest_host() -> None:
    s = Scheduler()
    placed = [s.place(HOSTS, [Request(f"vm{i}", D)], reserve=False)[0].host for i in range(12)]
    assert placed == ["c"] * 12
    assert len(s.reservations) == 0


def test_reserved_placements_stop_where_the_filters_stop_them() -> None:
    s = Scheduler()
    small = [host("x", memory_mb=4_096)]
    placed = [s.place(small, [Request(f"vm{i}", Demand(1, 1024))])[0] for i in range(4)]
    assert [p.host for p in placed] == ["x", "x", "x", None]
    assert said_all(placed[3].rejected) == {"x": "utilization: memory would reach 100.0% (limit 90%)"}
    s.reservations.release("vm0")  # the create failed: its room is free again
    assert s.place(small, [Request("vm4", Demand(1, 1024))])[0].host == "x"


def test_a_burst_with_anti_affinity_counts_reserved_vms_of_its_pool() -> None:
    s = Scheduler()
    d = Demand(1, 256, pool="web", max_per_host=2)
    placed = [s.place(HOSTS, [Request(f"web{i}", d)])[0].host for i in range(9)]
    assert Counter(placed) == {"a": 2, "b": 2, "c": 2, "d": 2, None: 1}


# -- loads include reservations -------------------------------------------------------


def test_loads_include_reservations() -> None:
    s = Scheduler(SchedulerSettings(vcpu_load=0.5))
    s.reservations.reserve("v1", "a", Demand(cpus=2, memory_mb=1_000, pool="web", max_per_host=3))
    s.reservations.reserve("v2", "a", Demand(cpus=1, memory_mb=500, pool="db"))
    s.reservations.reserve("v3", "gone", Demand(cpus=8, memory_mb=8_000))  # a host not in the list
    hosts = [host("a", cpu_used_mhz=1_000, memory_used_mb=2_000, memory_allocated_mb=3_000, vm_count=4), host("b")]
    loads = s.loads(hosts, {"web": {"a": 1}})
    a = loads["a"]
    assert a.cpu_used == 1_000 + 3 * 500.0
    assert a.mem_used == 3_500.0
    assert a.mem_alloc == 4_500.0
    assert a.vm_count == 6
    assert a.pools == {"web": 2}  # db has no max_per_host: not counted
    b = loads["b"]
    assert (b.cpu_used, b.mem_used, b.vm_count, b.pools) == (0.0, 0.0, 0, {})
    plain = s.loads(hosts, {"web": {"a": 1}}, reserved=False)["a"]
    assert (plain.cpu_used, plain.mem_used, plain.mem_alloc, plain.vm_count, plain.pools) == (
        1_000.0, 2_000.0, 3_000.0, 4, {"web": 1})


# -- Reservations ---------------------------------------------------------------------


def test_reserve_get_on_contains_iter() -> None:
    clock = Clock(5.0)
    r = Reservations(clock=clock)
    assert len(r) == 0 and "v" not in r and r.get("v") is None and r.on("a") == [] and list(r) == []
    r.reserve("v", "a", D)
    clock.now = 6.0
    r.reserve("w", "a", Demand())
    assert len(r) == 2 and "v" in r
    assert r.get("v") == Reservation("v", "a", D, 5.0)
    assert [x.vm for x in r.on("a")] == ["v", "w"]
    assert sorted(x.vm for x in r) == ["v", "w"]


def test_reserving_the_same_vm_again_replaces_the_earlier_reservation() -> None:
    clock = Clock(10.0)
    r = Reservations(clock=clock)
    r.reserve("v", "a", D)
    clock.now = 20.0
    r.reserve("v", "b", Demand(4, 4096))
    assert len(r) == 1
    assert r.on("a") == []
    assert r.get("v") == Reservation("v", "b", Demand(4, 4096), 20.0)
    s = Scheduler(reservations=r)  # not empty, so kept (see test_scheduler_keeps_the_reservations_it_is_given)
    loads = s.loads([host("a"), host("b")])
    assert (loads["a"].vm_count, loads["b"].vm_count) == (0, 1)


def test_reserve_many_reserves_what_was_placed_and_replaces_earlier_ones() -> None:
    clock = Clock(1.0)
    r = Reservations(clock=clock)
    r.reserve("v1", "x", D)
    clock.now = 2.0
    r.reserve_many([Placement(Request("v1", D), "a"), Placement(Request("v2", D), None, {}),
                    Placement(Request("v3", Demand()), "b"), Placement(Request("v3", D), "c")])
    assert sorted(x.vm for x in r) == ["v1", "v3"]
    assert r.get("v1") == Reservation("v1", "a", D, 2.0)
    assert r.get("v3") == Reservation("v3", "c", D, 2.0)
    assert (r.on("x"), r.on("b")) == ([], [])
    assert "v2" not in r


def test_release_on_create_failure() -> None:
    r = Reservations()
    r.reserve("v", "a", D)
    r.reserve("w", "a", D)
    assert r.release("v") is True
    assert r.release("v") is False
    assert r.release("never") is False
    assert [x.vm for x in r.on("a")] == ["w"]
    assert r.release("w") is True
    assert len(r) == 0 and r.on("a") == []


def test_settle_releases_a_vm_the_inventory_shows_on_its_host() -> None:
    r = Reservations(timeout=60.0, clock=Clock())
    r.reserve("here", "a", D)
    r.reserve("elsewhere", "a", D)
    r.reserve("absent", "b", D)
    where = {"here": "a", "elsewhere": "b"}
    assert r.settle(where.get) == 1
    assert sorted(x.vm for x in r) == ["absent", "elsewhere"]
    assert r.expired == 0
    assert r.settle(where.get) == 0  # nothing new


def test_settle_drops_expired_reservations_and_counts_them() -> None:
    clock = Clock(1_000.0)
    r = Reservations(timeout=60.0, clock=clock)
    r.reserve("old-absent", "a", D)
    r.reserve("old-elsewhere", "a", D)
    r.reserve("old-arrived", "a", D)
    clock.now = 1_030.0
    r.reserve("young", "a", D)
    where = {"old-elsewhere": "b"}
    clock.now = 1_060.0  # exactly the timeout: not expired yet
    assert r.settle(where.get) == 0
    assert len(r) == 4 and r.expired == 0
    clock.now = 1_060.5
    where["old-arrived"] = "a"  # arrived late: released, but it did show up
    assert r.settle(where.get) == 3
    assert [x.vm for x in r] == ["young"]
    assert r.expired == 2
    clock.now = 1_091.0
    assert r.settle(lambda vm: None) == 1
    assert len(r) == 0 and r.expired == 3


def test_settled_reservations_no_longer_count_in_the_loads() -> None:
    s = Scheduler()
    s.place(HOSTS, requests(D, 4))
    assert sum(ld.vm_count for ld in s.loads(HOSTS).values()) == 4
    on = {r.vm: r.host for r in s.reservations}
    assert s.reservations.settle(on.get) == 4
    assert sum(ld.vm_count for ld in s.loads(HOSTS).values()) == 0


def test_scheduler_reservation_timeout_comes_from_its_settings() -> None:
    assert Scheduler(SchedulerSettings(reservation_timeout=5.0)).reservations.timeout == 5.0
    assert Scheduler().reservations.timeout == 600.0


def test_scheduler_keeps_the_reservations_it_is_given() -> None:
    """An injected Reservations (own clock, own timeout, shared with the caller) must be the one used.

    ``Scheduler.__init__`` does ``reservations or Reservations(...)``; Reservations has ``__len__``,
    so an empty one is falsy and is silently replaced by a fresh default.
    """
    clock = Clock()
    mine = Reservations(timeout=30.0, clock=clock)
    s = Scheduler(reservations=mine)
    assert s.reservations is mine
    s.place(HOSTS, requests(D, 2))
    assert len(mine) == 2


@pytest.mark.parametrize("n", [1, 3])
def test_scheduler_with_a_non_empty_injected_reservations_uses_it(n: int) -> None:
    mine = Reservations(clock=Clock())
    for i in range(n):
        mine.reserve(f"pre{i}", "c", D)
    s = Scheduler(reservations=mine)
    assert s.reservations is mine
    assert s.loads(HOSTS)["c"].vm_count == n


# -- host figures that lag (vSphere's quickStats) --------------------------------------

KEEP, CPU_ONLY, RELEASE, EXPIRE = Step.KEEP, Step.CPU_ONLY, Step.RELEASE, Step.EXPIRE


@pytest.mark.parametrize(("on_host", "seen", "stats_at", "expired", "expected"), [
    # not seen on its host yet: held whole until it shows up, or the timeout
    (False, None, None, False, KEEP),
    (False, None, 50.0, False, KEEP),
    (False, None, None, True, EXPIRE),
    # seen on its host for the first time
    (True, None, None, False, RELEASE),  # live figures (the simulator): they include it now
    (True, None, 50.0, False, CPU_ONLY),  # figures that lag: hold its CPU until they refresh
    (True, None, 50.0, True, RELEASE),  # arrived after the timeout: released, not expired
    (True, None, None, True, RELEASE),
    # holding its CPU since the host's figures were from time 50
    (True, 50.0, 50.0, False, KEEP),  # not refreshed yet
    (True, 50.0, 70.0, False, RELEASE),  # refreshed: the host's CPU use includes the VM
    (True, 50.0, None, False, RELEASE),  # the host's figures are live now
    (True, 50.0, 50.0, True, RELEASE),  # never refreshed: the timeout is the backstop
    (False, 50.0, 50.0, False, RELEASE),  # the VM left its host (or is gone): nothing to hold
    (False, 50.0, None, True, RELEASE),
])
def test_settle_step(on_host: bool, seen: float | None, stats_at: float | None, expired: bool,
                     expected: Step) -> None:
    assert settle_step(on_host=on_host, seen=seen, stats_at=stats_at, expired=expired) is expected


def test_a_vm_on_a_host_whose_figures_lag_keeps_its_cpu_until_they_refresh() -> None:
    clock = Clock(1_000.0)
    r = Reservations(timeout=600.0, clock=clock)
    s = Scheduler(SchedulerSettings(vcpu_load=0.5), reservations=r)
    d = Demand(cpus=2, memory_mb=500, pool="web", max_per_host=5)
    r.reserve("v", "a", d)
    stats = {"a": 900.0}
    where = {"v": "a"}
    assert r.settle(where.get, stats.get) == 0  # on its host, but the figures are from before
    assert r.get("v") == Reservation("v", "a", d, 1_000.0, 900.0)
    # the host view counts the VM (count, memory, pool) but its CPU only after a refresh
    a = host("a", cpu_used_mhz=1_000, memory_used_mb=2_500, vm_count=1)
    load = s.loads([a], {"web": {"a": 1}})["a"]
    assert (load.cpu_used, load.mem_used, load.mem_alloc, load.vm_count, load.pools) == (
        1_000.0 + 2 * 500.0, 2_500.0, 2_500.0, 1, {"web": 1})
    clock.now = 1_010.0
    assert r.settle(where.get, stats.get) == 0  # nothing refreshed: still held
    stats["a"] = 1_015.0
    assert r.settle(where.get, stats.get) == 1
    assert len(r) == 0 and r.expired == 0
    assert s.loads([a])["a"].cpu_used == 1_000.0


def test_the_timeout_ends_a_cpu_hold_that_never_sees_a_refresh() -> None:
    clock = Clock(1_000.0)
    r = Reservations(timeout=60.0, clock=clock)
    r.reserve("v", "a", D)
    r.reserve("w", "a", D)
    assert r.settle({"v": "a", "w": "a"}.get, {"a": 990.0}.get) == 0
    clock.now = 1_061.0
    assert r.settle({"v": "a"}.get, {"a": 990.0}.get) == 2  # v: timeout; w: left its host
    assert len(r) == 0 and r.expired == 0  # both did show up


def test_a_burst_spreads_by_cpu_while_the_host_figures_lag() -> None:
    """Each VM shows up on its host at once (counted in the host view), but the host's CPU use
    stays what it was until the stats refresh."""
    base = [host("a", cpu_used_mhz=3_000), host("b", cpu_used_mhz=3_000)]
    d = Demand(cpus=4, memory_mb=1)

    def burst(stats_at: float | None) -> list[str | None]:
        s = Scheduler(SchedulerSettings(vcpu_load=0.5))
        where: dict[str, str] = {}
        placed: list[str | None] = []
        for i in range(4):
            count = Counter(where.values())
            hosts = [host(h.name, cpu_used_mhz=h.cpu_used_mhz, vm_count=count[h.name], stats_at=stats_at)
                     for h in base]
            s.reservations.settle(where.get, lambda name: stats_at)
            [p] = s.place(hosts, [Request(f"vm{i}", d)])
            placed.append(p.host)
            if p.host is not None:
                where[p.request.name] = p.host
        return placed

    assert burst(stats_at=50.0) == ["a", "b", "a", "b"]  # each host's CPU holds what it took
    # live figures would have counted the VMs; here they do not, so the burst piles up
    assert burst(stats_at=None) == ["a", "a", "a", "a"]
