"""The pool manager on a store that cannot take writes (the sqlite file locked by another
connection): it calls no provider for a VM it cannot record, keeps the works it could not
record (none leaks), says so once, and fills the pool once the lock is released. A write made
whose answer was lost, an outcome the store cannot take, and a write the store refuses leave
no clone in flight for ever and no pool short."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections import Counter

import pytest

from corral.domain.states import VmState
from corral.pools.outage import Change, StoreOutage, on_failure, on_success
from corral.store.base import Fenced, StoreError, StoreUnavailable
from corral.store.redis import RedisStore
from corral.store.sqlite import SqliteStore
from helpers import eventually, ready_counts, sim_settings


@pytest.mark.parametrize(("since", "change"), [(None, Change(started=True)), (5.0, Change())])
def test_a_failure_starts_an_outage_unless_one_is_under_way(since: float | None, change: Change) -> None:
    assert on_failure(since) == change


@pytest.mark.parametrize(("since", "now", "change"), [
    (None, 9.0, Change()), (5.0, 9.0, Change(ended_after_s=4.0)), (9.5, 9.0, Change(ended_after_s=0.0))])
def test_a_sweep_that_completes_ends_the_outage(since: float | None, now: float, change: Change) -> None:
    assert on_success(since, now) == change


def test_an_outage_is_counted_once_and_ends_with_its_length(caplog: pytest.LogCaptureFixture) -> None:
    now = [100.0]
    outage = StoreOutage(clock=lambda: now[0])
    caplog.set_level(logging.INFO, logger="corral.pool")
    outage.succeeded()
    assert outage.view().available and outage.outages == 0
    for step in ("refill", "sweep", "record"):
        outage.failed(StoreUnavailable("the store is locked"), step)
    now[0] = 104.0
    view = outage.view()
    assert (view.available, view.outages, view.unavailable_s, view.writes_refused, view.error) == (
        False, 1, 4.0, 3, "the store is locked")
    outage.succeeded()
    view = outage.view()
    assert (view.available, view.outages, view.last_outage_s, view.error) == (True, 1, 4.0, None)
    said = [r.getMessage() for r in caplog.records]
    assert sum("manager pauses" in m for m in said) == 1 and sum("available again" in m for m in said) == 1


async def test_no_vm_is_created_that_cannot_be_recorded_and_the_pool_fills_after(harness, pool_factory, caplog):
    caplog.set_level(logging.INFO, logger="corral")
    harness.store.close()
    harness.store = SqliteStore(harness.tmp_path / "corral.db", lock_wait_s=0.2)
    manager = await harness.start([pool_factory("p", 0)])
    sim = harness.provider
    other = sqlite3.connect(harness.tmp_path / "corral.db", isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    manager.set_pool_size("p", 6)
    await eventually(lambda: not manager.outage.available, 10)
    await asyncio.sleep(0.5)  # the runner tries again meanwhile (every 20 ms here)
    assert not [c for c in sim.call_log if c.op == "create"], "a create call whose record was not written"
    assert manager.runner.waiting("p") == 6  # kept, not lost nor counted twice
    other.execute("COMMIT")
    other.close()
    await eventually(lambda: ready_counts(harness.store).get("p", 0) == 6, 10)
    await eventually(lambda: manager.outage.available, 5)
    assert manager.runner.waiting("p") == 0
    created = {n for c in sim.call_log if c.op == "create" for n in c.names}
    assert created == {v.name for v in harness.store.list_vms(pool="p")}
    view = manager.outage.view()
    assert view.outages == 1 and view.last_outage_s is not None and view.writes_refused >= 6
    assert manager.runner.stats.not_recorded >= 6
    said = [r.getMessage() for r in caplog.records]
    assert sum("manager pauses" in m for m in said) == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], "an outage is no error"


class LostReply:
    """A store whose first write of new records is made but answered with StoreUnavailable (the
    connection dropped before the reply came)."""

    lost = 1

    def add_vms(self, vms):
        super().add_vms(vms)  # type: ignore[misc]
        if self.lost:
            self.lost -= 1
            raise StoreUnavailable("the connection dropped before the reply")


class SqliteLostReply(LostReply, SqliteStore):
    pass


class RedisLostReply(LostReply, RedisStore):
    pass


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
async def test_an_intent_written_whose_answer_is_lost_is_cloned_on_the_next_try(harness, pool_factory, request, kind):
    harness.store.close()
    if kind == "sqlite":
        harness.store = SqliteLostReply(harness.tmp_path / "corral.db")
    else:
        server = request.getfixturevalue("redis_server")
        harness.store = RedisLostReply("127.0.0.1", server.port, site=request.getfixturevalue("redis_site"))
    manager = await harness.start([pool_factory("p", 3)])
    await harness.wait_full()
    assert harness.store.lost == 0 and manager.runner.stats.not_recorded >= 1, "no reply was lost"
    records = harness.store.list_vms(pool="p")
    assert [v.state for v in records] == [VmState.READY] * 3, "a pending record left without its clone"
    created = [n for c in harness.provider.call_log if c.op == "create" for n in c.names]
    assert sorted(created) == sorted(v.name for v in records), "each record cloned once, nothing else"
    assert manager.runner.waiting("p") == 0 and manager.clones_in_flight == 0


class RefusesFailed(SqliteStore):
    """A store that refuses the next moves of a VM to failed with ``error``."""

    refuse = 0
    error: Exception = StoreUnavailable("the store is locked")

    def transition(self, name, expected, new, **fields):
        if self.refuse and new is VmState.FAILED:
            self.refuse -= 1
            raise self.error
        return super().transition(name, expected, new, **fields)


@pytest.mark.parametrize("outage", [True, False])
async def test_an_outcome_the_store_cannot_take_ends_the_clone_and_the_reconcile_repairs(harness, pool_factory,
                                                                                         caplog, outage):
    """One call of three VMs fails; the store refuses the first failure's record (an outage, or a
    write refused otherwise): the three are settled all the same, and none stays in flight."""
    caplog.set_level(logging.INFO, logger="corral")
    harness.store.close()
    harness.store = RefusesFailed(harness.tmp_path / "corral.db")
    if not outage:
        harness.store.error = StoreError("refused")
    manager = await harness.start([pool_factory("p", 0)], sim=sim_settings(hosts=1))
    harness.provider.controls.fail_next("create", 1, retryable=False)
    harness.store.refuse = 1
    manager.set_pool_size("p", 3)
    await eventually(lambda: ready_counts(harness.store).get("p", 0) == 2 and harness.store.refuse == 0)
    await eventually(lambda: manager.clones_in_flight == 0 and not manager.runner.held, 2)
    [left] = harness.store.list_vms(pool="p", states=(VmState.PENDING,))
    assert not manager.ledger.busy(left.name), "the sweep and the reconcile would skip it for ever"
    assert len(harness.store.list_vms(pool="p", states=(VmState.DESTROYED,))) == 2  # the others of the call
    assert await manager.reconcile() >= 1  # no VM at the provider: the record is lost, and replaced
    await harness.wait_full()
    assert harness.store.get_vm(left.name).state is VmState.DESTROYED
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    if outage:
        assert manager.outage.writes_refused >= 1 and not errors
    else:
        assert errors == ["settling a work failed"]


class RefusesRecords(SqliteStore):
    """A store that refuses every write of new records with ``error``; ``tried`` counts them by VM."""

    error: Exception = StoreError("refused")

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        self.tried: Counter[str] = Counter()

    def add_vms(self, vms):
        self.tried.update(vm.name for vm in vms)
        raise self.error


@pytest.mark.parametrize("fenced", [False, True])
async def test_a_refused_intent_fails_or_drops_its_works_instead_of_coming_back_for_ever(harness, pool_factory,
                                                                                          caplog, fenced):
    caplog.set_level(logging.INFO, logger="corral")
    harness.store.close()
    harness.store = RefusesRecords(harness.tmp_path / "corral.db")
    if fenced:
        harness.store.error = Fenced("p", 7, 6)
    manager = await harness.start([pool_factory("p", 0)])
    manager.set_pool_size("p", 3)
    runner = manager.runner
    tried = harness.store.tried
    if fenced:  # dropped at once: another manager runs the pool
        await eventually(lambda: len(tried) >= 3 and not runner.held)
        assert runner.stats.failed == 0
    else:  # each work counts a try and fails after its last
        await eventually(lambda: runner.stats.failed >= 3, 5)
    await asyncio.sleep(0.3)  # the pool asks again for new works meanwhile, never the same again
    most = 1 if fenced else runner.settings.max_tries
    assert max(tried.values()) == most and runner.stats.not_recorded == 0 and manager.clones_in_flight == 0
    assert not [c for c in harness.provider.call_log if c.op == "create"]
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert all("recording a call's intent failed" in r.getMessage() for r in errors) and bool(errors) is not fenced
