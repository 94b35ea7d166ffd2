"""Rendezvous spreading of pools over managers: who is eligible, every pool once, even spread,
minimal movement."""

from __future__ import annotations

import hashlib
import statistics

import pytest

from corral.ha.ownership import assign, owner, weight

POOLS = [f"pool-{i}" for i in range(12)]


def flat(given: dict[str, frozenset[str]]) -> dict[str, str]:
    """pool -> manager."""
    return {p: m for m, pools in given.items() for p in pools}


ELIGIBLE = [
    # (case, scores, managers that may get pools)
    ("all healthy", {"m1": 100, "m2": 90, "m3": 60}, {"m1", "m2", "m3"}),
    ("one below the threshold", {"m1": 100, "m2": 10}, {"m1"}),
    ("at the threshold counts", {"m1": 50, "m2": 49}, {"m1"}),
    ("none at the threshold: all above 0", {"m1": 10, "m2": 10, "m3": 0}, {"m1", "m2"}),
    ("score 0 takes nothing even when alone", {"m1": 0}, set()),
    ("no managers", {}, set()),
]


@pytest.mark.parametrize(("case", "scores", "able"), ELIGIBLE, ids=[e[0] for e in ELIGIBLE])
def test_who_gets_pools(case: str, scores: dict[str, int], able: set[str]) -> None:
    given = assign(POOLS, scores, threshold=50)
    assert set(given) == set(scores)  # every manager answered, empty when it gets nothing
    assert {m for m, pools in given.items() if pools} <= able
    owners = flat(given)
    if able:
        assert sorted(owners) == sorted(POOLS)  # every pool exactly once
        assert sum(len(p) for p in given.values()) == len(POOLS)
    else:
        assert owners == {}


def test_the_answer_is_the_same_everywhere_and_stable() -> None:
    scores = {"m1": 100, "m2": 100, "m3": 100}
    first = assign(POOLS, scores)
    assert assign(list(reversed(POOLS)), dict(reversed(scores.items()))) == first
    # blake2b, not hash(): a fixed pool and manager always weigh the same, in any process
    assert weight("m1", "pool-0") == int.from_bytes(
        hashlib.blake2b(b"m1\x00pool-0", digest_size=8).digest(), "big")


def test_score_above_the_threshold_does_not_weigh() -> None:
    """Eligible managers are equals: a higher score does not take more pools."""
    assert assign(POOLS, {"m1": 100, "m2": 60}) == assign(POOLS, {"m1": 60, "m2": 100})


def test_owner_is_the_candidate_of_highest_weight() -> None:
    for pool in POOLS:
        best = max(["m1", "m2", "m3"], key=lambda m: weight(m, pool))
        assert owner(pool, ["m3", "m1", "m2"]) == best
    assert owner("pool-0", []) is None


MANY = [f"p{i}" for i in range(3000)]


@pytest.mark.parametrize("count", [2, 3, 5, 8])
def test_even_spread(count: int) -> None:
    managers = {f"corral-{i}": 100 for i in range(count)}
    sizes = [len(p) for p in assign(MANY, managers).values()]
    mean = len(MANY) / count
    assert sum(sizes) == len(MANY)
    assert max(abs(s - mean) for s in sizes) < 0.15 * mean, sizes
    assert statistics.pstdev(sizes) < 0.08 * mean, sizes


@pytest.mark.parametrize("count", [1, 2, 4, 7])
def test_a_joining_manager_takes_only_what_it_now_owns(count: int) -> None:
    managers = {f"corral-{i}": 100 for i in range(count)}
    before = flat(assign(MANY, managers))
    after = flat(assign(MANY, managers | {"newcomer": 100}))
    moved = {p for p in MANY if before[p] != after[p]}
    assert all(after[p] == "newcomer" for p in moved)  # nothing moves between the old managers
    assert abs(len(moved) - len(MANY) / (count + 1)) < 0.2 * len(MANY) / (count + 1)


@pytest.mark.parametrize("count", [2, 3, 6])
def test_a_leaving_manager_gives_up_only_its_own(count: int) -> None:
    managers = {f"corral-{i}": 100 for i in range(count)}
    before = flat(assign(MANY, managers))
    gone = "corral-0"
    after = flat(assign(MANY, {m: s for m, s in managers.items() if m != gone}))
    assert {p for p in MANY if before[p] != after[p]} == {p for p in MANY if before[p] == gone}


def test_a_manager_falling_below_the_threshold_moves_like_one_leaving() -> None:
    managers = {"m1": 100, "m2": 100, "m3": 100}
    healthy = flat(assign(MANY, managers))
    degraded = flat(assign(MANY, managers | {"m2": 10}))
    assert {p for p in MANY if healthy[p] != degraded[p]} == {p for p in MANY if healthy[p] == "m2"}
    assert "m2" not in degraded.values()
