"""Autosizing in the running pools: what the manager measures (checkouts, times to ready) and the
size each autosized pool keeps. The model and its bounds are :mod:`corral.pools.autosize`.

Every pool has a :class:`~corral.pools.autosize.Demand` and a
:class:`~corral.pools.autosize.ReadyTime`: their product is the checkouts expected during one
replenishment (:meth:`Sizing.expected`), by which the refill serves the neediest pool first.
Each autosized pool also has a :class:`~corral.pools.autosize.Demand`, a
:class:`~corral.pools.autosize.ReadyTime` and an :class:`~corral.pools.autosize.Autosizer`.
:meth:`Sizing.targets` asks the autosizers and answers the sizes that changed; the manager sets
them as the pools' sizes and the refill makes or removes VMs (removing only ready and pending
ones). A size set at the API holds the pool (:meth:`Sizing.hold`): its autosizer is not asked
until the override is reset.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from corral.domain.models import Pool
from corral.pools.autosize import Autosizer, AutosizeSettings, Demand, ReadyTime, Target
from corral.pools.decide import expected_demand


@dataclass(frozen=True, slots=True)
class SizeChange:
    """One change of an autosized pool's size: when (unix seconds), to what, and why."""

    at: float
    size: int
    reason: str


@dataclass(frozen=True, slots=True)
class AutosizeView:
    """An autosized pool's target and why: the rate of checkouts (per hour) and the time to ready
    used, what the model asks for, the bound that applies (``min_size``, ``max_size``,
    ``capacity``, ``cooldown`` or None), whether a size set at the API holds the pool, and the
    latest changes (oldest first)."""

    target: int
    needed: int
    rate_per_hour: float
    ready_s: float
    bound: str | None
    reason: str
    held: bool
    min_size: int
    max_size: int
    target_wait: float
    history: tuple[SizeChange, ...]


def settings_of(pool: Pool) -> AutosizeSettings:
    assert pool.min_size is not None and pool.max_size is not None
    return AutosizeSettings(pool.min_size, pool.max_size, pool.target_wait, pool.scale_down_after_s)


class _Measured:
    """One pool's checkouts and times to ready."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.demand = Demand(window)
        self.ready = ReadyTime()


class _Sized:
    """One autosized pool's autosizer and last answer."""

    def __init__(self, pool: Pool) -> None:
        self.settings = settings_of(pool)
        self.sizer = Autosizer(self.settings, pool.size)
        self.last: Target | None = None
        self.held = False


class Sizing:
    """The autosized pools of ``pools`` (the manager's, changed in place); ``clock`` gives unix
    seconds; ``capacity(pool)`` the largest size the hosts have room for (None: not known)."""

    def __init__(self, pools: Mapping[str, Pool], clock: Callable[[], float],
                 capacity: Callable[[Pool], int | None]) -> None:
        self.pools = pools
        self.clock = clock
        self.capacity = capacity
        self._measured: dict[str, _Measured] = {}
        self._sized: dict[str, _Sized] = {}

    def _measures(self, name: str) -> _Measured | None:
        """The pool's measurements (a new demand window starts its demand afresh)."""
        pool = self.pools.get(name)
        if pool is None:
            self._measured.pop(name, None)
            return None
        measured = self._measured.get(name)
        if measured is None or measured.window != pool.demand_window_s:
            fresh = _Measured(pool.demand_window_s)
            if measured is not None:
                fresh.ready = measured.ready
            measured = self._measured[name] = fresh
        return measured

    def _of(self, name: str) -> _Sized | None:
        """The autosized pool's state, made (or made again after its keys changed) as the pool is now."""
        pool = self.pools.get(name)
        if pool is None or not pool.autosized:
            self._sized.pop(name, None)
            return None
        sized = self._sized.get(name)
        if sized is None or sized.settings != settings_of(pool):
            fresh = _Sized(pool)
            if sized is not None:  # keep whether the pool is held
                fresh.held = sized.held
            sized = self._sized[name] = fresh
        return sized

    def checked_out(self, pool: str, count: int = 1) -> None:
        """``count`` checkouts of ``pool`` were asked for (served or not)."""
        measured = self._measures(pool)
        if measured is not None and count > 0:
            measured.demand.arrive(self.clock(), count)

    def became_ready(self, pool: str, seconds: float | None) -> None:
        """A VM of ``pool`` became ready ``seconds`` after it was asked for."""
        measured = self._measures(pool)
        if measured is not None and seconds is not None:
            measured.ready.record(seconds)

    def expected(self, pool: str) -> float | None:
        """The checkouts of ``pool`` expected during one replenishment
        (:func:`~corral.pools.decide.expected_demand`); None before its first checkout (no demand
        history: the refill then takes its size)."""
        measured, run = self._measured.get(pool), self.pools.get(pool)
        if measured is None or run is None or not measured.demand.seen:
            return None
        return expected_demand(measured.demand.rate(self.clock()), measured.ready.seconds, run.size)

    def hold(self, pool: str, held: bool) -> None:
        """A size set at the API holds ``pool`` (True) or was reset (False: autosizing resumes
        from the pool's size now)."""
        sized = self._of(pool)
        if sized is None:
            return
        if sized.held and not held:
            sized.sizer.resume(self.pools[pool].size)
        sized.held = held

    def targets(self, names: list[str] | None = None) -> dict[str, int]:
        """Ask the autosizers of ``names`` (None: every pool) not held at the API; the pools
        whose size is to change, with their new size."""
        now = self.clock()
        changed: dict[str, int] = {}
        for name in list(self.pools) if names is None else names:
            sized, measured = self._of(name), self._measures(name)
            if sized is None or measured is None or sized.held:
                continue
            pool = self.pools[name]
            target = sized.last = sized.sizer.decide(now, measured.demand.rate(now), measured.ready.seconds,
                                                     self.capacity(pool))
            if target.size != pool.size:
                changed[name] = target.size
        for gone in (self._sized, self._measured):
            for name in set(gone) - set(self.pools):
                del gone[name]
        return changed

    def view(self, name: str) -> AutosizeView | None:
        """The pool's target and why; None if it is not autosized."""
        sized, measured = self._of(name), self._measures(name)
        if sized is None or measured is None:
            return None
        now = self.clock()
        last = sized.last
        s = sized.settings
        size = self.pools[name].size
        history = tuple(SizeChange(round(at, 3), size_, reason) for at, size_, reason in sized.sizer.history)
        if sized.held:
            reason = "held by a size set at the API"
        else:
            reason = last.reason if last is not None else "not decided yet"
        if last is None:
            rate, ready_s, need, bound = measured.demand.rate(now), measured.ready.seconds, size, None
        else:
            rate, ready_s, need, bound = last.rate, last.ready_s, last.needed, last.bound
        return AutosizeView(size, need, round(rate * 3600, 2), round(ready_s, 2), bound, reason,
                            sized.held, s.min_size, s.max_size, s.target_wait, history)
