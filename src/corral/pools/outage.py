"""The pool manager's view of its store: available, or unavailable since when.

A store that cannot take writes (Redis stopped, a sqlite file another process keeps locked)
makes every write raise :class:`~corral.store.base.StoreUnavailable`. The manager then pauses:
a create whose ``pending`` record cannot be written is not called (the runner puts it back),
a destroy whose intent cannot be written is not called, and the loops try again at their next
turn. :class:`StoreOutage` gathers those failures into one outage, logged once when it starts
and once when it ends; a sweep that completes (it writes: the purge of old records) ends it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from corral.store.base import StoreUnavailable

log = logging.getLogger("corral.pool")


@dataclass(frozen=True, slots=True)
class StoreStatus:
    """``available``: no write failed since the last sweep that completed; ``outages``: the
    outages seen; ``unavailable_s``: how long the one under way has lasted; ``last_outage_s``:
    how long the last one that ended lasted; ``writes_refused``: steps that failed on it."""

    available: bool
    outages: int
    unavailable_s: float | None
    last_outage_s: float | None
    writes_refused: int
    error: str | None


@dataclass(frozen=True, slots=True)
class Change:
    """What one report does to the outage: ``started`` or ``ended`` (with its length), or neither."""

    started: bool = False
    ended_after_s: float | None = None


def on_failure(since: float | None) -> Change:
    """A step failed on the unavailable store: an outage starts unless one is under way."""
    return Change(started=since is None)


def on_success(since: float | None, now: float) -> Change:
    """A sweep completed: the outage under way (if any) ends, having lasted since ``since``."""
    return Change(ended_after_s=None if since is None else max(now - since, 0.0))


class StoreOutage:
    """Counts and logs the store's outages as the manager's steps meet them (see the module)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.outages = 0
        self.writes_refused = 0
        self.since: float | None = None
        self.error: str | None = None
        self.last_outage_s: float | None = None

    @property
    def available(self) -> bool:
        return self.since is None

    def failed(self, exc: StoreUnavailable, where: str) -> None:
        """A step (``where``) could not write: nothing of it was done at the provider."""
        self.writes_refused += 1
        self.error = str(exc)
        if on_failure(self.since).started:
            self.since = self.clock()
            self.outages += 1
            log.warning("store unavailable: the manager pauses (no VM is created or destroyed until its "
                        "record can be written) and tries again at each turn",
                        extra={"error": self.error, "step": where})

    def succeeded(self) -> None:
        """A sweep wrote and completed: the store takes writes again."""
        change = on_success(self.since, self.clock())
        if change.ended_after_s is None:
            return
        self.since = None
        self.last_outage_s = change.ended_after_s
        log.warning("store available again: the manager resumes",
                    extra={"outage_s": round(change.ended_after_s, 3), "steps_refused": self.writes_refused})

    def view(self) -> StoreStatus:
        return StoreStatus(available=self.available, outages=self.outages,
                           unavailable_s=None if self.since is None else self.clock() - self.since,
                           last_outage_s=self.last_outage_s, writes_refused=self.writes_refused,
                           error=None if self.since is None else self.error)
