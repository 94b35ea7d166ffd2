"""The autosized pools' state as the manager keeps it (pools/sizing.py), on a clock the test sets."""

from __future__ import annotations

import dataclasses

import pytest

from corral.domain.models import Pool
from corral.pools.sizing import Sizing

AUTO = Pool(name="a", template="t", size=2, provider="sim", min_size=1, max_size=10, target_wait=0.01,
            scale_down_after_s=100.0, demand_window_s=600.0)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def sizing(pool: Pool = AUTO, capacity: int | None = None) -> tuple[Sizing, dict[str, Pool], Clock]:
    pools, clock = {pool.name: pool}, Clock()
    return Sizing(pools, clock, lambda _: capacity), pools, clock


@pytest.mark.parametrize(("arrivals", "ready_s", "capacity", "size", "bound"), [
    (0, None, None, 1, "min_size"),  # no demand: min_size
    (60, 60.0, None, 10, "max_size"),  # a burst of 60 in no time, a minute to ready: max_size
    (60, 60.0, 4, 4, "capacity"),  # the hosts' room caps it
    (6, 2.5, None, 4, None),  # 6 in the short window of 15 s (0.4/s) over 2.5 s: a mean of 1, four cover it
])
def test_targets_follow_demand_ready_time_and_bounds(arrivals: int, ready_s: float | None, capacity: int | None,
                                                    size: int, bound: str | None) -> None:
    s, _, _ = sizing(capacity=capacity)
    s.became_ready("a", ready_s)
    s.checked_out("a", arrivals)
    assert s.targets().get("a", 2) == size
    view = s.view("a")
    assert view is not None and view.bound == bound


def test_a_change_of_keys_starts_afresh_but_keeps_the_measured_ready_time() -> None:
    s, pools, clock = sizing()
    s.became_ready("a", 30.0)
    s.checked_out("a", 60)
    assert s.targets() == {"a": 10}
    pools["a"] = dataclasses.replace(pools["a"], size=10, max_size=20, demand_window_s=300.0)
    clock.now += 1
    view = s.view("a")
    assert view is not None and view.max_size == 20 and view.ready_s == 30.0 and view.rate_per_hour == 0.0


@pytest.mark.parametrize("pool", [dataclasses.replace(AUTO, min_size=None, max_size=None)])
def test_a_fixed_pool_is_not_sized_but_its_demand_is_measured(pool: Pool) -> None:
    s, _, _ = sizing(pool)
    assert s.expected("a") is None, "no demand history yet"
    s.became_ready("a", 30.0)
    s.checked_out("a", 15)
    assert s.targets() == {} and s.view("a") is None
    assert s.expected("a") == pytest.approx(15 / 15 * 30.0), "15 in the short window's 15 s, 30 s to ready"


def test_held_pools_are_not_asked_and_a_removed_pool_is_forgotten() -> None:
    s, pools, _ = sizing()
    s.hold("a", True)
    s.checked_out("a", 60)
    assert s.targets() == {}
    s.hold("a", False)
    assert s.targets() == {"a": 10}
    del pools["a"]
    assert s.targets() == {} and s.view("a") is None
