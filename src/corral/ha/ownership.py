"""Which manager runs which pool: rendezvous (highest-random-weight) hashing.

Every manager ranks every pool by a hash of (manager, pool); the pool goes to the eligible
manager of highest rank. Every process computes the same answer from the same scores, with no
coordination: the hash is blake2b (stable across processes and runs, unlike ``hash()``). The
spread is even in expectation (each of n managers gets about 1/n of the pools), and when a
manager joins it takes only the pools it now ranks first, when one leaves only its own pools
move: no other pool changes hands.

Eligible: a manager scoring at least ``threshold``; when none does, every manager scoring above
0 (a degraded manager is better than none). A score of 0 means "take nothing" (the manager is
stopping or has lost its store). The assignment is what each manager *wants*; who runs a pool
is decided by its lease (``ha.leases``), which the current holder hands over first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from corral.ha.settings import DEFAULT_SCORE_THRESHOLD


def weight(manager: str, pool: str) -> int:
    digest = hashlib.blake2b(f"{manager}\x00{pool}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def eligible(managers: Mapping[str, int], threshold: int) -> list[str]:
    able = [m for m, s in managers.items() if s >= threshold and s > 0]
    return able or [m for m, s in managers.items() if s > 0]


def owner(pool: str, candidates: Iterable[str]) -> str | None:
    """The candidate of highest weight for the pool (ties, which blake2b makes unlikely, by name)."""
    return max(candidates, key=lambda m: (weight(m, pool), m), default=None)


def assign(pools: Iterable[str], managers: Mapping[str, int],
           threshold: int = DEFAULT_SCORE_THRESHOLD) -> dict[str, frozenset[str]]:
    """Manager id -> the pools it should run, for every manager given (an empty set for those
    that get none). Every pool goes to exactly one eligible manager; none at all when no
    manager scores above 0."""
    candidates = eligible(managers, threshold)
    given: dict[str, set[str]] = {m: set() for m in managers}
    for pool in set(pools):
        chosen = owner(pool, candidates)
        if chosen is not None:
            given[chosen].add(pool)
    return {m: frozenset(p) for m, p in given.items()}
