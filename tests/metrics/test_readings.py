"""The views as metric readings, and the recorder's counts and times: tables of inputs and
the readings or observations each gives."""

from __future__ import annotations

import pytest

from corral.domain.events import HostDown, MigrationDone, VmCreated, VmLifecycle, VmMoved
from corral.domain.states import VmState
from corral.inventory.bus import BusStatus, SubscriberCounts
from corral.inventory.monitor import FeedStatus
from corral.metrics.catalogue import CLONE_BUCKETS, METRICS, Kind, metric
from corral.metrics.readings import Reading, Views, manager_readings, view_readings
from corral.metrics.recorder import UNKNOWN, Histogram, LifecycleTimer, Observation, Recorder
from corral.pools.migrations import MigrationCounts
from corral.pools.service import (
    AutosizeView,
    DestroyFailures,
    HostStatus,
    MigrationStatus,
    MonitoringStatus,
    PlacementStatus,
    PoolStatus,
    ProviderFailures,
    ProviderStatus,
    RunnerStatus,
    SchedulingStatus,
    Stock,
    StockTotals,
    StoreStatus,
)
from corral.runner.breaker import OpenBreaker
from corral.runner.runner import RunnerView

STOCK = Stock(pools=(PoolStatus("a", 3, ("alias-a",), ready=2, pending=1, running=4, placement_error=None),
                     PoolStatus("b", 1, (), ready=0, pending=0, running=0, placement_error="no host can take it")),
              totals=StockTotals(ready=2, pending=1, running=4, completed=0))
QUEUE = RunnerView(queued=3, queued_by_class={"ha restart": 1, "refill": 2}, queue_limit=1000, calls_in_flight=2,
                   calls_waiting=1, task_limit=10, host_limit=4, refused=5, calls=17, vms_sent=30, created=28,
                   restarted=1, reruns=2, failed=1, permanent_failures=1, unplaced=6, cancelled=7,
                   hosts_avoided=(OpenBreaker("sim", "h1", 10.0),), breakers_opened=3, breakers_closed=2)
FAILURES = ProviderFailures({"sim": {"create_vms": {"injected": 5, "host": 1}}, "vc": {"connect": {"session": 2}}},
                            {"vc": 4})
FEED = FeedStatus(answers=7, changes=12, events=5, feed_errors=1, resnapshots=2, reconciles=2, reconcile_skips=0,
                  repairs=3, last_repairs=1, vms=40, hosts=4, hosts_down=("h2", "h9"), lag_s=0.25)
MONITORING = MonitoringStatus(
    reconciles=2, store_repairs=1, vanished=4, orphans_destroyed=5, host_drops=1,
    destroy_failures=DestroyFailures(retrying=1, held=2, vms={}),
    providers={"sim": ProviderStatus(connected=True, error=None, attempts=1, retry_in=None, feed=FEED),
               "vc": ProviderStatus(connected=False, error="refused", attempts=3, retry_in=0.5, feed=None)},
    events=BusStatus(published=9, subscribers={
        "x": SubscriberCounts(delivered=2, errors=0, overflows=1, resyncs=1, peak_queued=5),
        "y": SubscriberCounts(delivered=9, errors=0, overflows=2, resyncs=0, peak_queued=3)}),
    store=StoreStatus(available=False, outages=2, unavailable_s=1.5, last_outage_s=10.0, writes_refused=11,
                      error="locked"))
SCHEDULING = SchedulingStatus(
    policy="even", providers={"sim": PlacementStatus(placed=10, unplaced=2, reserved=1, reservations_expired=0)},
    placement_errors={}, migrations=MigrationStatus(limit=2, in_flight=1, counts=MigrationCounts(
        queued=4, started=3, done=2, failed=1, not_needed=1, dropped=0, rebalanced=1, unsupported=6),
    cannot_migrate={"kvm": "the endpoint cannot move VMs"}))
HOST = HostStatus(provider="sim", name="h1.example.com", cluster="c1", cores=8, mhz=2000, memory_mb=1024,
                  cpu_used_mhz=1.0, memory_used_mb=2.0, cpu_percent=12.5, memory_percent=50.0, up=True, down=False,
                  maintenance=True, health="green", vms=3, calls_in_flight=2)
AUTOSIZE = {"a": AutosizeView(target=3, needed=5, rate_per_hour=120.0, ready_s=42.5, bound="max_size", reason="r",
                              held=False, min_size=1, max_size=3, target_wait=0.01, history=())}


def as_table(readings: list[Reading]) -> dict[tuple[str, tuple[str, ...]], float]:
    table = {(r.key, r.labels): r.value for r in readings}
    assert len(table) == len(readings), "a series read twice"
    return table


def test_a_process_that_runs_no_pools_reads_only_the_stock() -> None:
    assert as_table(view_readings(Views(stock=STOCK))) == {
        ("ready", ("a",)): 2, ("running", ("a",)): 4, ("pending", ("a",)): 1, ("pool_size", ("a",)): 3,
        ("pool_unplaceable", ("a",)): 0, ("ready", ("b",)): 0, ("running", ("b",)): 0, ("pending", ("b",)): 0,
        ("pool_size", ("b",)): 1, ("pool_unplaceable", ("b",)): 1}


@pytest.mark.parametrize(("key", "labels", "value"), [
    ("runner_queued", ("ha restart",), 1), ("runner_queued", ("refill",), 2), ("runner_queue_limit", (), 1000),
    ("runner_calls_in_flight", (), 2), ("runner_calls_waiting", (), 1), ("runner_calls", (), 17),
    ("runner_vms_sent", (), 30), ("runner_hosts_avoided", (), 1), ("runner_works", ("created",), 28),
    ("runner_breakers_opened", (), 3), ("runner_breakers_closed", (), 2),
    ("provider_failures", ("sim", "create_vms", "injected"), 5),
    ("provider_failures", ("sim", "create_vms", "host"), 1),
    ("provider_failures", ("vc", "connect", "session"), 2), ("provider_sessions_renewed", ("vc",), 4),
    ("runner_works", ("restarted",), 1), ("runner_works", ("rerun",), 2), ("runner_works", ("failed",), 1),
    ("runner_works", ("permanent_failure",), 1), ("runner_works", ("unplaced",), 6),
    ("runner_works", ("cancelled",), 7), ("runner_works", ("refused",), 5), ("ha_restarts", (), 8),
    ("ha_restart_failures", (), 9),
    ("host_calls_in_flight", ("sim", "h1.example.com"), 2), ("host_cpu_percent", ("sim", "h1.example.com"), 12.5),
    ("host_memory_percent", ("sim", "h1.example.com"), 50.0), ("host_vms", ("sim", "h1.example.com"), 3),
    ("host_up", ("sim", "h1.example.com"), 1), ("host_down", ("sim", "h1.example.com"), 0),
    ("host_maintenance", ("sim", "h1.example.com"), 1),
    ("placement_placed", ("sim",), 10), ("placement_unplaced", ("sim",), 2), ("placement_reserved", ("sim",), 1),
    ("placement_rejections", ("memory",), 4), ("placement_rejections", ("in maintenance",), 1),
    ("migrations_in_flight", (), 1), ("migrations", ("done",), 2), ("migrations", ("failed",), 1),
    ("migrations", ("not_needed",), 1), ("migrations", ("dropped",), 0), ("migrations", ("rebalanced",), 1),
    ("migrations", ("unsupported",), 6),
    ("provider_connected", ("sim",), 1), ("provider_connected", ("vc",), 0),
    ("provider_connect_attempts", ("sim",), 1), ("provider_connect_attempts", ("vc",), 3),
    ("provider_feed_errors", ("sim",), 1), ("provider_resnapshots", ("sim",), 2),
    ("provider_inventory_repairs", ("sim",), 3), ("provider_vms", ("sim",), 40), ("provider_hosts_down", ("sim",), 2),
    ("provider_feed_lag_seconds", ("sim",), 0.25),
    ("reconciles", (), 2), ("reconcile_repairs", (), 1), ("vanished", (), 4), ("orphans_destroyed", (), 5),
    ("destroy_failures", ("retrying",), 1), ("destroy_failures", ("held",), 2), ("events_published", (), 9),
    ("event_overflows", (), 3), ("store_available", (), 0), ("store_outages", (), 2), ("store_steps_refused", (), 11),
    ("pool_target_size", ("a",), 3), ("pool_demand_per_hour", ("a",), 120.0), ("pool_ready_seconds", ("a",), 42.5),
])
def test_a_view_becomes_its_readings(key: str, labels: tuple[str, ...], value: float) -> None:
    views = Views(stock=STOCK, monitoring=MONITORING, scheduling=SCHEDULING,
                  runner=RunnerStatus(queue=QUEUE, ha_restarts=8, ha_failures=9), hosts=(HOST,),
                  rejections={"memory": 4, "in maintenance": 1}, autosizing=AUTOSIZE, provider_failures=FAILURES)
    table = as_table(view_readings(views))
    assert table[(key, labels)] == value
    assert ("provider_vms", ("vc",)) not in table  # a provider not brought in has no feed yet
    assert ("pool_target_size", ("b",)) not in table  # a pool that is not autosized has no target


def test_every_reading_is_of_a_metric_with_its_labels() -> None:
    views = Views(stock=STOCK, monitoring=MONITORING, scheduling=SCHEDULING,
                  runner=RunnerStatus(queue=QUEUE, ha_restarts=0, ha_failures=0), hosts=(HOST,), rejections={"x": 1},
                  autosizing=AUTOSIZE, provider_failures=FAILURES)
    readings = view_readings(views) + manager_readings({"m1": {"state": "Active", "score": 100, "pools": ["a"]}})
    for r in readings:
        m = metric(r.key)
        assert m.kind is not Kind.HISTOGRAM and len(r.labels) == len(m.labels), r
    keys = {r.key for r in readings}
    recorded = {"checkout_success", "checkout_empty", "checkout_invalid", "checkout_raced", "delete_success",
                "delete_failed",
                "errors_markedasfailed", "time_to_ready_state", "clone", "destroy", "migrate", "migrate_from",
                "migrate_to", "push_failures", "push_dropped",  # these two: the pushers' own (api/test_metrics)
                "store_unavailable_answers"}  # the API's (api/test_store_faults)
    assert keys | recorded == {m.key for m in METRICS}  # every metric is read or recorded somewhere


@pytest.mark.parametrize(("managers", "expected"), [
    ({}, {}),
    ({"m1": {"state": "Active", "score": 100, "pools": ["a", "b"], "acting": ["a"]},
      "m2": {"state": "Standby", "score": 0, "pools": []}},
     {("manager_state", ("m1", "Active")): 1, ("manager_pools", ("m1",)): 2, ("manager_score", ("m1",)): 100,
      ("manager_state", ("m2", "Standby")): 1, ("manager_pools", ("m2",)): 0, ("manager_score", ("m2",)): 0}),
    ({"m3": {}}, {}),  # published nothing readable
    ({"m4": {"state": 3, "score": True, "pools": "a"}}, {}),  # wrong types are left out
])
def test_the_managers_become_readings(managers: dict[str, dict[str, object]],
                                      expected: dict[tuple[str, tuple[str, ...]], float]) -> None:
    assert as_table(manager_readings(managers)) == expected


# -- the recorder ------------------------------------------------------------------------------------
def test_invalid_checkouts_are_all_counted_as_unknown() -> None:
    """The names are the client's text (a token pasted in the wrong place): never a label."""
    recorder = Recorder()
    recorder.checkout_invalid(["nosuch", "Secret-Token-1", ""])
    assert recorder.counters["checkout_invalid"] == {(UNKNOWN,): 3.0}


def test_a_histogram_counts_in_cumulative_buckets() -> None:
    h = Histogram(CLONE_BUCKETS)
    for value in (5.0, 10.0, 10.5, 700.0):
        h.observe(value)
    cumulative = dict(h.cumulative())
    assert (cumulative[10.0], cumulative[20.0], cumulative[600.0], cumulative[float("inf")]) == (2, 3, 3, 4)
    assert h.total == 4 and h.sum == 725.5


def life(at: float, vm: str, old: VmState | None, new: VmState, pool: str = "a") -> VmLifecycle:
    return VmLifecycle(at, vm=vm, pool=pool, old=old, new=new)


P, R, RUN, C, F, D = (VmState.PENDING, VmState.READY, VmState.RUNNING, VmState.COMPLETED, VmState.FAILED,
                      VmState.DESTROYED)


@pytest.mark.parametrize(("events", "observations"), [
    ([life(100, "v", None, P), VmCreated(103, provider="sim", vm="v", pool="a", host="h"), life(130, "v", P, R)],
     [Observation("clone", ("a",), 3), Observation("time_to_ready_state", ("a",), 30)]),
    # a VM whose create was requested before this process followed the bus: nothing is timed
    ([VmCreated(103, provider="sim", vm="v", pool="a", host="h"), life(130, "v", P, R)], []),
    # the inventory shows it twice (a resnapshot): the clone is timed once
    ([life(100, "v", None, P), VmCreated(101, provider="sim", vm="v", pool="a", host="h"),
      VmCreated(105, provider="sim", vm="v", pool="a", host="h")], [Observation("clone", ("a",), 1)]),
    ([life(100, "v", None, P), life(190, "v", P, F)], [Observation("errors_markedasfailed", ("a",), 1)]),
    ([life(100, "v", None, P), life(190, "v", P, F), life(200, "v", F, D)],
     [Observation("errors_markedasfailed", ("a",), 1), Observation("destroy", ("a",), 10)]),
    ([life(100, "v", RUN, C), life(104.5, "v", C, D)], [Observation("destroy", ("a",), 4.5)]),
    ([life(100, "v", None, VmState.DISCOVERED), life(102, "v", VmState.DISCOVERED, D)],
     [Observation("destroy", ("a",), 2)]),
    ([life(100, "v", C, D)], []),  # the destroy intent was before: not timed
    ([VmMoved(10, provider="sim", vm="v", pool="a", host="h2", old_host="h1"),
      MigrationDone(10, provider="sim", vm="v", pool="a", host="h2", seconds=7.5)],
     [Observation("migrate_to", ("h2",), 1), Observation("migrate_from", ("h1",), 1),
      Observation("migrate", ("a",), 7.5)]),
    ([VmMoved(10, provider="sim", vm="v", pool="a", host="h2", old_host="h1")], []),  # a move corral did not ask for
    ([MigrationDone(10, provider="sim", vm="v", pool=None, host="h2", seconds=7.5)],
     [Observation("migrate_to", ("h2",), 1)]),  # not a pool's VM: not timed by pool
    ([HostDown(10, provider="sim", host="h")], []),
])
def test_events_become_observations(events: list[object], observations: list[Observation]) -> None:
    timer = LifecycleTimer()
    seen = [o for e in events for o in timer.see(e)]  # type: ignore[arg-type]
    assert seen == observations


def test_the_timer_follows_a_bounded_number_of_vms() -> None:
    timer = LifecycleTimer(limit=3)
    for i in range(5):
        timer.see(life(i, f"v{i}", None, P))
    assert list(timer.created) == ["v2", "v3", "v4"] and timer.cloning == {"v2", "v3", "v4"}
    assert timer.see(life(50, "v0", P, R)) == []  # forgotten
    assert timer.see(life(50, "v4", P, R)) == [Observation("time_to_ready_state", ("a",), 46)]


def test_the_recorder_counts_and_times_what_the_events_say() -> None:
    recorder = Recorder()
    for e in (life(0, "v", None, P), VmCreated(2, provider="sim", vm="v", pool="a", host="h"), life(40, "v", P, R),
              life(0, "w", None, P, pool="b"), life(1, "w", P, F, pool="b")):
        recorder.see(e)
    assert recorder.counters == {"errors_markedasfailed": {("b",): 1.0}}
    ready = recorder.histograms["time_to_ready_state"][("a",)]
    assert (ready.total, ready.sum) == (1, 40.0)
    assert recorder.histograms["clone"][("a",)].sum == 2.0
