"""Pending reservations: a burst placed before the inventory catches up still spreads."""

from __future__ import annotations

from collections import Counter

import pytest

from corral.scheduling.model import Demand, Placement, Request
from corral.scheduling.reservations import Reservation, Reservations
from corral.scheduling.scheduler import Scheduler, SchedulerSettings

from ._factories import Clock, host, requests

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
    assert dict(placed[3].rejected or {}) == {"x": "utilization: memory would reach 100.0% (limit 90%)"}
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
