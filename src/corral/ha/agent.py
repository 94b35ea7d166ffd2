"""The control-plane agent: a pure state machine, one step per tick of the broker.

Each tick the broker observes the world into an immutable :class:`Snapshot` (the time, the
store, the providers, the leases this manager holds and until when it may trust them, the pools
the spreading gives it), and the current state's ``consume`` returns the next state. The state
then says what the broker must do: ``acting`` (the pools the pool service may run now),
``bid`` (the pools to acquire) and ``release`` (the held pools to hand over). Nothing here reads
a clock or does I/O.

What a lease guarantees: while a manager's lease on a pool lives in Redis, no other manager can
take the pool, and a manager acts only until its local ``deadline`` (see ``ha.settings``),
which ends before the lease can expire in Redis. What a fencing token adds: every acquisition
of a pool by a new holder increments the pool's counter, and the store refuses a write whose
token is below it, so a manager that was paused past its deadline cannot overwrite the work of
the pool's next owner. Both hold for one Redis primary. A failover to a replica that had not
received the last writes (replication is asynchronous), or a restart of a Redis without
persistence, can forget a lease (two managers then both believe they hold the pool until the
older one's deadline) and can forget the counter, so that a new token is not above an old one.

States: ``Starting`` (nothing observed yet), ``Standby`` (healthy, nothing to run),
``Acquiring`` (wants pools it does not hold yet), ``Active`` (runs the pools it holds),
``Degraded`` (store lost, lease past its deadline, every provider down or many errors),
``Draining`` (stopping: acts on nothing, hands every pool over), ``Stopped``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

ERROR_RATE_HIGH = 0.5  # at or above: Degraded
ERROR_RATE_OK = 0.25  # a Degraded manager settles again only below this (no flapping around the limit)
SCORE_MAX = 100
SCORE_UNHEALTHY = 10  # every provider down, or error rate at or above ERROR_RATE_HIGH


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the agent knows at one tick. ``now`` and ``deadline`` are local monotonic seconds;
    ``deadline`` is None when no pool is held. ``error_rate`` and ``load`` lie in 0..1."""

    now: float
    stop_requested: bool = False
    store_ok: bool = True
    providers_up: int = 0
    providers_total: int = 0
    error_rate: float = 0.0
    load: float = 0.0
    held: frozenset[str] = frozenset()
    deadline: float | None = None
    wanted: frozenset[str] = frozenset()

    @property
    def safe(self) -> bool:
        """May the manager act on its held pools now: the store answers and the deadline is ahead."""
        return self.store_ok and self.deadline is not None and self.now < self.deadline

    @property
    def expired(self) -> bool:
        """Pools are held but their deadline has passed (or is unknown): their leases may be gone."""
        return bool(self.held) and (self.deadline is None or self.now >= self.deadline)

    @property
    def unhealthy(self) -> bool:
        """Every provider is down, or too many calls fail."""
        all_down = self.providers_total > 0 and self.providers_up == 0
        return all_down or self.error_rate >= ERROR_RATE_HIGH


@dataclass(frozen=True, slots=True)
class Plan:
    acting: frozenset[str]
    bid: frozenset[str]
    release: frozenset[str]


@dataclass(frozen=True)
class State:
    """A state of the agent. ``acts``: the pool service may run for the held pools it still
    wants, while the snapshot is ``safe``. ``bids``: it acquires the wanted pools it lacks.
    ``releases_all``: it hands over every held pool (otherwise only those no longer wanted)."""

    acts: ClassVar[bool] = False
    bids: ClassVar[bool] = False
    releases_all: ClassVar[bool] = False

    @property
    def name(self) -> str:
        return type(self).__name__

    def consume(self, data: Snapshot) -> State:
        return guard(data) or self.next(data)

    def next(self, data: Snapshot) -> State:
        """The next state of a manager that passed ``guard``: healthy, with a working store."""
        return settle(data)

    def acting(self, data: Snapshot) -> frozenset[str]:
        if not (self.acts and data.safe):
            return frozenset()
        return data.held & data.wanted

    def bid(self, data: Snapshot) -> frozenset[str]:
        if not (self.bids and data.store_ok):
            return frozenset()
        return data.wanted - data.held

    def release(self, data: Snapshot) -> frozenset[str]:
        return data.held if self.releases_all else data.held - data.wanted

    def plan(self, data: Snapshot) -> Plan:
        return Plan(acting=self.acting(data), bid=self.bid(data), release=self.release(data))


@dataclass(frozen=True)
class Starting(State):
    pass


@dataclass(frozen=True)
class Standby(State):
    pass


@dataclass(frozen=True)
class Acquiring(State):
    bids = True


@dataclass(frozen=True)
class Active(State):
    acts = True
    bids = True


@dataclass(frozen=True)
class Degraded(State):
    """Acts on its pools while their leases hold; its low score lets healthier managers take them."""

    acts = True
    bids = True

    def next(self, data: Snapshot) -> State:
        return self if data.error_rate >= ERROR_RATE_OK else settle(data)


@dataclass(frozen=True)
class Draining(State):
    releases_all = True

    def consume(self, data: Snapshot) -> State:
        # done once nothing is held, or once what is held can no longer be trusted (its leases expire alone)
        return Stopped() if not data.held or data.expired else self


@dataclass(frozen=True)
class Stopped(State):
    releases_all = True

    def consume(self, data: Snapshot) -> State:
        return self


def guard(data: Snapshot) -> State | None:
    """The checks every running state makes first: a stop, a lost store or lease, ill health."""
    if data.stop_requested:
        return Draining()
    if not data.store_ok or data.expired or data.unhealthy:
        return Degraded()
    return None


def settle(data: Snapshot) -> State:
    """Where a healthy manager with a working store and trusted leases belongs."""
    if data.held & data.wanted:
        return Active()
    if data.wanted - data.held:
        return Acquiring()
    return Standby()


def score(data: Snapshot) -> int:
    """How fit this manager is to run pools, 0..100, published for the spreading (``ha.ownership``).

    0: it takes nothing (stopping, or its store is lost). ``SCORE_UNHEALTHY`` (10): every
    provider is down or the error rate is at least ``ERROR_RATE_HIGH``; it keeps pools only
    when no manager scores at the threshold. Otherwise 100 - 40 x (share of providers down)
    - 30 x error rate - 10 x load, which stays above ``SCORE_UNHEALTHY`` (at least 35).
    """
    if data.stop_requested or not data.store_ok:
        return 0
    if data.unhealthy:
        return SCORE_UNHEALTHY
    down = 1 - data.providers_up / data.providers_total if data.providers_total else 0.0
    value = SCORE_MAX - 40 * down - 30 * clamp(data.error_rate) - 10 * clamp(data.load)
    return max(SCORE_UNHEALTHY + 1, min(SCORE_MAX, round(value)))


def clamp(value: float) -> float:
    return min(1.0, max(0.0, value))
