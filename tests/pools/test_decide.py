"""The pool manager's decisions, as tables: facts in, actions out."""

from __future__ import annotations

import pytest

from corral.domain.events import HostDown, VmCreated, VmDisappeared, VmMoved, VmStateChanged
from corral.domain.models import Pool, ProviderVm, Vm
from corral.domain.states import PowerState, VmState
from corral.pools import decide
from corral.pools.decide import (
    AdoptOrphan,
    CheckReady,
    Destroy,
    EndMigration,
    HandOut,
    HaRestart,
    Level,
    Lost,
    RecordHost,
    RecoveryFacts,
    Refill,
    RemoveSurplus,
    SweepFacts,
    Wait,
)
from corral.pools.refill import Backoff
from corral.providers.base import Cause

POOLS = {
    "a": Pool("a", "tpl", 2, "sim", timeout_s=100.0, ready_ttl_s=50.0),
    "b": Pool("b", "tpl", 1, "sim", timeout_s=100.0, ready_ttl_s=None),
    "ha": Pool("ha", "tpl", 1, "sim", ha=True),
}


def vm(name: str = "v1", state: VmState = VmState.PENDING, **fields: object) -> Vm:
    base: dict[str, object] = {"pool": "a", "template": "tpl", "provider": "sim", "host": "h1", "created_at": 0.0}
    base.update(fields)
    return Vm(name=name, state=state, **base)  # type: ignore[arg-type]


def facts(**changes: object) -> SweepFacts:
    base: dict[str, object] = {"now": 10.0, "check_interval": 5.0, "pools": POOLS,
                               "providers_up": frozenset({"sim"})}
    base.update(changes)
    return SweepFacts(**base)  # type: ignore[arg-type]


# -- the sweep -------------------------------------------------------------------------------
SWEEP_CASES = [
    ("busy VMs are left alone", vm(created_at=-1000), facts(busy=frozenset({"v1"})), []),
    ("VMs of a provider that is down are left alone", vm(created_at=-1000), facts(providers_up=frozenset()), []),
    ("an unfinished destroy is carried out", vm(state=VmState.COMPLETED), facts(),
     [Destroy(vm(state=VmState.COMPLETED))]),
    ("a failed destroy waits its turn", vm(state=VmState.FAILED), facts(destroy_waiting=frozenset({"v1"})), []),
    ("an orphan's destroy is carried out", vm(state=VmState.DISCOVERED), facts(),
     [Destroy(vm(state=VmState.DISCOVERED))]),
    ("a pending VM past its timeout", vm(created_at=-200), facts(),
     [Destroy(vm(created_at=-200), "not ready after 100s")]),
    ("a pending VM of an unknown pool times out at once", vm(pool="gone", created_at=9.0), facts(),
     [Destroy(vm(pool="gone", created_at=9.0), "not ready after 0s")]),
    ("a pending VM the feed said nothing about is probed", vm(created_at=4.0), facts(),
     [CheckReady("v1", ask_provider=True)]),
    ("a fresh pending VM is left to the feed", vm(created_at=8.0), facts(), []),
    ("a pending VM cloned lately (in memory) is left to the feed", vm(created_at=0.0),
     facts(cloned={"v1": 8.0}), []),
    ("a pending VM cloned lately (recorded) is left to the feed", vm(created_at=0.0, cloned_at=8.0), facts(), []),
    ("a ready VM of an on-demand request is handed out", vm(state=VmState.READY, request_id="r1"), facts(),
     [HandOut(vm(state=VmState.READY, request_id="r1"))]),
    ("a ready VM past its TTL", vm(state=VmState.READY, ready_at=-100.0), facts(),
     [Destroy(vm(state=VmState.READY, ready_at=-100.0), "ready_ttl expired")]),
    ("a ready VM within its TTL", vm(state=VmState.READY, ready_at=0.0), facts(), []),
    ("a ready VM of a pool without TTL", vm(pool="b", state=VmState.READY, ready_at=-1e6), facts(), []),
    ("a running VM past its lifetime", vm(state=VmState.RUNNING, checkout_at=0.0, lifetime_s=5.0), facts(),
     [Destroy(vm(state=VmState.RUNNING, checkout_at=0.0, lifetime_s=5.0), "lifetime expired")]),
    ("a migrating VM past its lifetime", vm(state=VmState.MIGRATING, checkout_at=0.0, lifetime_s=5.0), facts(),
     [Destroy(vm(state=VmState.MIGRATING, checkout_at=0.0, lifetime_s=5.0), "lifetime expired")]),
    ("a running VM within its lifetime", vm(state=VmState.RUNNING, checkout_at=0.0, lifetime_s=50.0), facts(), []),
]


@pytest.mark.parametrize(("record", "snapshot", "expected"), [c[1:] for c in SWEEP_CASES],
                         ids=[c[0] for c in SWEEP_CASES])
def test_sweep(record: Vm, snapshot: SweepFacts, expected: list[decide.Action]) -> None:
    assert decide.sweep([record], snapshot) == expected


# -- reactions -------------------------------------------------------------------------------
def up(name: str = "v1") -> VmStateChanged:
    return VmStateChanged(1.0, "sim", name, "a", "h1", old=PowerState.BOOTING, new=PowerState.UP)


def off(name: str = "v1") -> VmStateChanged:
    return VmStateChanged(1.0, "sim", name, "a", "h1", old=PowerState.UP, new=PowerState.OFF)


REACT_CASES = [
    ("a guest that came up is checked", up(), None, False, [CheckReady("v1", ask_provider=False, provider="sim")]),
    ("a VM created already up is checked", VmCreated(1.0, "sim", "v1", "a", "h1", state=PowerState.UP), None, False,
     [CheckReady("v1", ask_provider=False, provider="sim")]),
    ("a VM created off is nothing yet", VmCreated(1.0, "sim", "v1", "a", "h1", state=PowerState.OFF), None, False, []),
    ("a booting VM is nothing yet",
     VmStateChanged(1.0, "sim", "v1", "a", "h1", old=PowerState.OFF, new=PowerState.BOOTING), None, False, []),
    ("a ready VM powered off is destroyed", off(), vm(state=VmState.READY), False,
     [Destroy(vm(state=VmState.READY), "powered off at the provider")]),
    ("a busy ready VM powered off is left alone", off(), vm(state=VmState.READY), True, []),
    ("a running VM powered off is its user's", off(), vm(state=VmState.RUNNING), False, []),
    ("an unknown VM powered off", off(), None, False, []),
    ("a live VM that vanished is lost", VmDisappeared(1.0, "sim", "v1", "a", "h1"), vm(state=VmState.RUNNING), False,
     [Lost(vm(state=VmState.RUNNING), "vanished at the provider")]),
    ("a busy VM that vanished is left alone", VmDisappeared(1.0, "sim", "v1", "a", "h1"), vm(), True, []),
    ("a VM being destroyed that vanished", VmDisappeared(1.0, "sim", "v1", "a", "h1"), vm(state=VmState.COMPLETED),
     False, []),
    ("an unknown VM that vanished", VmDisappeared(1.0, "sim", "v1", "a", "h1"), None, False, []),
    ("a moved VM gets its host", VmMoved(1.0, "sim", "v1", "a", "h2", old_host="h1"), vm(), False,
     [RecordHost("v1", "h2")]),
    ("a move the record knows already", VmMoved(1.0, "sim", "v1", "a", "h1", old_host="h0"), vm(), False, []),
    ("a moved VM that is being destroyed", VmMoved(1.0, "sim", "v1", "a", "h2", old_host="h1"),
     vm(state=VmState.COMPLETED), False, []),
]


@pytest.mark.parametrize(("event", "record", "busy", "expected"), [c[1:] for c in REACT_CASES],
                         ids=[c[0] for c in REACT_CASES])
def test_react(event: object, record: Vm | None, busy: bool, expected: list[decide.Action]) -> None:
    assert decide.react(event, record, busy) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(("event", "busy", "needed"), [
    (up(), False, False), (off(), False, True), (off(), True, False),
    (VmDisappeared(1.0, "sim", "v", None, "h"), False, True), (VmDisappeared(1.0, "sim", "v", None, "h"), True, False),
    (VmMoved(1.0, "sim", "v", None, "h", old_host="g"), False, True),
    (VmMoved(1.0, "sim", "v", None, "h", old_host="g"), True, True),
    (HostDown(1.0, "sim", "h", "gone"), False, False)])
def test_which_events_need_the_record(event: object, busy: bool, needed: bool) -> None:
    assert decide.needs_record(event, busy) is needed  # type: ignore[arg-type]


DOWN = HostDown(1.0, "sim", "h1", "not responding")
HOST_DOWN_CASES = [
    ("ready and pending VMs are dropped", [vm("p"), vm("r", VmState.READY)], frozenset(),
     [Destroy(vm("p"), "host h1 down"), Destroy(vm("r", VmState.READY), "host h1 down")]),
    ("busy VMs are left alone", [vm("p")], frozenset({"p"}), []),
    ("a checked-out VM of an HA pool is restarted elsewhere", [vm("x", VmState.RUNNING, pool="ha")], frozenset(),
     [HaRestart(vm("x", VmState.RUNNING, pool="ha"), POOLS["ha"], "h1")]),
    ("a checked-out VM of another pool is its user's", [vm("x", VmState.RUNNING)], frozenset(), []),
    ("a checked-out VM recorded on another host", [vm("x", VmState.RUNNING, pool="ha", host="h2")], frozenset(), []),
    ("a checked-out VM of a pool no longer configured", [vm("x", VmState.RUNNING, pool="gone")], frozenset(), []),
    ("VMs being destroyed", [vm("c", VmState.COMPLETED)], frozenset(), []),
]


@pytest.mark.parametrize(("records", "busy", "expected"), [c[1:] for c in HOST_DOWN_CASES],
                         ids=[c[0] for c in HOST_DOWN_CASES])
def test_host_down(records: list[Vm], busy: frozenset[str], expected: list[decide.Action]) -> None:
    assert decide.host_down(DOWN, records, busy, POOLS) == expected


# -- recovery ----------------------------------------------------------------------------------
RF = RecoveryFacts(pools=frozenset(POOLS))
RECOVER_CASES = [
    ("an unfinished destroy is finished", [vm(state=VmState.COMPLETED)], [], RF,
     [Destroy(vm(state=VmState.COMPLETED))], {"finished": 1}),
    ("a failed destroy waits its turn", [vm(state=VmState.FAILED)], [],
     RecoveryFacts(pools=frozenset(POOLS), destroy_waiting=frozenset({"v1"})), [], {}),
    ("a VM the provider lacks is lost", [vm(state=VmState.READY)], [], RF,
     [Lost(vm(state=VmState.READY), "not found at the provider")], {"lost": 1}),
    ("busy VMs are left alone", [vm(state=VmState.READY)], [],
     RecoveryFacts(pools=frozenset(POOLS), busy=frozenset({"v1"})), [], {}),
    ("records newer than the snapshot are left alone", [vm(state=VmState.READY, created_at=5.0)], [],
     RecoveryFacts(pools=frozenset(POOLS), taken_at=5.0), [], {}),
    ("a VM cloned after the snapshot is left alone", [vm(created_at=1.0)], [],
     RecoveryFacts(pools=frozenset(POOLS), taken_at=5.0, cloned={"v1": 6.0}), [], {}),
    ("an interrupted migration ends where the VM is", [vm(state=VmState.MIGRATING)], [ProviderVm("v1", "h2", None)], RF,
     [EndMigration(vm(state=VmState.MIGRATING), "h2")], {}),
    ("a VM on another host gets its host", [vm(state=VmState.RUNNING)], [ProviderVm("v1", "h2", None)], RF,
     [RecordHost("v1", "h2")], {"moved": 1}),
    ("a pending VM already up is checked", [vm()], [ProviderVm("v1", "h1", None, guest_ready=True)], RF,
     [CheckReady("v1", ask_provider=False)], {"booted": 1}),
    ("a pending VM still booting", [vm()], [ProviderVm("v1", "h1", None)], RF, [], {}),
    ("a pending VM powered off", [vm()], [ProviderVm("v1", "h1", None, powered_on=False, guest_ready=True)], RF,
     [], {}),
    ("a moved pending VM already up", [vm()], [ProviderVm("v1", "h2", None, guest_ready=True)], RF,
     [RecordHost("v1", "h2"), CheckReady("v1", ask_provider=False)], {"moved": 1, "booted": 1}),
    ("a VM of our pool unknown to the store is an orphan", [], [ProviderVm("o", "h1", pool="a")], RF,
     [AdoptOrphan(ProviderVm("o", "h1", pool="a"))], {"orphans": 1}),
    ("a busy unknown VM is not an orphan yet", [], [ProviderVm("o", "h1", pool="a")],
     RecoveryFacts(pools=frozenset(POOLS), busy=frozenset({"o"})), [], {}),
    ("VMs of other pools are not ours", [], [ProviderVm("o", "h1", pool="theirs"), ProviderVm("p", "h1", None)], RF,
     [], {}),
]


@pytest.mark.parametrize(("records", "seen", "snapshot", "expected", "counts"), [c[1:] for c in RECOVER_CASES],
                         ids=[c[0] for c in RECOVER_CASES])
def test_recover(records: list[Vm], seen: list[ProviderVm], snapshot: RecoveryFacts, expected: list[decide.Action],
                 counts: dict[str, int]) -> None:
    result = decide.recover(records, seen, snapshot)
    assert list(result.actions) == expected
    got = {k: getattr(result, k) for k in ("finished", "lost", "orphans", "moved", "booted") if getattr(result, k)}
    assert got == counts
    assert result.repaired == sum(v for k, v in counts.items() if k != "finished")


# -- the refill --------------------------------------------------------------------------------
REFILL_CASES = [
    ("a full pool", [Level("a", 2, ready=2)], 10, Refill(()), (), ()),
    ("what a pool lacks", [Level("a", 3, ready=1)], 10, Refill(("a", "a")), (), ()),
    ("pending and queued VMs count", [Level("a", 3, pending=1, waiting=1)], 10, Refill(("a",)), (), ()),
    ("round-robin across pools", [Level("a", 3), Level("b", 1), Level("c", 2)], 10,
     Refill(("a", "b", "c", "a", "c", "a")), (), ()),
    ("the queue's room is shared one per pool", [Level("a", 3), Level("b", 3)], 3, Refill(("a", "b", "a")), (),
     ("a", "b")),
    ("no room at all", [Level("a", 1)], 0, Refill(()), (), ("a",)),
    ("a pool too big", [Level("a", 1, ready=2, pending=1)], 10, Refill(()), (RemoveSurplus("a", 2),), ()),
    ("a pool no longer configured", [Level("gone", 0, ready=1)], 10, Refill(()), (RemoveSurplus("gone", 1),), ()),
    ("a blocked pool is left to the sweep", [Level("a", 3, blocked=True), Level("b", 9, ready=10, blocked=True)], 10,
     Refill(()), (), ()),
]


@pytest.mark.parametrize(("levels", "room", "refill", "surplus", "again"), [c[1:] for c in REFILL_CASES],
                         ids=[c[0] for c in REFILL_CASES])
def test_refill(levels: list[Level], room: int, refill: Refill, surplus: tuple[RemoveSurplus, ...],
                again: tuple[str, ...]) -> None:
    plan = decide.refill(levels, room)
    assert (plan.refill, plan.surplus, plan.again) == (refill, surplus, again)


NEED_REFILL_CASES = [
    ("an empty pool goes first whatever its size", [Level("big", 10, ready=5), Level("small", 2)], 3,
     Refill(("small", "big", "small")), ("big",)),
    ("ready and pending VMs count, queued ones do not", [Level("a", 4, pending=3), Level("b", 4, ready=1, waiting=2)],
     2, Refill(("b", "a")), ()),
    ("expected demand, not the size, once a pool has history",
     [Level("busy", 4, ready=2, expected=8.0), Level("quiet", 4, ready=1, expected=1.0)], 2,
     Refill(("busy", "quiet")), ("busy", "quiet")),
    ("equally needy pools keep their order, one each per round", [Level("b", 2), Level("a", 2)], 3,
     Refill(("b", "a", "b")), ("a",)),
    ("every short pool gets one per round while room allows", [Level("x", 4, ready=3), Level("y", 4)], 4,
     Refill(("y", "x", "y", "y")), ("y",)),
]


@pytest.mark.parametrize(("levels", "room", "refill", "again"), [c[1:] for c in NEED_REFILL_CASES],
                         ids=[c[0] for c in NEED_REFILL_CASES])
def test_refill_serves_the_neediest_first(levels: list[Level], room: int, refill: Refill,
                                          again: tuple[str, ...]) -> None:
    plan = decide.refill(levels, room)
    assert (plan.refill, plan.again) == (refill, again)


@pytest.mark.parametrize(("rate", "ready_s", "size", "expected"), [
    (None, 60.0, 5, 5.0),  # no demand history: the size
    (0.5, 60.0, 5, 30.0),  # rate times replenishment time
    (0.0, 60.0, 5, 0.0),  # history says nobody checks out
    (-1.0, 60.0, 5, 0.0),  # never negative
])
def test_expected_demand(rate: float | None, ready_s: float, size: int, expected: float) -> None:
    assert decide.expected_demand(rate, ready_s, size) == expected


@pytest.mark.parametrize(("stock", "expected", "cover"), [
    (0, 5.0, 0.0),  # dry
    (5, 5.0, 1.0),  # just covered
    (3, 2.0, 1.5),
    (0, 0.0, 0.0),  # an empty pool nobody uses is dry too
    (1, 0.0, 1 / decide.TINY_DEMAND),  # stock nobody is expected to use: far from dry
])
def test_cover(stock: int, expected: float, cover: float) -> None:
    assert decide.cover(stock, expected) == pytest.approx(cover)


def test_refill_counts_per_pool() -> None:
    assert Refill(("a", "b", "a")).count("a") == 2


SURPLUS_CASES = [
    ("the newest pending first, then the oldest ready",
     [vm("p1", created_at=1.0), vm("p2", created_at=2.0)], [vm("r1", VmState.READY, ready_at=5.0),
                                                            vm("r2", VmState.READY, ready_at=3.0)],
     frozenset(), 3, ["p2", "p1", "r2"]),
    ("busy pending VMs are spared", [vm("p1"), vm("p2")], [], frozenset({"p1"}), 2, ["p2"]),
    ("VMs of on-demand requests are never taken", [vm("p1", request_id="r")], [vm("r1", VmState.READY, request_id="r")],
     frozenset(), 2, []),
]


@pytest.mark.parametrize(("pending", "ready", "busy", "n", "expected"), [c[1:] for c in SURPLUS_CASES],
                         ids=[c[0] for c in SURPLUS_CASES])
def test_surplus_victims(pending: list[Vm], ready: list[Vm], busy: frozenset[str], n: int,
                         expected: list[str]) -> None:
    assert [v.name for v in decide.surplus_victims(pending, ready, busy, n)] == expected


BACKOFF_CASES = [
    ("a first failure waits one sweep interval", None, 5.0, Wait(105.0, 5.0)),
    ("then twice the last wait", Wait(0.0, 5.0), 5.0, Wait(110.0, 10.0)),
    ("up to a minute", Wait(0.0, 40.0), 5.0, Wait(160.0, 60.0)),
    ("or one sweep interval if that is longer", Wait(0.0, 90.0), 90.0, Wait(190.0, 90.0)),
    ("a hold-off's wait counts as none", Wait(0.0, 0.0), 5.0, Wait(105.0, 5.0)),
]


@pytest.mark.parametrize(("previous", "interval", "expected"), [c[1:] for c in BACKOFF_CASES],
                         ids=[c[0] for c in BACKOFF_CASES])
def test_clone_failure_backoff(previous: Wait | None, interval: float, expected: Wait) -> None:
    assert decide.after_clone_failure(previous, 100.0, interval) == expected


@pytest.mark.parametrize(("previous", "expected"), [(None, Wait(105.0, 0.0)), (Wait(0.0, 20.0), Wait(105.0, 20.0))])
def test_hold_off_waits_one_interval_and_keeps_the_last_wait(previous: Wait | None, expected: Wait) -> None:
    assert decide.hold_off(previous, 100.0, 5.0) == expected


@pytest.mark.parametrize(("cause", "cap"), [
    (None, decide.BACKOFF_MAX_S), (Cause.INJECTED, decide.BACKOFF_MAX_S), (Cause.HOST, decide.BACKOFF_MAX_S),
    (Cause.UNREACHABLE, decide.ENDPOINT_BACKOFF_MAX_S), (Cause.SESSION, decide.ENDPOINT_BACKOFF_MAX_S),
])
def test_clones_failing_for_the_endpoint_wait_seconds_not_a_minute(cause: Cause | None, cap: float) -> None:
    clock = [100.0]
    backoff = Backoff(0.05, clock=lambda: clock[0])
    for _ in range(20):  # a long outage: the pool's wait doubles up to the cap, no further
        backoff.clone_outcome("p", False, cause)
    assert backoff.backing_off("p")
    clock[0] += cap
    assert not backoff.backing_off("p")
