"""The pool manager's decisions: facts in, actions out. Pure: no I/O, no clock, no sleeps.

Each loop (:mod:`~corral.pools.sweep`, :mod:`~corral.pools.reactions`,
:mod:`~corral.pools.recovery`, :mod:`~corral.pools.refill`) reads a snapshot of what it needs,
asks one function here what to do, and hands the actions to the executor
(:mod:`corral.pools.execute`) or, for the refill, to the runner.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from corral.domain.events import Event, HostDown, VmCreated, VmDisappeared, VmMoved, VmStateChanged
from corral.domain.models import Pool, ProviderVm, Vm
from corral.domain.states import DESTROY_INTENT_STATES, LIVE_STATES, PowerState, VmState

BACKOFF_MAX_S = 60.0  # clones of a pool that keep failing wait at most this long (or one sweep interval)
# ... and this long when the endpoint could not be reached (the pool is fine: it goes on
# within seconds of the endpoint's return); so do destroys that failed so
ENDPOINT_BACKOFF_MAX_S = 5.0


# -- actions ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Destroy:
    """Record the destroy intent of ``vm`` (with ``reason``, if any) and destroy it."""

    vm: Vm
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    """``vm`` is gone at the provider without corral destroying it: count it and close its record."""

    vm: Vm
    reason: str


@dataclass(frozen=True, slots=True)
class CheckReady:
    """See whether the pending VM ``vm`` is reachable; ``ask_provider`` False when the feed said so."""

    vm: str
    ask_provider: bool
    provider: str | None = None


@dataclass(frozen=True, slots=True)
class RecordHost:
    """The VM runs on ``host`` now."""

    vm: str
    host: str


@dataclass(frozen=True, slots=True)
class EndMigration:
    """A crash came during a migration: the VM stays ``running`` on ``host``, where it is."""

    vm: Vm
    host: str


@dataclass(frozen=True, slots=True)
class HandOut:
    """A ready VM of an on-demand request: hand it to the requester."""

    vm: Vm


@dataclass(frozen=True, slots=True)
class HaRestart:
    """Start the checked-out ``vm`` of the HA pool ``pool`` on another host than ``avoid``."""

    vm: Vm
    pool: Pool
    avoid: str


@dataclass(frozen=True, slots=True)
class AdoptOrphan:
    """``vm`` is in a pool of ours but unknown to the store: record it ``discovered`` and destroy it."""

    vm: ProviderVm


@dataclass(frozen=True, slots=True)
class RemoveSurplus:
    """``pool`` has ``n`` VMs more than its size."""

    pool: str
    n: int


@dataclass(frozen=True, slots=True)
class Refill:
    """Create one VM per entry of ``pools``, in that order (round-robin across the pools, neediest first)."""

    pools: tuple[str, ...]

    def count(self, pool: str) -> int:
        return self.pools.count(pool)


Action = Destroy | Lost | CheckReady | RecordHost | EndMigration | HandOut | HaRestart | AdoptOrphan


def made_at(vm: Vm, cloned: Mapping[str, float]) -> float:
    """When ``vm`` was made: its create call's return (stored, or in ``cloned`` until it is ready), or
    else the intent to create it."""
    return vm.cloned_at or cloned.get(vm.name) or vm.created_at


# -- the sweep -------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class SweepFacts:
    now: float  # unix seconds
    check_interval: float
    pools: Mapping[str, Pool]
    busy: frozenset[str] = frozenset()  # VMs with a step under way
    providers_up: frozenset[str] = frozenset()
    destroy_waiting: frozenset[str] = frozenset()  # failed destroys whose wait is not over
    cloned: Mapping[str, float] = field(default_factory=dict)  # create call returned, not yet stored


def sweep(records: Sequence[Vm], facts: SweepFacts) -> list[Action]:
    """What the safety-net sweep does about each live or to-be-destroyed record."""
    actions: list[Action] = []
    now = facts.now
    for vm in records:
        if vm.name in facts.busy or vm.provider not in facts.providers_up:
            continue  # a provider that is down: its VMs are recovered when it is back
        pool = facts.pools.get(vm.pool)
        if vm.state in DESTROY_INTENT_STATES:
            if vm.name not in facts.destroy_waiting:
                actions.append(Destroy(vm))  # a failed destroy waits its turn
        elif vm.state is VmState.PENDING:
            timeout = pool.timeout_s if pool else 0.0
            if now - vm.created_at > timeout:
                actions.append(Destroy(vm, f"not ready after {timeout:.0f}s"))
            elif now - made_at(vm, facts.cloned) >= facts.check_interval:
                actions.append(CheckReady(vm.name, ask_provider=True))  # the feed said nothing for a while
        elif vm.state is VmState.READY and vm.request_id is not None:
            actions.append(HandOut(vm))  # a crash came between ready and handing it out
        elif vm.state is VmState.READY:
            ttl = pool.ready_ttl_s if pool else None
            if ttl is not None and vm.ready_at is not None and now - vm.ready_at > ttl:
                actions.append(Destroy(vm, "ready_ttl expired"))
        elif vm.checkout_at is not None and vm.lifetime_s is not None and now - vm.checkout_at > vm.lifetime_s:
            actions.append(Destroy(vm, "lifetime expired"))
    return actions


# -- reactions to inventory events -------------------------------------------------------------
HANDLED = (VmCreated, VmStateChanged, VmDisappeared, VmMoved, HostDown)


def needs_record(event: Event, busy: bool) -> bool:
    """Whether :func:`react` needs the VM's record for ``event`` (a guest that came up does not, nor
    a power-off or a disappearance of a VM that is ``busy``: those are left to the step under way)."""
    if isinstance(event, (VmCreated, VmStateChanged)):
        return not busy and (event.state if isinstance(event, VmCreated) else event.new) is PowerState.OFF
    return isinstance(event, VmMoved) or (isinstance(event, VmDisappeared) and not busy)


def react(event: Event, record: Vm | None, busy: bool) -> list[Action]:
    """What an inventory event about one VM asks for; ``record`` is the VM's record, if any.

    A :class:`HostDown` concerns many VMs: see :func:`host_down`.
    """
    if isinstance(event, (VmCreated, VmStateChanged)):
        state = event.state if isinstance(event, VmCreated) else event.new
        if state is PowerState.UP:
            return [CheckReady(event.vm, ask_provider=False, provider=event.provider)]
        if state is PowerState.OFF and record is not None and record.state is VmState.READY and not busy:
            return [Destroy(record, "powered off at the provider")]
    elif isinstance(event, VmDisappeared):
        if not busy and record is not None and record.state in LIVE_STATES:
            return [Lost(record, "vanished at the provider")]
    elif isinstance(event, VmMoved):
        if record is not None and record.state in LIVE_STATES and record.host != event.host:
            return [RecordHost(event.vm, event.host)]
    return []


def host_down(event: HostDown, records: Sequence[Vm], busy: frozenset[str], pools: Mapping[str, Pool]) -> list[Action]:
    """Drop the ready and pending VMs on a dead host (refill replaces them); restart its
    checked-out VMs of HA pools elsewhere. ``records``: the records of the VMs on the host."""
    actions: list[Action] = []
    for record in records:
        if record.name in busy:
            continue
        if record.state in (VmState.READY, VmState.PENDING):
            actions.append(Destroy(record, f"host {event.host} down"))
        elif record.state is VmState.RUNNING and record.host == event.host:
            pool = pools.get(record.pool)
            if pool is not None and pool.ha:
                actions.append(HaRestart(record, pool, event.host))
    return actions


# -- recovery ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class RecoveryFacts:
    pools: frozenset[str]  # the configured pools of this provider's service
    taken_at: float | None = None  # when the snapshot was read; None: at start, before anything ran
    busy: frozenset[str] = frozenset()
    destroy_waiting: frozenset[str] = frozenset()  # failed destroys whose wait is not over
    cloned: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Recovery:
    actions: tuple[Action, ...]
    finished: int = 0  # unfinished destroys carried out (not drift)
    lost: int = 0
    orphans: int = 0
    moved: int = 0
    booted: int = 0

    @property
    def repaired(self) -> int:
        """Records that disagreed with the provider."""
        return self.lost + self.orphans + self.moved + self.booted


def recover(records: Sequence[Vm], seen: Sequence[ProviderVm], facts: RecoveryFacts) -> Recovery:
    """Make the store (``records``: one provider's active records) agree with ``seen``, the
    provider's full inventory. Records newer than the snapshot, and busy VMs, are left alone."""
    present = {v.name: v for v in seen}
    actions: list[Action] = []
    finished = lost = moved = booted = 0
    for record in records:
        if record.name in facts.busy:
            continue
        created = made_at(record, facts.cloned)
        if facts.taken_at is not None and created >= facts.taken_at:
            continue
        vm = present.get(record.name)
        if record.state in DESTROY_INTENT_STATES:
            if record.name not in facts.destroy_waiting:  # a failed destroy waits its turn
                finished += 1
                actions.append(Destroy(record))
        elif vm is None:
            lost += 1
            actions.append(Lost(record, "not found at the provider"))
        else:
            if record.state is VmState.MIGRATING:
                actions.append(EndMigration(record, vm.host))
            elif vm.host != record.host:
                moved += 1
                actions.append(RecordHost(record.name, vm.host))
            if record.state is VmState.PENDING and vm.powered_on and vm.guest_ready:
                booted += 1
                actions.append(CheckReady(record.name, ask_provider=False))
    known = {r.name for r in records}
    orphans = [AdoptOrphan(v) for v in seen if v.pool in facts.pools and v.name not in known
               and v.name not in facts.busy]
    actions += orphans
    return Recovery(tuple(actions), finished, lost, len(orphans), moved, booted)


# -- the refill --------------------------------------------------------------------------------
TINY_DEMAND = 1e-6  # expected demand is never taken as less than this (no division by zero)


def expected_demand(rate: float | None, ready_s: float, size: int) -> float:
    """Checkouts expected during one replenishment: ``rate`` (per second) times ``ready_s`` (seconds
    to make a ready VM); a pool with no demand history (``rate`` None) expects its ``size``."""
    if rate is None:
        return float(size)
    return max(rate, 0.0) * max(ready_s, 0.0)


def cover(stock: int, expected: float) -> float:
    """How far a pool's stock (ready VMs and those on the way) covers the demand expected during one
    replenishment: 0 is dry, 1 just covered. The lower, the needier; an empty pool is the neediest of all."""
    return max(stock, 0) / max(expected, TINY_DEMAND)


@dataclass(frozen=True, slots=True)
class Level:
    """One pool as the refill sees it."""

    pool: str
    size: int  # 0 for a pool no longer configured
    ready: int = 0
    pending: int = 0
    waiting: int = 0  # VMs the runner holds for the pool and has not recorded yet
    blocked: bool = False  # backing off, or its provider is down: the sweep looks again
    expected: float | None = None  # checkouts expected during one replenishment; None: no history, the size

    @property
    def level(self) -> int:
        return self.ready + self.pending + self.waiting

    @property
    def cover(self) -> float:
        """:func:`cover` of the VMs the pool has or has on the way (not those still queued)."""
        expected = expected_demand(None, 0.0, self.size) if self.expected is None else self.expected
        return cover(self.ready + self.pending, expected)


@dataclass(frozen=True, slots=True)
class RefillPlan:
    refill: Refill
    surplus: tuple[RemoveSurplus, ...] = ()
    again: tuple[str, ...] = ()  # pools still short once the queue was full: look again later


def shortfall(levels: Sequence[Level]) -> tuple[tuple[RemoveSurplus, ...], dict[str, int]]:
    """The pools with too many VMs, and how many each pool lacks (blocked pools left out)."""
    surplus: list[RemoveSurplus] = []
    deficits: dict[str, int] = {}
    for lv in levels:
        if lv.blocked:
            continue
        if lv.level > lv.size:
            surplus.append(RemoveSurplus(lv.pool, lv.level - lv.size))
        elif lv.level < lv.size:
            deficits[lv.pool] = lv.size - lv.level
    return tuple(surplus), deficits


def share(deficits: Mapping[str, int], room: int, covers: Mapping[str, float] | None = None,
          ) -> tuple[Refill, tuple[str, ...]]:
    """The VMs to ask for within ``room``, one per pool per round so that no pool starves another,
    each round neediest first (lowest of ``covers``; equally needy pools in the order given), and
    the pools still short after."""
    order = list(deficits)
    if covers is not None:
        order.sort(key=lambda name: covers.get(name, 0.0))  # stable: ties keep their order
    left = {name: deficits[name] for name in order}
    wanted: list[str] = []
    while room > 0 and left:
        for name in list(left):
            if room == 0:
                break
            wanted.append(name)
            room -= 1
            left[name] -= 1
            if left[name] == 0:
                del left[name]
    return Refill(tuple(wanted)), tuple(left)


def refill(levels: Sequence[Level], room: int) -> RefillPlan:
    """:func:`shortfall` then :func:`share`: the whole refill round with ``room`` in the queue."""
    surplus, deficits = shortfall(levels)
    wanted, again = share(deficits, room, {lv.pool: lv.cover for lv in levels})
    return RefillPlan(wanted, surplus, again)


def surplus_victims(pending: Sequence[Vm], ready: Sequence[Vm], busy: frozenset[str], n: int) -> list[Vm]:
    """Which ``n`` VMs of a pool too big to destroy: the newest idle pending ones first, then the
    oldest ready ones; VMs of on-demand requests never."""
    candidates = [v for v in pending if v.name not in busy and v.request_id is None]
    candidates.sort(key=lambda v: v.created_at, reverse=True)
    candidates += sorted((v for v in ready if v.request_id is None), key=lambda v: v.ready_at or 0)
    return candidates[:n]


@dataclass(frozen=True, slots=True)
class Wait:
    """A pool's clones wait until ``until`` (monotonic seconds); ``delay`` was the wait."""

    until: float
    delay: float


def after_clone_failure(previous: Wait | None, now: float, check_interval: float,
                        cap: float = BACKOFF_MAX_S) -> Wait:
    """A clone failed: wait one sweep interval, then twice the last wait, up to ``cap``."""
    last = previous.delay if previous is not None else 0.0
    delay = min(max(last * 2, check_interval), max(cap, check_interval))
    return Wait(now + delay, delay)


def hold_off(previous: Wait | None, now: float, check_interval: float) -> Wait:
    """No host can take the pool's VMs: ask again after one sweep interval (the last wait kept)."""
    return Wait(now + check_interval, previous.delay if previous is not None else 0.0)
