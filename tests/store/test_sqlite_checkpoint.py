"""The sqlite store's WAL checkpoints run in a thread of their own, not inside a writer's commit."""

from __future__ import annotations

import shutil
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from corral.domain.models import Vm
from corral.domain.states import VmState as S
from corral.store.sqlite import SqliteStore
from corral.store.sqlite_checkpoint import Checkpointer

WAIT_S = 10.0


def checkpoint_threads(path: Path) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == f"sqlite-checkpoint {path}"]


def names_in_main_file(db: Path, tmp: Path) -> set[str]:
    """The VM names in the database file alone, as if the WAL were lost: what a checkpoint copied."""
    copy = tmp / "main-file-only.db"
    shutil.copyfile(db, copy)
    raw = sqlite3.connect(copy)
    try:
        return {name for (name,) in raw.execute("SELECT name FROM vms")}
    except sqlite3.OperationalError:  # not even the table is there yet
        return set()
    finally:
        raw.close()


def test_commits_reach_the_database_file_without_a_writer_checkpointing(tmp_path: Path) -> None:
    db = tmp_path / "corral.db"
    with SqliteStore(db) as store:
        # a few small commits: far below any automatic checkpoint threshold of the writer
        for i in range(5):
            store.add_vm(Vm(f"vm-{i}", "pool-a", "t", created_at=1.0))
        assert store.transition("vm-0", (S.PENDING,), S.READY, ready_at=2.0) is not None
        deadline = time.monotonic() + WAIT_S
        while names_in_main_file(db, tmp_path) != {f"vm-{i}" for i in range(5)}:
            assert time.monotonic() < deadline, "the commits never reached the database file"
            time.sleep(0.02)


def test_the_thread_runs_while_the_store_is_open_and_stops_with_it(tmp_path: Path) -> None:
    db = tmp_path / "corral.db"
    store = SqliteStore(db)
    assert len(checkpoint_threads(db)) == 1
    store.close()
    assert checkpoint_threads(db) == []
    store.close()  # closing again is harmless


def test_a_memory_store_has_no_checkpoint_thread() -> None:
    before = {t.name for t in threading.enumerate()}
    with SqliteStore(":memory:") as store:
        store.add_vm(Vm("vm-1", "pool-a", "t", created_at=1.0))
        assert not any(t.name.startswith("sqlite-checkpoint") for t in threading.enumerate() if t.name not in before)


def test_checkpointer_counts_its_checkpoints_and_stops(tmp_path: Path) -> None:
    db = tmp_path / "corral.db"
    with SqliteStore(db):
        checkpointer = Checkpointer(str(db), interval_s=0.01)
        checkpointer.start()
        deadline = time.monotonic() + WAIT_S
        while checkpointer.checkpoints < 3:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        checkpointer.stop()
        assert not checkpointer.running and checkpointer.failures == 0
        checkpointer.stop()


def test_a_failed_checkpoint_is_counted_not_raised(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "unused.db"))
    conn = sqlite3.connect(":memory:")
    conn.close()  # any statement on it fails
    checkpointer.checkpoint(conn)
    checkpointer.checkpoint(conn)
    assert checkpointer.failures == 2 and checkpointer.checkpoints == 0


def test_a_store_it_cannot_open_leaves_the_thread_ended(tmp_path: Path) -> None:
    checkpointer = Checkpointer(str(tmp_path / "no-such-dir" / "corral.db"), interval_s=0.01)
    checkpointer.start()
    checkpointer.stop()
    assert not checkpointer.running and checkpointer.checkpoints == 0


@pytest.mark.parametrize("interval", [0, -1.0])
def test_interval_must_be_positive(tmp_path: Path, interval: float) -> None:
    with pytest.raises(ValueError, match="checkpoint interval must be > 0"):
        Checkpointer(str(tmp_path / "corral.db"), interval_s=interval)
