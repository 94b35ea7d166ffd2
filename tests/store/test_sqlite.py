"""SqliteStore: the store contract on a real file, and what only sqlite promises."""

from __future__ import annotations

import functools
import os
import random
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from corral.domain.states import VmState
from corral.store.base import StoreError
from corral.store.sqlite import SCHEMA_VERSION, SqliteStore

from . import _workers
from .contract import StoreContract, fill, make_vm

S = VmState


class TestSqliteContract(StoreContract):
    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Callable[[], SqliteStore]:
        return functools.partial(SqliteStore, tmp_path / "corral.db")

    @pytest.fixture
    def store(self, store_factory: Callable[[], SqliteStore]) -> Iterator[SqliteStore]:
        store = store_factory()
        yield store
        store.close()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "corral.db"


def test_wal_mode_and_schema_version(db: Path) -> None:
    SqliteStore(db).close()
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert raw.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    finally:
        raw.close()


def test_parent_directory_is_created(tmp_path: Path) -> None:
    with SqliteStore(tmp_path / "a" / "b" / "corral.db") as store:
        store.add_vm(make_vm("v-1"))
    assert (tmp_path / "a" / "b" / "corral.db").is_file()


def test_data_survives_close_and_reopen(db: Path) -> None:
    store = SqliteStore(db)
    fill(store, "pool-a", 3)
    store.checkout("pool-a", now=5.0, lifetime_s=60.0, token="t")
    before = store.list_vms()
    store.close()
    with SqliteStore(db) as again:
        assert again.list_vms() == before
        assert again.counts() == {"pool-a": {S.READY: 2, S.RUNNING: 1}}


def test_two_handles_on_one_file_see_each_other(db: Path) -> None:
    with SqliteStore(db) as one, SqliteStore(db) as two:
        one.add_vm(make_vm("v-1", state=S.READY, ready_at=1.0))
        assert two.get_vm("v-1").state is S.READY
        assert two.checkout("pool-a", now=2.0, lifetime_s=1.0, token="two").name == "v-1"
        assert one.get_vm("v-1").token == "two"
        assert one.checkout("pool-a", now=3.0, lifetime_s=1.0) is None
        with pytest.raises(StoreError, match="v-1"):
            two.add_vm(make_vm("v-1"))


def test_memory_store() -> None:
    with SqliteStore(":memory:") as store:
        fill(store, "pool-a", 2)
        assert store.checkout("pool-a", now=1.0, lifetime_s=1.0).name == "pool-a-0000"
        assert store.counts() == {"pool-a": {S.READY: 1, S.RUNNING: 1}}


def test_closed_store_raises_store_error(db: Path) -> None:
    store = SqliteStore(db)
    store.close()
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.get_vm("v-1")


def test_newer_schema_is_refused(db: Path) -> None:
    SqliteStore(db).close()
    raw = sqlite3.connect(db)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(StoreError, match="schema version 99"):
        SqliteStore(db)


def test_sigkill_mid_churn_leaves_a_consistent_database(db: Path) -> None:
    """Kill -9 a process looping state moves, three times; every restart finds each VM in
    exactly one valid state with the fields that state needs, and every step the process
    reported as committed is still there."""
    rng = random.Random(1234)
    script = Path(_workers.__file__)
    for _ in range(3):
        child = subprocess.Popen(
            [sys.executable, str(script), "churn", str(db)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        try:
            kill_after = rng.randrange(150, 400)  # steps, so the kill lands anywhere
            for seen, line in enumerate(child.stdout):
                if seen >= kill_after:
                    break
            else:
                pytest.fail(f"churn stopped early:\n{child.stderr.read()}")
            os.kill(child.pid, signal.SIGKILL)
            assert child.wait(10) == -signal.SIGKILL
            last_committed = int(([line, *child.stdout.read().splitlines()])[-1])
        finally:
            if child.poll() is None:
                child.kill()
            child.stdout.close()
            child.stderr.close()
        _check_churn_database(db, last_committed)


def _check_churn_database(db: Path, last_committed: int) -> None:
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
    finally:
        raw.close()
    with SqliteStore(db) as store:
        vms = store.list_vms()
        assert sorted(v.name for v in vms) == sorted(_workers.CHURN_VMS)
        needs = {
            S.READY: ("ready_at", "ip"),
            S.RUNNING: ("ready_at", "checkout_at", "lifetime_s", "token"),
            S.COMPLETED: ("checkout_at", "completed_at"),
            S.DESTROYED: ("completed_at", "destroyed_at"),
        }
        for vm in vms:
            assert vm.state in (S.PENDING, *needs), vm
            assert all(getattr(vm, f) is not None for f in needs.get(vm.state, ())), vm
        counts = store.counts()
        active = [v for v in vms if v.state is not S.DESTROYED]
        assert sum(n for per_pool in counts.values() for n in per_pool.values()) == len(active)
        for pool, per_pool in counts.items():
            for state, n in per_pool.items():
                assert n == sum(1 for v in active if (v.pool, v.state) == (pool, state))
        # Durability against a process kill: no step reported as committed is lost.
        assert max(int(v.reason.split()[1]) for v in vms) >= last_committed
