"""The ledger: compare-and-set moves with their events, in-flight marks, destroy as intent → call → result."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.domain.events import Event, VmLifecycle
from corral.domain.models import TimingKind, Vm
from corral.domain.states import VmState
from corral.pools.ledger import DESTROY_INTENT, Ledger
from corral.pools.stats import Stats
from corral.providers.base import ProviderError, VmNotFound
from corral.store.base import StoreUnavailable
from corral.store.sqlite import SqliteStore


class Provider:
    """Destroys VMs; remembers the state of the record when each call came."""

    def __init__(self, store: SqliteStore, error: ProviderError | None = None) -> None:
        self.store = store
        self.error = error
        self.seen: list[VmState | None] = []

    async def destroy_vm(self, name: str) -> None:
        record = self.store.get_vm(name)
        self.seen.append(record.state if record else None)
        if self.error is not None:
            raise self.error


class Books:
    def __init__(self, tmp_path: Path, *, error: ProviderError | None = None, queued: bool = False,
                 withdraw: bool = True) -> None:
        self.store = SqliteStore(tmp_path / "corral.db")
        self.provider = Provider(self.store, error)
        self.events: list[Event] = []
        self.changed: list[str] = []
        self.spawned: list[str] = []
        self.stats = Stats()
        self.ledger = Ledger(self.store, {"sim": self.provider}, self.events.append, lambda: 100.0,  # type: ignore[dict-item]
                             self.stats, retry_first_s=5.0, spawn=self._spawn, pool_changed=self.changed.append,
                             queued=lambda name: queued, withdraw=lambda name: withdraw)

    def _spawn(self, coro: object, name: str) -> None:
        self.spawned.append(name)
        coro.close()  # type: ignore[attr-defined]

    def add(self, name: str = "v1", state: VmState = VmState.PENDING) -> Vm:
        """A record of ``name`` brought to ``state`` along the lifecycle."""
        vm: Vm | None = Vm(name=name, pool="a", template="tpl", provider="sim", host="h1", created_at=1.0)
        assert vm is not None
        self.store.add_vm(vm)
        for src, dst in zip(PATH[state], PATH[state][1:], strict=False):
            vm = self.store.transition(name, (src,), dst)
        assert vm is not None and vm.state is state
        return vm


PATH = {
    VmState.PENDING: (VmState.PENDING,),
    VmState.FAILED: (VmState.PENDING, VmState.FAILED),
    VmState.READY: (VmState.PENDING, VmState.READY),
    VmState.RUNNING: (VmState.PENDING, VmState.READY, VmState.RUNNING),
    VmState.COMPLETED: (VmState.PENDING, VmState.READY, VmState.RUNNING, VmState.COMPLETED),
}


@pytest.fixture
def books(tmp_path: Path) -> Books:
    return Books(tmp_path)


def lifecycle(events: list[Event]) -> list[tuple[VmState | None, VmState]]:
    return [(e.old, e.new) for e in events if isinstance(e, VmLifecycle)]


def test_a_move_is_compare_and_set_and_published(books: Books) -> None:
    books.add()
    assert books.ledger.move("v1", (VmState.READY,), VmState.RUNNING) is None  # not ready: nothing moves
    moved = books.ledger.move("v1", (VmState.PENDING,), VmState.READY, note="up", ready_at=5.0)
    assert moved is not None and moved.ready_at == 5.0
    assert lifecycle(books.events) == [(VmState.PENDING, VmState.READY)]
    assert books.events[0].reason == "up"  # type: ignore[attr-defined]


def test_a_silent_move_publishes_nothing(books: Books) -> None:
    books.add()
    assert books.ledger.move("v1", (VmState.PENDING,), VmState.READY, publish=False) is not None
    assert books.events == []


@pytest.mark.parametrize(("start", "intent"), [(VmState.PENDING, VmState.FAILED), (VmState.READY, VmState.COMPLETED),
                                               (VmState.RUNNING, VmState.COMPLETED),
                                               (VmState.COMPLETED, VmState.COMPLETED)])
async def test_the_intent_is_recorded_before_the_provider_is_called(tmp_path: Path, start: VmState,
                                                                   intent: VmState) -> None:
    books = Books(tmp_path)
    vm = books.add(state=start)
    assert DESTROY_INTENT[start] is intent
    assert await books.ledger.destroy(vm, reason="because")
    assert books.provider.seen == [intent]
    record = books.store.get_vm("v1")
    assert record is not None and record.state is VmState.DESTROYED
    assert books.stats.destroyed == 1
    assert lifecycle(books.events)[-1] == (intent, VmState.DESTROYED)
    if start is not intent:
        assert record.reason == "because" and books.changed == ["a"]


async def test_a_vm_gone_already_is_recorded_destroyed(tmp_path: Path) -> None:
    books = Books(tmp_path, error=VmNotFound("v1"))
    assert not await books.ledger.destroy(books.add(state=VmState.READY))
    record = books.store.get_vm("v1")
    assert record is not None and record.state is VmState.DESTROYED


async def test_a_failed_destroy_keeps_the_intent_and_waits(tmp_path: Path) -> None:
    books = Books(tmp_path, error=ProviderError("busy"))
    vm = books.add(state=VmState.READY)
    assert not await books.ledger.destroy(vm)
    record = books.store.get_vm("v1")
    assert record is not None and record.state is VmState.COMPLETED
    assert "v1" in books.ledger.destroys.failures
    assert books.ledger.destroy_waiting(["v1"]) == frozenset({"v1"})
    assert not await books.ledger.destroy(record)  # its wait is not over: no call
    assert len(books.provider.seen) == 1
    assert books.ledger.retry_destroy("v1") and books.spawned == ["destroy-v1"]  # asked for again: now


@pytest.mark.parametrize(("queued", "withdraw", "called"), [(False, True, True), (True, False, False)])
async def test_work_the_runner_has_sent_is_not_destroyed_under_it(tmp_path: Path, queued: bool, withdraw: bool,
                                                                  called: bool) -> None:
    books = Books(tmp_path, queued=queued, withdraw=withdraw)
    await books.ledger.destroy(books.add())
    assert bool(books.provider.seen) is called


async def test_a_vm_held_by_a_step_is_busy_and_not_destroyed(books: Books) -> None:
    vm = books.add()
    with books.ledger.holding("v1"):
        assert books.ledger.busy("v1")
        assert not await books.ledger.destroy(vm)
    assert not books.ledger.busy("v1")
    assert books.provider.seen == []


def test_a_clone_reset_meanwhile_is_destroyed_when_it_returns(books: Books) -> None:
    books.ledger.clone_started("v1")
    books.ledger.clone_started("v2")
    assert books.ledger.busy("v1") and books.ledger.clones_in_flight == 2
    books.ledger.destroy_when_cloned("v1")
    assert books.ledger.clone_ended("v1") is True
    assert books.ledger.clone_ended("v2") is False
    assert books.ledger.clones_in_flight == 0


def test_the_clone_time_is_written_with_the_move_to_ready(books: Books) -> None:
    books.add()
    books.ledger.cloned("v1", 50.0)
    assert dict(books.ledger.clone_times()) == {"v1": 50.0}
    done = books.ledger.mark_ready("v1", "10.0.0.1")
    assert done is not None and done.cloned_at == 50.0 and done.ready_at == 100.0 and done.ip == "10.0.0.1"
    assert dict(books.ledger.clone_times()) == {}
    books.ledger.flush_timings()
    assert books.store.durations(TimingKind.BOOT, 0.0, 1000.0) == [(100.0, "a", 99.0)]


def test_timings_wait_for_the_flush_however_many_and_a_failed_flush_keeps_them(
        books: Books, monkeypatch: pytest.MonkeyPatch) -> None:
    for i in range(2500):  # an outcome is never held up by a write of statistics
        books.ledger.timing(TimingKind.CLONE, "a", f"v{i}", 1.0, 10.0)
    assert books.store.durations(TimingKind.CLONE, 0.0, 1000.0) == []

    def locked(rows: object) -> None:
        raise StoreUnavailable("locked")

    monkeypatch.setattr(books.store, "record_durations", locked)
    with pytest.raises(StoreUnavailable):
        books.ledger.flush_timings()
    monkeypatch.undo()
    books.ledger.flush_timings()
    assert len(books.store.durations(TimingKind.CLONE, 0.0, 1000.0)) == 2500
