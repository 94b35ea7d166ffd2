"""The autosizing model (pools/autosize.py): the Poisson quantile, the demand and ready-time
estimates, and the bounds, by tables."""

from __future__ import annotations

import math

import pytest

from corral.pools.autosize import Autosizer, AutosizeSettings, Demand, ReadyTime, needed


def poisson_tail(mean: float, k: int) -> float:
    """P(N > k) for N ~ Poisson(mean), summed directly (small means only)."""
    return 1.0 - sum(math.exp(-mean) * mean**i / math.factorial(i) for i in range(k + 1))


@pytest.mark.parametrize(
    ("rate", "ready_s", "target_wait", "expected"),
    [
        (0.0, 60, 0.01, 0),  # no demand: nothing needed (min_size decides)
        (1 / 60, 0, 0.01, 0),  # instant replenishment
        (1 / 60, 60, 0.5, 1),  # mean 1: P(N > 0) = 0.63, P(N > 1) = 0.26
        (1 / 60, 60, 0.01, 4),  # mean 1: P(N > 3) = 0.019, P(N > 4) = 0.0037
        (1 / 6, 60, 0.01, 18),  # mean 10
        (10, 60, 0.01, 658),  # mean 600: P(N > 657) = 0.0102, P(N > 658) = 0.0092
        (1 / 60, 60, 0.0, 1_000_000),  # never empty: as many as allowed
    ],
)
def test_needed_is_the_poisson_quantile(rate: float, ready_s: float, target_wait: float, expected: int) -> None:
    assert needed(rate, ready_s, target_wait) == expected


@pytest.mark.parametrize(("mean", "target_wait"), [(0.5, 0.1), (1, 0.01), (3, 0.05), (10, 0.001), (25, 0.01)])
def test_needed_is_the_smallest_size_whose_empty_chance_is_within_the_target(mean: float, target_wait: float) -> None:
    k = needed(mean / 60, 60, target_wait)
    assert poisson_tail(mean, k) <= target_wait < poisson_tail(mean, k - 1)


def test_a_steady_rate_is_measured_by_both_windows() -> None:
    demand = Demand(window=600)
    assert not demand.seen and demand.rate(0) == 0
    for second in range(0, 3600, 10):  # one checkout every 10 s for an hour
        demand.arrive(float(second))
    assert demand.seen
    assert demand.rate(3600) == pytest.approx(0.1, rel=0.1)


def test_a_burst_raises_the_rate_at_once_and_the_long_window_forgets_it_slowly() -> None:
    demand = Demand(window=600)
    demand.arrive(0.0, 50)  # 50 checkouts within a second
    assert demand.rate(1) == pytest.approx(50 / 15 * math.exp(-1 / 15), rel=0.05)  # the short window
    assert demand.rate(300) == pytest.approx(50 / 600 * math.exp(-0.5), rel=0.05)  # the long one, half a window on
    assert demand.rate(6000) < 1e-5


@pytest.mark.parametrize(
    ("times", "expected"),
    [
        ([], 60.0),  # the prior
        ([30.0], 30.0),  # the first measurement replaces it
        ([30.0, 80.0], 40.0),  # then a decayed mean (weight 0.2)
        ([30.0, -1.0, math.inf], 30.0),  # nonsense is ignored
    ],
)
def test_ready_time(times: list[float], expected: float) -> None:
    ready = ReadyTime(prior=60.0, weight=0.2)
    for seconds in times:
        ready.record(seconds)
    assert ready.seconds == pytest.approx(expected)


SETTINGS = AutosizeSettings(min_size=2, max_size=20, target_wait=0.01, scale_down_after=900)


@pytest.mark.parametrize(
    ("rate_per_h", "capacity", "size", "bound"),
    [
        (0, None, 2, "min_size"),  # no demand: min_size
        (60, None, 4, None),  # mean 1 in 60 s: 4
        (600, None, 18, None),  # mean 10: 18
        (6000, None, 20, "max_size"),  # mean 100: capped
        (600, 12, 12, "capacity"),  # the hosts have room for 12
        (600, 1, 5, "capacity"),  # room for fewer than it holds: it keeps what it has (5), asks for no more
    ],
)
def test_the_target_and_the_bound_that_applies(rate_per_h: float, capacity: int | None, size: int,
                                               bound: str | None) -> None:
    sizer = Autosizer(SETTINGS, start=5)
    target = sizer.decide(0.0, rate_per_h / 3600, 60.0, capacity)
    assert (target.size, target.bound) == (size, bound)
    assert sizer.size == size
    if bound is not None:
        assert bound.split("_")[0] in target.reason or "room" in target.reason


def test_up_at_once_down_only_after_the_cooldown_since_the_last_rise() -> None:
    sizer = Autosizer(SETTINGS, start=2)
    assert sizer.decide(0.0, 600 / 3600, 60.0).size == 18  # up at once
    quiet = sizer.decide(100.0, 0.0, 60.0)  # demand gone: kept during the cooldown
    assert (quiet.size, quiet.bound) == (18, "cooldown")
    assert sizer.decide(899.0, 0.0, 60.0).size == 18
    assert sizer.decide(900.0, 0.0, 60.0).size == 2  # then down
    assert [size for _, size, _ in sizer.history] == [18, 2]


def test_a_new_rise_restarts_the_cooldown() -> None:
    sizer = Autosizer(SETTINGS, start=2)
    sizer.decide(0.0, 60 / 3600, 60.0)  # 4
    sizer.decide(800.0, 600 / 3600, 60.0)  # 18: a rise at 800
    assert sizer.decide(1000.0, 0.0, 60.0).size == 18  # 200 s after the last rise: kept
    assert sizer.decide(1700.0, 0.0, 60.0).size == 2


def test_the_start_size_is_held_within_the_bounds() -> None:
    assert Autosizer(SETTINGS, start=50).size == 20
    assert Autosizer(SETTINGS, start=0).size == 2
