"""What happens, counted as it happens: checkouts and returns at the API, and VM lifecycle
events from the event bus (times to ready, clone, destroy and migration times, VMs marked
failed). The statsd pusher hears each count and time as it is recorded (a :class:`Sink`).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Protocol

from corral.domain.events import Event, MigrationDone, VmCreated, VmLifecycle, VmMoved
from corral.domain.states import VmState
from corral.metrics.catalogue import Kind, metric

__all__ = ["UNKNOWN", "Histogram", "LifecycleTimer", "Observation", "Recorder", "Sink"]

#: The label of every checkout that names no pool or alias, as vmpooler's when it has no name:
#: the name asked for is the client's text, which may be anything (a token pasted in the wrong place).
UNKNOWN = "unknown"
#: VMs followed at once from their create request (or destroy intent); the oldest are forgotten beyond.
FOLLOWED = 100_000

_ENDED = (VmState.COMPLETED, VmState.FAILED, VmState.DISCOVERED)


class Sink(Protocol):
    """Hears each count and time as it is recorded (statsd)."""

    def count(self, key: str, labels: tuple[str, ...], n: float) -> None: ...

    def timing(self, key: str, labels: tuple[str, ...], seconds: float) -> None: ...


@dataclass(slots=True)
class Histogram:
    """Observations in cumulative buckets (upper bounds, ascending), their count and sum."""

    bounds: tuple[float, ...]
    counts: list[int] = field(default_factory=list)
    total: int = 0
    sum: float = 0.0

    def __post_init__(self) -> None:
        if not self.counts:
            self.counts = [0] * len(self.bounds)

    def observe(self, value: float) -> None:
        i = bisect.bisect_left(self.bounds, value)
        if i < len(self.counts):
            self.counts[i] += 1
        self.total += 1
        self.sum += value

    def cumulative(self) -> list[tuple[float, int]]:
        """(upper bound, observations at or below it), then (+inf, all of them)."""
        out, running = [], 0
        for bound, n in zip(self.bounds, self.counts, strict=True):
            running += n
            out.append((bound, running))
        out.append((float("inf"), self.total))
        return out


@dataclass(frozen=True, slots=True)
class Observation:
    key: str  # a histogram's or a counter's
    labels: tuple[str, ...]
    value: float  # seconds, or 1 for a counter


class LifecycleTimer:
    """Turns events into observations: a VM's create request (a new pending record) starts its
    clone and ready clocks, its appearance at the provider stops the first, ready the second; a
    destroy intent starts the destroy clock and ``destroyed`` stops it; a migration corral asked
    for counts its source and target hosts (the move's :class:`VmMoved` comes just before its
    :class:`MigrationDone`) and times it. Follows at most ``limit`` VMs of each kind (the oldest
    are forgotten)."""

    def __init__(self, limit: int = FOLLOWED) -> None:
        self.limit = limit
        self.created: dict[str, tuple[float, str]] = {}  # VM -> (create request, pool)
        self.cloning: set[str] = set()  # of those, the VMs the provider does not show yet
        self.ending: dict[str, tuple[float, str]] = {}  # VM -> (destroy intent, pool)
        self.moved: dict[str, str] = {}  # VM -> the host of its last move left (the move's MigrationDone follows)

    def _remember(self, table: dict[str, tuple[float, str]], name: str, value: tuple[float, str]) -> None:
        table[name] = value
        while len(table) > self.limit:
            oldest = next(iter(table))
            del table[oldest]
            self.cloning.discard(oldest)

    def see(self, event: Event) -> list[Observation]:
        if isinstance(event, VmLifecycle):
            return self._lifecycle(event)
        if isinstance(event, VmCreated) and event.vm in self.cloning:
            self.cloning.discard(event.vm)
            at, pool = self.created[event.vm]
            return [Observation("clone", (pool,), max(event.at - at, 0.0))]
        if isinstance(event, VmMoved):
            self.moved[event.vm] = event.old_host
            while len(self.moved) > self.limit:
                del self.moved[next(iter(self.moved))]
            return []
        if isinstance(event, MigrationDone):
            out = [Observation("migrate_to", (event.host,), 1.0)]
            source = self.moved.pop(event.vm, None)
            if source:
                out.append(Observation("migrate_from", (source,), 1.0))
            if event.pool:
                out.append(Observation("migrate", (event.pool,), max(event.seconds, 0.0)))
            return out
        return []

    def _lifecycle(self, e: VmLifecycle) -> list[Observation]:
        out = []
        if e.old is None and e.new is VmState.PENDING:
            self._remember(self.created, e.vm, (e.at, e.pool))
            self.cloning.add(e.vm)
        elif e.old is VmState.PENDING and e.new is not VmState.PENDING:
            started = self.created.pop(e.vm, None)
            self.cloning.discard(e.vm)
            if e.new is VmState.READY and started is not None:
                out.append(Observation("time_to_ready_state", (e.pool,), max(e.at - started[0], 0.0)))
            if e.new is VmState.FAILED:
                out.append(Observation("errors_markedasfailed", (e.pool,), 1.0))
        if e.new in _ENDED:
            self._remember(self.ending, e.vm, (e.at, e.pool))
        elif e.new is VmState.DESTROYED:
            ended = self.ending.pop(e.vm, None)
            if ended is not None:
                out.append(Observation("destroy", (e.pool,), max(e.at - ended[0], 0.0)))
        return out


class Recorder:
    """Counters and histograms of what happened in this process, by metric key and labels."""

    def __init__(self, sinks: Iterable[Sink] = ()) -> None:
        self.sinks = list(sinks)
        self.counters: dict[str, dict[tuple[str, ...], float]] = {}
        self.histograms: dict[str, dict[tuple[str, ...], Histogram]] = {}
        self.timer = LifecycleTimer()

    def count(self, key: str, labels: tuple[str, ...] = (), n: float = 1.0) -> None:
        m = metric(key)
        assert m.kind is Kind.COUNTER and len(labels) == len(m.labels), key
        series = self.counters.setdefault(key, {})
        series[labels] = series.get(labels, 0.0) + n
        for sink in self.sinks:
            sink.count(key, labels, n)

    def observe(self, key: str, labels: tuple[str, ...], seconds: float) -> None:
        m = metric(key)
        assert m.kind is Kind.HISTOGRAM and len(labels) == len(m.labels), key
        series = self.histograms.setdefault(key, {})
        hist = series.get(labels)
        if hist is None:
            hist = series[labels] = Histogram(m.buckets)
        hist.observe(seconds)
        for sink in self.sinks:
            sink.timing(key, labels, seconds)

    # -- what the API reports ----------------------------------------------------------------------
    def checkout_success(self, pools: Iterable[str]) -> None:
        """One count per VM handed out, under its pool."""
        for pool in pools:
            self.count("checkout_success", (pool,))

    def checkout_empty(self, names: Iterable[str]) -> None:
        """One count per name that had too few ready VMs; none named (the last VMs went to
        other checkouts meanwhile): one count of ``checkout_raced``."""
        named = list(names)
        for name in named:
            self.count("checkout_empty", (name,))
        if not named:
            self.count("checkout_raced")

    def checkout_invalid(self, names: Iterable[str]) -> None:
        """One count per name that is no pool or alias, all under :data:`UNKNOWN`."""
        for _ in names:
            self.count("checkout_invalid", (UNKNOWN,))

    def returned(self, ok: bool) -> None:
        """A return done (``ok``) or refused for any reason (vmpooler's delete.failed)."""
        self.count("delete_success" if ok else "delete_failed")

    # -- what the event bus reports ----------------------------------------------------------------
    def see(self, event: Event) -> None:
        for o in self.timer.see(event):
            if metric(o.key).kind is Kind.COUNTER:
                self.count(o.key, o.labels, o.value)
            else:
                self.observe(o.key, o.labels, o.value)
