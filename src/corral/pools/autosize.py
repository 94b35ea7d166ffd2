"""Autosizing: how many ready VMs a pool keeps, from the demand it sees. Pure: no I/O, no clock.

The model. Checkouts of a pool arrive at some rate λ (per second); a VM asked for now is ready
``T`` seconds later (clone and boot: the replenishment time). While a checkout's replacement is
being made, the pool must cover the checkouts that arrive meanwhile from what it holds ready.
Taking arrivals as a Poisson process, the checkouts in one replenishment time number ``N ~
Poisson(λ·T)``; a pool holding ``k`` ready VMs is found empty when ``N > k``. The pool keeps the
smallest ``k`` with ``P(N > k) ≤ target_wait`` (:func:`needed`). Little's law gives the mean
(``λ·T`` VMs are on their way at any time); the Poisson quantile adds what covers the bursts the
mean does not, at the chance the pool's ``target_wait`` allows.

The inputs. :class:`Demand` is the arrival rate, an exponentially decayed count of checkouts
over two windows: a short one (15 s), which follows a burst at once, and a long one
(``window``), which remembers the day's level; the rate is the larger, so the size rises as a
burst starts and falls only as the long window forgets it. :class:`ReadyTime` is the decayed
mean of measured times from asking for a VM to its being ready.

The bounds. :class:`Autosizer` turns the model's answer into the size the pool keeps: up at
once; down only once ``scale_down_after`` seconds have passed since the last rise (no thrash);
never below ``min_size`` nor above ``max_size``; and never above the room the hosts have for
the pool's template (``capacity``), each with the bound named in the reason. Lowering the size
only ever removes ready and pending VMs (the refill's rule): a checked-out VM is never touched.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

__all__ = ["AutosizeSettings", "Autosizer", "Demand", "ReadyTime", "Target", "needed"]

SHORT_WINDOW = 15.0  # seconds: the window that follows a burst
HISTORY = 100  # changes of size kept per pool


class Demand:
    """Checkout arrivals of one pool as an exponentially decayed rate (per second)."""

    def __init__(self, window: float = 600.0) -> None:
        if window <= 0:
            raise ValueError("a demand window must be positive")
        self.windows = (min(SHORT_WINDOW, window), window)
        self._levels = [0.0, 0.0]
        self._at: float | None = None

    @property
    def seen(self) -> bool:
        """Any arrival recorded yet."""
        return self._at is not None

    def _decayed(self, now: float) -> list[float]:
        if self._at is None:
            return [0.0, 0.0]
        elapsed = max(now - self._at, 0.0)
        return [level * math.exp(-elapsed / window) for level, window in zip(self._levels, self.windows, strict=True)]

    def arrive(self, now: float, count: int = 1) -> None:
        self._levels = [level + count for level in self._decayed(now)]
        self._at = max(now, self._at) if self._at is not None else now

    def rate(self, now: float) -> float:
        """Arrivals per second: the larger of the short and the long window's."""
        return max(level / window for level, window in zip(self._decayed(now), self.windows, strict=True))


class ReadyTime:
    """Seconds from asking for a VM to its being ready, as a decayed mean of measured times;
    ``prior`` until the first measurement."""

    def __init__(self, prior: float = 60.0, weight: float = 0.2) -> None:
        if not 0 < weight <= 1:
            raise ValueError("a weight is above 0 and at most 1")
        self.seconds = prior
        self.weight = weight
        self.measured = 0

    def record(self, seconds: float) -> None:
        if seconds < 0 or not math.isfinite(seconds):
            return
        self.seconds = seconds if self.measured == 0 else self.seconds + self.weight * (seconds - self.seconds)
        self.measured += 1


def needed(rate: float, ready_s: float, target_wait: float, limit: int = 1_000_000) -> int:
    """The smallest ``k`` with ``P(N > k) ≤ target_wait`` for ``N ~ Poisson(rate × ready_s)``:
    the ready VMs that cover one replenishment time's checkouts but at that chance. At most
    ``limit`` (a size no pool reaches; it bounds the search)."""
    mean = max(rate, 0.0) * max(ready_s, 0.0)
    if mean == 0.0:
        return 0
    if target_wait <= 0.0:
        return limit
    # walk up the Poisson distribution in log space (exp(-mean) underflows for a big mean)
    log_mean = math.log(mean)
    cumulative = 0.0
    for k in range(limit + 1):
        cumulative += math.exp(-mean + k * log_mean - math.lgamma(k + 1))
        if 1.0 - cumulative <= target_wait:
            return k
        if k > mean and cumulative >= 1.0:  # rounding: the tail is below what a float can tell
            return k
    return limit


@dataclass(frozen=True, slots=True)
class AutosizeSettings:
    """A pool's autosizing keys (``min_size``, ``max_size``, ``target_wait``, ``scale_down_after``)."""

    min_size: int
    max_size: int
    target_wait: float = 0.01
    scale_down_after: float = 900.0


@dataclass(frozen=True, slots=True)
class Target:
    """The size a pool keeps now, and why."""

    size: int
    needed: int  # what the model asks for, before the bounds
    rate: float  # checkouts per second used
    ready_s: float  # replenishment time used
    bound: str | None  # "min_size", "max_size", "capacity", "cooldown" or None
    reason: str  # a sentence for the status page


def _reason(need: int, rate: float, ready_s: float, target_wait: float, bound: str | None, size: int) -> str:
    model = (f"{need} ready cover {rate * 3600:.1f} checkouts/h over {ready_s:.0f} s to ready "
             f"at a {target_wait:g} chance of finding the pool empty")
    why = {
        None: "",
        "min_size": f"; held at min_size {size}",
        "max_size": f"; held at max_size {size}",
        "capacity": f"; held at {size}, the room the hosts have for its template",
        "cooldown": f"; kept at {size} until scale_down_after has passed since the last rise",
    }[bound]
    return model + why


class Autosizer:
    """One pool's size over time: up at once, down only ``scale_down_after`` seconds after the
    last rise, within ``min_size`` … ``max_size`` and the hosts' room."""

    def __init__(self, settings: AutosizeSettings, start: int) -> None:
        self.settings = settings
        self.size = self._bounded(start)
        self.last_rise: float | None = None
        self.history: deque[tuple[float, int, str]] = deque(maxlen=HISTORY)

    def _bounded(self, size: int) -> int:
        return min(max(size, self.settings.min_size), self.settings.max_size)

    def resume(self, size: int) -> None:
        """Go on from ``size`` (held within the bounds): the size the pool has after it was set
        from elsewhere (an override at the API, now reset)."""
        self.size = self._bounded(size)

    def decide(self, now: float, rate: float, ready_s: float, capacity: int | None = None) -> Target:
        """The size to keep now; ``capacity`` is the largest size the hosts have room for (None:
        not known)."""
        s = self.settings
        need = needed(rate, ready_s, s.target_wait, limit=max(s.max_size, 1) * 2)
        size, bound = need, None
        if size < s.min_size:
            size, bound = s.min_size, "min_size"
        elif size > s.max_size:
            size, bound = s.max_size, "max_size"
        if capacity is not None and size > capacity:
            # the hosts cannot hold more: ask for no VM beyond their room (nor drop those made)
            size, bound = max(capacity, min(self.size, size)), "capacity"
        if size < self.size and self.last_rise is not None and now - self.last_rise < s.scale_down_after:
            size, bound = self.size, "cooldown"
        target = Target(size, need, rate, ready_s, bound, _reason(need, rate, ready_s, s.target_wait, bound, size))
        if size != self.size:
            if size > self.size:
                self.last_rise = now
            self.size = size
            self.history.append((now, size, target.reason))
        return target
