"""The typed status views as /status shows them: a table of built views and the exact JSON
(key names, order, numbers) each becomes."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from corral.api.common import respond
from corral.api.status import LastBoots, monitoring_json, provider_failures_json, runner_json, scheduling_json
from corral.inventory.bus import BusStatus, SubscriberCounts
from corral.inventory.monitor import FeedStatus
from corral.pools.migrations import MigrationCounts
from corral.pools.service import (
    DestroyFailures,
    DestroyFailureStatus,
    MigrationStatus,
    MonitoringStatus,
    PlacementStatus,
    ProviderFailures,
    ProviderStatus,
    RunnerStatus,
    SchedulingStatus,
    StoreStatus,
)
from corral.runner.breaker import OpenBreaker
from corral.runner.runner import RunnerView

FEED = FeedStatus(answers=7, changes=12, events=5, feed_errors=1, resnapshots=0, reconciles=2, reconcile_skips=0,
                  repairs=3, last_repairs=1, vms=40, hosts=4, hosts_down=("h2", "h9"), lag_s=0.25)
MONITORING = MonitoringStatus(
    reconciles=2, store_repairs=1, vanished=4, orphans_destroyed=0, host_drops=1,
    destroy_failures=DestroyFailures(retrying=1, held=1, vms={
        "vm-x": DestroyFailureStatus(error="denied", permanent=True, attempts=1, retry_in=None),
        "vm-0": DestroyFailureStatus(error="down", permanent=False, attempts=3, retry_in=2.5)}),
    providers={"sim": ProviderStatus(connected=True, error=None, attempts=1, retry_in=None, feed=FEED),
               "vc": ProviderStatus(connected=False, error="cannot connect", attempts=3, retry_in=0.25, feed=None)},
    events=BusStatus(published=9, subscribers={
        "api": SubscriberCounts(delivered=2, errors=0, overflows=1, resyncs=1, peak_queued=5),
        "pool-manager": SubscriberCounts(delivered=9, errors=0, overflows=0, resyncs=0, peak_queued=3)}),
    store=StoreStatus(available=False, outages=1, unavailable_s=2.5, last_outage_s=None, writes_refused=4,
                      error="Redis at r:6379 cannot be reached"))
MONITORING_JSON = (
    '{"reconcile":{"runs":2,"store_repairs":1,"inventory_repairs":3},"vanished":4,"orphans_destroyed":0,'
    '"host_drops":1,"destroy_failures":{"retrying":1,"held":1,"vms":{"vm-x":{"error":"denied","permanent":true,'
    '"attempts":1,"retry_in":null},"vm-0":{"error":"down","permanent":false,"attempts":3,"retry_in":2.5}}},'
    '"providers":{"sim":{"connected":true,"error":null,"attempts":1,"retry_in":null,"answers":7,"changes":12,'
    '"events":5,"feed_errors":1,"resnapshots":0,"reconciles":2,"reconcile_skips":0,"repairs":3,"last_repairs":1,'
    '"vms":40,"hosts":4,"hosts_down":["h2","h9"],"lag_s":0.25},"vc":{"connected":false,"error":"cannot connect",'
    '"attempts":3,'
    '"retry_in":0.25}},"events":{"published":9,"subscribers":{"api":{"delivered":2,"errors":0,"overflows":1,'
    '"resyncs":1,"peak_queued":5},"pool-manager":{"delivered":9,"errors":0,"overflows":0,"resyncs":0,'
    '"peak_queued":3}}},"store":{"available":false,"outages":1,"unavailable_s":2.5,"last_outage_s":null,'
    '"writes_refused":4,"error":"Redis at r:6379 cannot be reached"}}')

SCHEDULING = SchedulingStatus(
    policy="even",
    providers={"sim": PlacementStatus(placed=10, unplaced=2, reserved=1, reservations_expired=0),
               "vc": PlacementStatus(placed=0, unplaced=0, reserved=0, reservations_expired=3)},
    placement_errors={"a": "no host can take it"},
    migrations=MigrationStatus(limit=2, in_flight=1, counts=MigrationCounts(
        queued=4, started=3, done=2, failed=1, not_needed=1, dropped=0, rebalanced=1, unsupported=5),
        cannot_migrate={"kvm": "the test driver cannot migrate VMs"}))
# "queued" is the count of migrations queued so far (the status has never shown the queue's length)
SCHEDULING_JSON = (
    '{"policy":"even","providers":{"sim":{"placed":10,"unplaced":2,"reserved":1,"reservations_expired":0},'
    '"vc":{"placed":0,"unplaced":0,"reserved":0,"reservations_expired":3}},'
    '"placement_errors":{"a":"no host can take it"},"migrations":{"limit":2,"in_flight":1,"queued":4,'
    '"started":3,"done":2,"failed":1,"not_needed":1,"dropped":0,"rebalanced":1,"unsupported":5,'
    '"cannot_migrate":{"kvm":"the test driver cannot migrate VMs"}}}')

QUEUE = RunnerView(queued=3, queued_by_class={"ha restart": 1, "rerun": 0, "ondemand": 0, "refill": 2},
                   queue_limit=1000, calls_in_flight=2, calls_waiting=1, task_limit=10, host_limit=4, refused=0,
                   calls=17, vms_sent=30, created=28, restarted=1, reruns=2, failed=1, permanent_failures=1,
                   unplaced=0, cancelled=1,
                   hosts_avoided=(OpenBreaker("sim", "h1", 10.0), OpenBreaker("sim", "h3", 2.5),
                                  OpenBreaker("vc", "esx-1", 0.1)), breakers_opened=4, breakers_closed=1)
RUNNER_JSON = (
    '{"queued":3,"queued_by_class":{"ha restart":1,"rerun":0,"ondemand":0,"refill":2},"queue_limit":1000,'
    '"calls_in_flight":2,"calls_waiting":1,"task_limit":10,"host_limit":4,"refused":0,"calls":17,"vms_sent":30,'
    '"created":28,"restarted":1,"reruns":2,"failed":1,"permanent_failures":1,"unplaced":0,"cancelled":1,'
    '"hosts_avoided":{"sim":{"h1":10.0,"h3":2.5},"vc":{"esx-1":0.1}},"breakers_opened":4,"breakers_closed":1,'
    '"ha_restarts":1,"ha_failures":0}')
QUIET_RUNNER_JSON = RUNNER_JSON.replace('{"sim":{"h1":10.0,"h3":2.5},"vc":{"esx-1":0.1}},',
                                        '{},').replace('"ha_restarts":1', '"ha_restarts":0')
FAILURES = ProviderFailures({"sim": {"create_vms": {"host": 2, "injected": 5}, "wait_for_updates": {"feed": 1}},
                             "vc": {"connect": {"unreachable": 3}}}, {"vc": 2})
FAILURES_JSON = ('{"provider_failures":{"sim":{"create_vms":{"host":2,"injected":5},"wait_for_updates":{"feed":1}},'
                 '"vc":{"connect":{"unreachable":3}}},"sessions_renewed":{"vc":2}}')


@pytest.mark.parametrize(("body", "expected"), [
    (monitoring_json(MONITORING), MONITORING_JSON),
    (scheduling_json(SCHEDULING), SCHEDULING_JSON),
    (runner_json(RunnerStatus(queue=QUEUE, ha_restarts=1, ha_failures=0)), RUNNER_JSON),
    (runner_json(RunnerStatus(queue=dataclasses.replace(QUEUE, hosts_avoided=()), ha_restarts=0, ha_failures=0)),
     QUIET_RUNNER_JSON),
    (provider_failures_json(FAILURES), FAILURES_JSON),
    (provider_failures_json(ProviderFailures()), '{"provider_failures":{},"sessions_renewed":{}}'),
], ids=["monitoring", "scheduling", "runner", "runner-no-breakers", "provider-failures", "no-provider-failures"])
def test_a_view_becomes_its_json(body: dict[str, Any], expected: str) -> None:
    assert respond(body).body == expected.encode()


def test_a_provider_not_yet_brought_in_counts_no_repairs() -> None:
    assert MONITORING.providers["vc"].repairs == 0 and MONITORING.providers["sim"].repairs == 3


# -- lastBoot: a week read once, then only what is new -----------------------------------------------
WEEK = 7 * 86400.0


class Boots:
    """Boot times in a store: (at, pool, seconds); remembers each window it was asked for."""

    def __init__(self, rows: list[tuple[float, str, float]]) -> None:
        self.rows = rows
        self.asked: list[tuple[float, float]] = []

    def read(self, since: float, until: float) -> list[tuple[float, str, float]]:
        self.asked.append((since, until))
        return [r for r in self.rows if since <= r[0] < until]


@pytest.mark.parametrize(("reads", "added", "expected", "windows"), [
    # one read: the whole week, each pool's latest
    ([1_000_000.0], [], {"a": 999_000.0, "b": 990_000.0}, [(1_000_000.0 - WEEK, 1_000_001.0)]),
    # a second read asks only for what is new, with 300 s of overlap, and sees a boot stored late
    ([1_000_000.0, 1_000_100.0], [(999_950.0, "b", 5.0)], {"a": 999_000.0, "b": 999_950.0},
     [(1_000_000.0 - WEEK, 1_000_001.0), (999_700.0, 1_000_101.0)]),
    # a week later the old boots are gone, and nothing older than a week is read
    ([1_000_000.0, 1_000_000.0 + WEEK - 5_000], [], {"a": 999_000.0},
     [(1_000_000.0 - WEEK, 1_000_001.0), (999_700.0, 1_000_001.0 + WEEK - 5_000)]),
])
def test_last_boots_read_a_week_once_then_what_is_new(reads: list[float], added: list[tuple[float, str, float]],
                                                       expected: dict[str, float],
                                                       windows: list[tuple[float, float]]) -> None:
    boots = Boots([(999_000.0, "a", 3.0), (990_000.0, "b", 4.0), (1_000_000.0 - WEEK - 1, "c", 2.0)])
    last = LastBoots()
    got: dict[str, float] = {}
    for i, now in enumerate(reads):
        if i == 1:
            boots.rows += added
        got = dict(last.update(boots.read, now))
    assert got == expected
    assert boots.asked == windows
