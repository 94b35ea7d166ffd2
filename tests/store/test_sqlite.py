"""SqliteStore: the store contract on a real file, and what only sqlite promises."""

from __future__ import annotations

import functools
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from corral.domain.models import OndemandRequest, RequestStatus, TimingKind
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


@pytest.mark.parametrize("status", list(RequestStatus))
def test_request_status_is_stored_as_its_text(db: Path, status: RequestStatus) -> None:
    store = SqliteStore(db)
    try:
        store.add_request(OndemandRequest(id="req-1", requested=[], status=status, created_at=1.0))
    finally:
        store.close()
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT status, typeof(status) FROM requests").fetchall() == [(status.value, "text")]
    finally:
        raw.close()


@pytest.mark.parametrize("kind", list(TimingKind))
def test_timing_kind_is_stored_as_its_text(db: Path, kind: TimingKind) -> None:
    store = SqliteStore(db)
    try:
        store.record_duration(kind, "pool-a", "v-1", 1.0, at=10.0)
    finally:
        store.close()
    raw = sqlite3.connect(db)
    try:
        assert raw.execute("SELECT task, typeof(task) FROM durations").fetchall() == [(kind.value, "text")]
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


# The schema corral wrote before version 2 (on-demand requests, tokens, history), verbatim.
V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS vms (
    "name" TEXT NOT NULL PRIMARY KEY, "pool" TEXT NOT NULL, "template" TEXT NOT NULL,
    "state" TEXT NOT NULL, "provider" TEXT NOT NULL DEFAULT '', "host" TEXT, "ip" TEXT,
    "created_at" REAL NOT NULL, "cloned_at" REAL, "ready_at" REAL, "checkout_at" REAL,
    "completed_at" REAL, "destroyed_at" REAL, "lifetime_s" REAL, "token" TEXT, "user" TEXT,
    "tags" TEXT NOT NULL DEFAULT '{}', "migrated" INTEGER NOT NULL DEFAULT 0, "reason" TEXT
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vms_pool_state ON vms (pool, state, ready_at, name);
CREATE INDEX IF NOT EXISTS vms_state ON vms (state);
PRAGMA user_version = 1;
"""
V1_ROWS = [  # name, pool, state, created_at, ready_at, token, tags, migrated
    ("v1-ready-b", "pool-a", "ready", 1.0, 20.0, None, "{}", 0),
    ("v1-ready-a", "pool-a", "ready", 2.0, 10.0, None, '{"team":"qa"}', 0),
    ("v1-running", "pool-b", "running", 3.0, 5.0, "tok", "{}", 1),
]


def _make_v1_file(db: Path) -> None:
    raw = sqlite3.connect(db)
    try:
        raw.execute("PRAGMA journal_mode = WAL")
        raw.executescript(V1_SCHEMA)
        raw.executemany(
            'INSERT INTO vms (name, pool, template, state, created_at, ready_at, token, tags, '
            "migrated) VALUES (?, ?, 'tpl', ?, ?, ?, ?, ?, ?)",
            V1_ROWS,
        )
        raw.commit()
    finally:
        raw.close()


def _schema_of(db: Path) -> dict[str, object]:
    """Every table's columns and every index's columns and condition, by name."""
    raw = sqlite3.connect(db)
    try:
        shape: dict[str, object] = {"version": raw.execute("PRAGMA user_version").fetchone()}
        tables = raw.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
        for (table,) in tables:
            shape[table] = raw.execute(f"PRAGMA table_info({table})").fetchall()
            for _, index, unique, origin, partial in raw.execute(f"PRAGMA index_list({table})"):
                columns = raw.execute(f"PRAGMA index_info({index})").fetchall()
                shape[f"{table}.{index}"] = (unique, origin, partial, columns)
        return shape
    finally:
        raw.close()


def test_version_1_file_is_upgraded_in_place(db: Path, tmp_path: Path) -> None:
    _make_v1_file(db)
    with SqliteStore(db) as store:
        vms = store.list_vms()
        assert [(v.name, v.pool, v.state.value, v.created_at, v.ready_at, v.token, v.migrated)
                for v in vms] == [
            ("v1-ready-b", "pool-a", "ready", 1.0, 20.0, None, False),
            ("v1-ready-a", "pool-a", "ready", 2.0, 10.0, None, False),
            ("v1-running", "pool-b", "running", 3.0, 5.0, "tok", True),
        ]
        assert store.get_vm("v1-ready-a").tags == {"team": "qa"}
        assert all((v.request_id, v.disks, v.snapshots) == (None, [], []) for v in vms)
        assert store.counts() == {"pool-a": {S.READY: 2}, "pool-b": {S.RUNNING: 1}}
        # The new columns and tables work on the upgraded file.
        store.add_vm(make_vm("od-1", state=S.READY, ready_at=1.0, request_id="req-1"))
        assert store.checkout("pool-a", now=9.0, lifetime_s=1.0).name == "v1-ready-a"
        assert [v.name for v in store.request_vms("req-1")] == ["od-1"]
        store.update_vm("v1-running", disks=["+8gb"])
        store.set_pool_override("pool-a", "size", 3)
    with SqliteStore(db) as again:  # reopening a version-2 file changes nothing
        assert again.get_vm("v1-running").disks == ["+8gb"]
        assert again.pool_overrides() == {"pool-a": {"size": 3}}
    # The upgraded file has exactly the schema of a file created new.
    SqliteStore(tmp_path / "fresh.db").close()
    assert _schema_of(db) == _schema_of(tmp_path / "fresh.db")
    assert _schema_of(db)["version"] == (SCHEMA_VERSION,)


def test_two_openers_upgrade_a_version_1_file_once(db: Path) -> None:
    """Several handles (separate connections, as separate processes have) open a v1 file
    at once: one upgrades it, the others wait for its write lock and find it done."""
    _make_v1_file(db)
    barrier = threading.Barrier(6)

    def opener() -> list[str]:
        barrier.wait(30)
        with SqliteStore(db) as store:
            return [v.name for v in store.list_vms()]

    with ThreadPoolExecutor(6) as pool:
        results = [f.result() for f in [pool.submit(opener) for _ in range(6)]]
    assert results == [[row[0] for row in V1_ROWS]] * 6
    assert _schema_of(db)["version"] == (SCHEMA_VERSION,)


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
            for seen, line in enumerate(child.stdout):  # noqa: B007 - the last line read is used below
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
