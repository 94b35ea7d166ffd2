"""The sqlite file locked by another process: a write waits at most ``lock_wait_s``, then the
store is unavailable (a :class:`StoreUnavailable` naming it) and answers at once until the lock
is released; reads go on meanwhile (WAL), and writes work again as soon as it is released."""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from corral.domain.models import Vm
from corral.domain.states import VmState
from corral.store.base import StoreUnavailable
from corral.store.sqlite import SqliteStore
from corral.store.sqlite_conn import wait_bound


@pytest.mark.parametrize(("limit_s", "locked_s", "locked", "bound"), [
    (2.0, 0.01, False, 2.0),  # no outage: the whole wait
    (2.0, 0.01, True, 0.01),  # a lock held past a whole wait: a short one
    (0.005, 0.01, True, 0.005),  # never longer than the limit
    (10.0, 0.01, False, 10.0),
])
def test_how_long_a_write_waits_for_the_lock(limit_s: float, locked_s: float, locked: bool, bound: float) -> None:
    assert wait_bound(limit_s, locked_s, locked) == bound


def vm(name: str) -> Vm:
    return Vm(name=name, pool="p", template="t", provider="sim", host="h1", created_at=1.0)


def test_a_lock_held_past_the_wait_makes_the_store_unavailable_until_it_is_released(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with SqliteStore(path, lock_wait_s=0.3) as store:
        store.add_vm(vm("a"))
        other = sqlite3.connect(path, isolation_level=None)
        other.execute("BEGIN EXCLUSIVE")
        started = time.monotonic()
        with pytest.raises(StoreUnavailable, match=r"corral\.db.*is locked by another process.*waited 0\.3 s"):
            store.add_vm(vm("b"))
        first_s = time.monotonic() - started
        assert 0.3 <= first_s < 1.0
        for write in (lambda: store.transition("a", (VmState.PENDING,), VmState.READY),
                      lambda: store.transition_soon("a", (VmState.PENDING,), VmState.READY),
                      lambda: store.add_vms([vm("c"), vm("d")])):
            started = time.monotonic()
            with pytest.raises(StoreUnavailable):
                write()
            assert time.monotonic() - started < 0.1, "a known outage answers at once"
        assert store.get_vm("a") is not None and store.get_vm("a").state is VmState.PENDING  # reads go on
        assert [v.name for v in store.list_vms()] == ["a"]
        other.execute("COMMIT")
        other.close()
        store.add_vm(vm("b"))  # at once: the lock is free
        assert store.lock_wait.since is None
        assert store.transition("a", (VmState.PENDING,), VmState.READY) is not None
        assert sorted(v.name for v in store.list_vms()) == ["a", "b"]


def test_a_lock_held_briefly_is_waited_for(tmp_path: Path) -> None:
    path = tmp_path / "corral.db"
    with SqliteStore(path, lock_wait_s=2.0) as store:
        other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        other.execute("BEGIN EXCLUSIVE")
        release = threading.Timer(0.2, lambda: other.execute("COMMIT"))
        release.start()
        store.add_vm(vm("a"))  # waited for the lock, then wrote
        release.join()
        other.close()
        assert store.get_vm("a") is not None and store.lock_wait.since is None
