"""Moves left for later (``transition_soon``): committed with the next write, by a thread within
a few milliseconds, or at close; never visible to other processes before they are committed.
A block that only reads leaves them for later."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from corral.domain.models import Vm
from corral.domain.states import VmState as S
from corral.store.base import StoreError, TransitionRejected
from corral.store.sqlite import SqliteStore
from corral.store.sqlite_conn import LaterCommits, Session, immediate

WAIT_S = 10.0


def state_seen_by_another_handle(db: Path, name: str) -> str | None:
    """The committed state of ``name`` (a reader in WAL mode sees only committed writes)."""
    raw = sqlite3.connect(db, timeout=WAIT_S)
    try:
        row = raw.execute("SELECT state FROM vms WHERE name = ?", (name,)).fetchone()
    finally:
        raw.close()
    return None if row is None else str(row[0])


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "corral.db"


def test_transition_soon_is_a_compare_and_set(db: Path) -> None:
    with SqliteStore(db) as store:
        store.add_vm(Vm("vm-1", "pool-a", "t", created_at=1.0))
        assert store.transition_soon("vm-1", (S.READY,), S.RUNNING) is None  # not ready
        moved = store.transition_soon("vm-1", (S.PENDING,), S.READY, ready_at=2.0, ip="10.0.0.1")
        assert moved is not None and moved.state is S.READY and moved.ip == "10.0.0.1"
        assert store.transition_soon("vm-1", (S.PENDING,), S.READY) is None  # moved already
        assert store.transition_soon("vm-2", (S.PENDING,), S.READY) is None  # no such VM
        with pytest.raises(TransitionRejected, match="lifecycle forbids"):
            store.transition_soon("vm-1", (S.DESTROYED,), S.READY)
        with pytest.raises(StoreError, match="unknown or read-only VM field 'colour'"):
            store.transition_soon("vm-1", (S.READY,), S.RUNNING, colour="red")
        assert store.get_vm("vm-1") == moved


def test_a_move_left_for_later_is_committed_within_moments(db: Path) -> None:
    with SqliteStore(db) as store:
        store.add_vm(Vm("vm-1", "pool-a", "t", created_at=1.0))
        store.transition_soon("vm-1", (S.PENDING,), S.READY, ready_at=2.0)
        deadline = time.monotonic() + WAIT_S
        while state_seen_by_another_handle(db, "vm-1") != "ready":
            assert time.monotonic() < deadline, "the move was never committed"
            time.sleep(0.005)


def test_close_commits_what_was_left_for_later(db: Path) -> None:
    store = SqliteStore(db)
    store.add_vm(Vm("vm-1", "pool-a", "t", created_at=1.0))
    store.transition_soon("vm-1", (S.PENDING,), S.READY, ready_at=2.0)
    store.close()
    with SqliteStore(db) as again:
        vm = again.get_vm("vm-1")
        assert vm is not None and vm.state is S.READY


def session_on(db: Path) -> Session:
    SqliteStore(db).close()  # create the schema
    session = Session("test session")
    session.conn = sqlite3.connect(db, timeout=0, isolation_level=None, check_same_thread=False)
    return session


def test_the_next_write_commits_the_writes_left_for_later_with_its_own(db: Path) -> None:
    session = session_on(db)
    later = session.later = LaterCommits(session, within_s=60.0)  # the thread does not commit in this test
    try:
        with session as conn:
            conn.execute("INSERT INTO vms (name, pool, template, state, created_at) VALUES ('vm-1', 'p', 't', "
                         "'pending', 1.0)")
        with later as conn:
            conn.execute("UPDATE vms SET state = 'ready' WHERE name = 'vm-1'")
        assert later.left == 1
        assert state_seen_by_another_handle(db, "vm-1") == "pending"  # not committed yet
        with session as conn:  # a read sees it, and leaves it for later
            assert conn.execute("SELECT state FROM vms WHERE name = 'vm-1'").fetchone() == ("ready",)
        assert state_seen_by_another_handle(db, "vm-1") == "pending"
        with session as conn:  # a write that changes nothing leaves it too
            conn.execute("UPDATE vms SET state = 'running' WHERE name = 'no-such-vm'")
        assert state_seen_by_another_handle(db, "vm-1") == "pending"
        with session as conn:  # a write commits it with its own
            conn.execute("INSERT INTO vms (name, pool, template, state, created_at) VALUES ('vm-2', 'p', 't', "
                         "'pending', 1.0)")
        assert state_seen_by_another_handle(db, "vm-1") == "ready"
        assert state_seen_by_another_handle(db, "vm-2") == "pending"
    finally:
        session.close()


def test_a_rolled_back_write_keeps_the_writes_left_for_later(db: Path) -> None:
    session = session_on(db)
    later = session.later = LaterCommits(session, within_s=60.0)
    try:
        with later as conn:
            conn.execute("INSERT INTO vms (name, pool, template, state, created_at) VALUES ('vm-1', 'p', 't', "
                         "'pending', 1.0)")
        with pytest.raises(RuntimeError, match="undo"), session as conn, immediate(conn):
            conn.execute("INSERT INTO vms (name, pool, template, state, created_at) VALUES ('vm-2', 'p', 't', "
                         "'pending', 1.0)")
            raise RuntimeError("undo this write")
        assert state_seen_by_another_handle(db, "vm-1") == "pending"
        assert state_seen_by_another_handle(db, "vm-2") is None
    finally:
        session.close()


def test_the_thread_commits_after_its_wait(db: Path) -> None:
    session = session_on(db)
    later = session.later = LaterCommits(session, within_s=0.01)
    try:
        with later as conn:
            conn.execute("INSERT INTO vms (name, pool, template, state, created_at) VALUES ('vm-1', 'p', 't', "
                         "'pending', 1.0)")
        deadline = time.monotonic() + WAIT_S
        while state_seen_by_another_handle(db, "vm-1") != "pending":
            assert time.monotonic() < deadline, "the thread never committed"
            time.sleep(0.005)
        assert later.failures == 0
    finally:
        session.close()


def test_the_wait_must_be_positive(db: Path) -> None:
    with pytest.raises(ValueError, match="must be > 0 s"):
        LaterCommits(Session("test session"), within_s=0)


CHILD = """
import sys, time
from corral.domain.models import Vm
from corral.domain.states import VmState as S
from corral.store.sqlite import SqliteStore
store = SqliteStore(sys.argv[1])
store.add_vm(Vm("vm-1", "pool-a", "t", created_at=1.0))
store.add_vm(Vm("vm-2", "pool-a", "t", created_at=1.0))
store.transition_soon("vm-1", (S.PENDING,), S.READY, ready_at=2.0)
store.transition("vm-2", (S.PENDING,), S.READY, ready_at=2.0)  # returns once both are committed
print("written", flush=True)
time.sleep(60)
"""


def test_a_write_that_returned_survives_a_kill_with_what_was_left_before_it(db: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(db)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "written"
        child.send_signal(signal.SIGKILL)
        assert child.wait(10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    with SqliteStore(db) as store:
        assert [vm.state for vm in store.list_vms()] == [S.READY, S.READY]
