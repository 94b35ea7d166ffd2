"""The pool manager's counters, for the status endpoint and the benchmarks."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class Stats:
    clones: int = 0
    clone_failures: int = 0
    orphans_destroyed: int = 0
    vanished: int = 0
    destroyed: int = 0
    reconciles: int = 0
    reconcile_repairs: int = 0  # store records a reconcile found disagreeing with the provider (expected 0)
