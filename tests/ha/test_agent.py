"""The agent's rules, one case each: next state, what it runs, bids for and releases, its score."""

from __future__ import annotations

import random
from typing import Any

import pytest

from corral.ha.agent import (
    ERROR_RATE_HIGH,
    SCORE_UNHEALTHY,
    Acquiring,
    Active,
    Degraded,
    Draining,
    Plan,
    Snapshot,
    Standby,
    Starting,
    State,
    Stopped,
    score,
)

NOW = 100.0
A, B, C = "a", "b", "c"


def snap(**kw: Any) -> Snapshot:
    """A healthy manager at NOW, two providers up; pools given as strings of letters."""
    for name in ("held", "wanted"):
        kw[name] = frozenset(kw.get(name, ""))
    if kw["held"] and "deadline" not in kw:
        kw["deadline"] = NOW + 1
    base: dict[str, Any] = {"now": NOW, "providers_up": 2, "providers_total": 2}
    return Snapshot(**(base | kw))


TRANSITIONS = [
    # rule: a fresh manager settles from its first snapshot
    ("start, pools to take", Starting(), snap(wanted="a"), Acquiring()),
    ("start, nothing to run", Starting(), snap(), Standby()),
    ("start, told to stop", Starting(), snap(stop_requested=True), Draining()),
    # rule: Active once a wanted pool is held, the store answers and the deadline is ahead
    ("lease won", Acquiring(), snap(held="a", wanted="a"), Active()),
    ("still waiting for a lease", Acquiring(), snap(wanted="a"), Acquiring()),
    ("one of two won", Acquiring(), snap(held="a", wanted="ab"), Active()),
    ("standby given pools", Standby(), snap(wanted="b"), Acquiring()),
    ("active keeps running", Active(), snap(held="a", wanted="a"), Active()),
    ("no providers configured is not all down", Active(), snap(held="a", wanted="a", providers_total=0,
                                                               providers_up=0), Active()),
    # rule: nothing wanted any more (handed over) -> Standby
    ("all handed over", Active(), snap(held="a", wanted=""), Standby()),
    # rule: store lost or deadline passed -> stop acting at once
    ("store lost", Active(), snap(held="a", wanted="a", store_ok=False), Degraded()),
    ("store lost holding nothing", Acquiring(), snap(wanted="a", store_ok=False), Degraded()),
    ("deadline passed", Active(), snap(held="a", wanted="a", deadline=NOW), Degraded()),
    ("held without a deadline", Active(), snap(held="a", wanted="a", deadline=None), Degraded()),
    # rule: every provider down or a high error rate -> Degraded
    ("all providers down", Active(), snap(held="a", wanted="a", providers_up=0), Degraded()),
    ("one provider of two up", Active(), snap(held="a", wanted="a", providers_up=1), Active()),
    ("error rate at the limit", Active(), snap(held="a", wanted="a", error_rate=ERROR_RATE_HIGH), Degraded()),
    ("error rate just below it", Active(), snap(held="a", wanted="a", error_rate=0.49), Active()),
    # rule: Degraded settles only once the error rate is well below the limit
    ("degraded, errors easing", Degraded(), snap(held="a", wanted="a", error_rate=0.3), Degraded()),
    ("degraded, errors gone", Degraded(), snap(held="a", wanted="a", error_rate=0.1), Active()),
    ("degraded, store back, lease lost", Degraded(), snap(wanted="a"), Acquiring()),
    ("degraded, store back, nothing wanted", Degraded(), snap(), Standby()),
    # rule: stop asked -> Draining -> Stopped once nothing is held (or what is held expired)
    ("stop while active", Active(), snap(held="a", wanted="a", stop_requested=True), Draining()),
    ("stop while degraded", Degraded(), snap(store_ok=False, stop_requested=True), Draining()),
    ("draining, leases not yet released", Draining(), snap(held="a", stop_requested=True), Draining()),
    ("draining, store lost, deadline ahead", Draining(), snap(held="a", store_ok=False, stop_requested=True),
     Draining()),
    ("draining done", Draining(), snap(stop_requested=True), Stopped()),
    ("draining, deadline passed", Draining(), snap(held="a", deadline=NOW, stop_requested=True), Stopped()),
    ("stopped stays stopped", Stopped(), snap(wanted="a", held="a"), Stopped()),
]


@pytest.mark.parametrize(("case", "state", "data", "expected"), TRANSITIONS, ids=[t[0] for t in TRANSITIONS])
def test_transition(case: str, state: State, data: Snapshot, expected: State) -> None:
    assert state.consume(data) == expected


PLANS = [
    # rule: Active runs the held pools it wants, bids for the wanted it lacks, hands over the rest
    ("active", Active(), snap(held="ab", wanted="bc"), Plan(acting=frozenset("b"), bid=frozenset("c"),
                                                            release=frozenset("a"))),
    ("acquiring", Acquiring(), snap(wanted="ab"), Plan(frozenset(), frozenset("ab"), frozenset())),
    ("standby hands over what it holds", Standby(), snap(held="a"), Plan(frozenset(), frozenset(), frozenset("a"))),
    # rule: Degraded by ill health keeps running while its lease holds
    ("degraded, lease holds", Degraded(), snap(held="a", wanted="a", providers_up=0),
     Plan(frozenset("a"), frozenset(), frozenset())),
    # rule: no acting without the store or past the deadline, whatever the state
    ("degraded, store lost", Degraded(), snap(held="a", wanted="ab", store_ok=False),
     Plan(frozenset(), frozenset(), frozenset())),
    ("degraded, deadline passed", Degraded(), snap(held="a", wanted="a", deadline=NOW),
     Plan(frozenset(), frozenset(), frozenset())),
    # rule: draining and stopped act on nothing, bid for nothing and release everything
    ("draining", Draining(), snap(held="ab", wanted="ab"), Plan(frozenset(), frozenset(), frozenset("ab"))),
    ("stopped", Stopped(), snap(held="a", wanted="a"), Plan(frozenset(), frozenset(), frozenset("a"))),
    ("starting", Starting(), snap(wanted="a"), Plan(frozenset(), frozenset(), frozenset())),
]


@pytest.mark.parametrize(("case", "state", "data", "expected"), PLANS, ids=[p[0] for p in PLANS])
def test_plan(case: str, state: State, data: Snapshot, expected: Plan) -> None:
    assert state.plan(data) == expected


SCORES = [
    # rule: a stopping manager, or one without its store, takes nothing
    ("stopping", snap(stop_requested=True), 0),
    ("store lost", snap(store_ok=False), 0),
    # rule: ill health scores SCORE_UNHEALTHY
    ("all providers down", snap(providers_up=0), SCORE_UNHEALTHY),
    ("error rate at the limit", snap(error_rate=ERROR_RATE_HIGH), SCORE_UNHEALTHY),
    # rule: healthy: 100 - 40 x share down - 30 x error rate - 10 x load
    ("all well", snap(), 100),
    ("no providers configured", snap(providers_up=0, providers_total=0), 100),
    ("half the providers down", snap(providers_up=1), 80),
    ("one error in five", snap(error_rate=0.2), 94),
    ("fully loaded", snap(load=1.0), 90),
    ("load beyond 1 counts as 1", snap(load=3.0), 90),
    ("everything at once", snap(providers_up=1, providers_total=4, error_rate=0.4, load=0.5), 53),
]


@pytest.mark.parametrize(("case", "data", "expected"), SCORES, ids=[s[0] for s in SCORES])
def test_score(case: str, data: Snapshot, expected: int) -> None:
    assert score(data) == expected


STATES: list[State] = [Starting(), Standby(), Acquiring(), Active(), Degraded(), Draining(), Stopped()]


def random_snapshot(rng: random.Random) -> Snapshot:
    pools = "abcd"
    total = rng.randint(0, 3)
    return Snapshot(
        now=NOW, stop_requested=rng.random() < 0.2, store_ok=rng.random() < 0.8,
        providers_up=rng.randint(0, total), providers_total=total, error_rate=rng.random(), load=rng.random(),
        held=frozenset(p for p in pools if rng.random() < 0.5),
        wanted=frozenset(p for p in pools if rng.random() < 0.5),
        deadline=rng.choice([None, NOW - 1, NOW, NOW + 1]))


def test_invariants_over_random_snapshots() -> None:
    """Whatever the state and the snapshot: acting only on held, wanted pools while the snapshot
    is safe; Active only with the store and the deadline ahead; a stop never acts or bids; a
    released pool is never acted on; a score in 0..100, healthy above SCORE_UNHEALTHY."""
    rng = random.Random(7)
    for _ in range(5000):
        data = random_snapshot(rng)
        for state in STATES:
            nxt = state.consume(data)
            plan = nxt.plan(data)
            assert plan.acting <= data.held & data.wanted
            assert not plan.acting or data.safe
            assert not plan.acting & plan.release
            assert not plan.bid & data.held
            if isinstance(nxt, Active):
                assert data.store_ok and data.deadline is not None and data.now < data.deadline
            if data.stop_requested and not isinstance(state, Stopped):
                assert isinstance(nxt, Draining | Stopped) and not plan.acting and not plan.bid
        value = score(data)
        assert 0 <= value <= 100
        healthy = data.store_ok and not data.stop_requested and not data.unhealthy
        assert (value > SCORE_UNHEALTHY) == healthy
