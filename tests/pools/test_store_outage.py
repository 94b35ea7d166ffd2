"""The pool manager on a store that cannot take writes (the sqlite file locked by another
connection): it calls no provider for a VM it cannot record, keeps the works it could not
record (none leaks), says so once, and fills the pool once the lock is released."""

from __future__ import annotations

import asyncio
import logging
import sqlite3

import pytest

from corral.pools.outage import Change, StoreOutage, on_failure, on_success
from corral.store.base import StoreUnavailable
from corral.store.sqlite import SqliteStore
from helpers import eventually, ready_counts


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
