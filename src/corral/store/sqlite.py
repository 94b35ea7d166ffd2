"""The embedded default store: one sqlite file, shared safely by threads and processes.

Every state move is one atomic ``UPDATE ... WHERE state IN (...) RETURNING`` statement, so
it is a compare-and-set without a read-modify-write round trip; the only multi-statement
write (:meth:`SqliteStore.checkout_many`) runs in a ``BEGIN IMMEDIATE`` transaction.
Several processes may open one file: sqlite's write lock serialises them, and a writer
waits for it (up to BUSY_TIMEOUT_S) instead of failing.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any

from corral.domain.models import Vm
from corral.domain.states import TRANSITIONS, VmState, can_move
from corral.store.base import StoreError, TransitionRejected

SCHEMA_VERSION = 1
BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another process's write lock
_RETRY_FIRST_S, _RETRY_MAX_S = 20e-6, 1e-3

# Column declarations, in the order of the Vm dataclass fields (rows decode as Vm(*row)).
_COLUMN_TYPES: dict[str, str] = {
    "name": "TEXT NOT NULL PRIMARY KEY",
    "pool": "TEXT NOT NULL",
    "template": "TEXT NOT NULL",
    "state": "TEXT NOT NULL",
    "provider": "TEXT NOT NULL DEFAULT ''",
    "host": "TEXT",
    "ip": "TEXT",
    "created_at": "REAL NOT NULL",
    "cloned_at": "REAL",
    "ready_at": "REAL",
    "checkout_at": "REAL",
    "completed_at": "REAL",
    "destroyed_at": "REAL",
    "lifetime_s": "REAL",
    "token": "TEXT",
    "user": "TEXT",
    "tags": "TEXT NOT NULL DEFAULT '{}'",
    "migrated": "INTEGER NOT NULL DEFAULT 0",
    "reason": "TEXT",
}
COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(Vm))
if tuple(_COLUMN_TYPES) != COLUMNS:  # pragma: no cover - guards a Vm change without a migration
    raise ImportError("corral.store.sqlite: the vms table no longer matches the Vm dataclass")

# Fields a caller may set with transition() / update_vm(): everything but the key and state.
SETTABLE_FIELDS: frozenset[str] = frozenset(COLUMNS) - {"name", "state"}

_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS vms (
    {", ".join(f'"{c}" {t}' for c, t in _COLUMN_TYPES.items())}
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS vms_pool_state ON vms (pool, state, ready_at, name);
CREATE INDEX IF NOT EXISTS vms_state ON vms (state);
PRAGMA user_version = {SCHEMA_VERSION};
"""

_SELECT = ", ".join(f'"{c}"' for c in COLUMNS)
_RETURNING = f"RETURNING {_SELECT}"
_READY, _RUNNING, _DESTROYED = VmState.READY.value, VmState.RUNNING.value, VmState.DESTROYED.value

_ADD_SQL = (
    f"INSERT INTO vms ({_SELECT}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (name) DO UPDATE SET "
    + ", ".join(f'"{c}" = excluded."{c}"' for c in COLUMNS[1:])
    + f" WHERE vms.state = '{_DESTROYED}'"
)
_GET_SQL = f"SELECT {_SELECT} FROM vms WHERE name = ?"
# The oldest ready VMs of a pool; served in order by the (pool, state, ready_at, name) index.
_OLDEST_READY = (
    f"SELECT name FROM vms WHERE pool = ? AND state = '{_READY}' ORDER BY ready_at, name LIMIT ?"
)
_CHECKOUT_SQL = (
    f"UPDATE vms SET state = '{_RUNNING}', checkout_at = ?, lifetime_s = ?, token = ?, "
    f"\"user\" = ? WHERE name IN ({_OLDEST_READY}) AND state = '{_READY}' {_RETURNING}"
)
_COUNTS_SQL = (
    f"SELECT pool, state, COUNT(*) FROM vms WHERE state != '{_DESTROYED}' GROUP BY pool, state"
)
_PURGE_SQL = f"DELETE FROM vms WHERE state = '{_DESTROYED}' AND destroyed_at < ?"


def _dump_tags(tags: object) -> str:
    if not isinstance(tags, dict):
        raise TypeError(f"tags must be a dict, not {type(tags).__name__}")
    return json.dumps(tags, sort_keys=True, separators=(",", ":")) if tags else "{}"


# How a field value is stored, where it is not stored as it is.
_ENCODERS: dict[str, Callable[[Any], object]] = {
    "state": lambda s: VmState(s).value,
    "tags": _dump_tags,
    "migrated": lambda m: int(bool(m)),
}
_STATE_AT, _TAGS_AT, _MIGRATED_AT = (COLUMNS.index(c) for c in ("state", "tags", "migrated"))
_REAL_AT = tuple(i for i, c in enumerate(COLUMNS) if _COLUMN_TYPES[c].startswith("REAL"))


def _encode(name: str, value: object) -> object:
    encoder = _ENCODERS.get(name)
    if encoder is None:
        return value
    try:
        return encoder(value)
    except (TypeError, ValueError) as err:
        raise StoreError(f"bad value for VM field {name!r}: {err}") from None


def _vm_from_row(row: tuple[Any, ...]) -> Vm:
    values = list(row)
    # sqlite keeps whole REAL values as integers on disk; SELECT turns them back into
    # floats but RETURNING (3.40) does not, so do it here.
    for i in _REAL_AT:
        if values[i].__class__ is int:
            values[i] = float(values[i])
    values[_STATE_AT] = VmState(values[_STATE_AT])
    tags = values[_TAGS_AT]
    values[_TAGS_AT] = {} if tags == "{}" else json.loads(tags)
    values[_MIGRATED_AT] = bool(values[_MIGRATED_AT])
    return Vm(*values)


def _check_fields(fields: dict[str, object]) -> None:
    for name in fields.keys() - SETTABLE_FIELDS:
        hint = "; states change only by transition()" if name == "state" else ""
        raise StoreError(f"unknown or read-only VM field {name!r}{hint}")


def _move(expected: Iterable[VmState], new: VmState) -> tuple[str, tuple[str, ...]]:
    """The new and expected states as stored values; rejects a move the lifecycle forbids."""
    states = (expected,) if isinstance(expected, str) else tuple(expected)
    try:
        src = tuple(dict.fromkeys(VmState(s) for s in states))
        dst = VmState(new)
    except ValueError as err:
        raise TransitionRejected(str(err)) from None
    if not src:
        raise TransitionRejected(f"no expected state given for a move to {dst.value!r}")
    forbidden = [s.value for s in src if not can_move(s, dst)]
    if forbidden:
        allowed = {s.value: sorted(d.value for d in TRANSITIONS[s]) for s in src}
        raise TransitionRejected(
            f"the lifecycle forbids {', '.join(forbidden)} -> {dst.value} (allowed: {allowed})"
        )
    return dst.value, tuple(s.value for s in src)


@lru_cache(maxsize=512)
def _update_sql(names: tuple[str, ...], n_expected: int) -> str:
    """UPDATE for one field set; with n_expected > 0 it also sets state (compare-and-set)."""
    sets = [f'"{n}" = ?' for n in names]
    where = "name = ?"
    if n_expected:
        sets.insert(0, "state = ?")
        where += f" AND state IN ({', '.join('?' * n_expected)})"
    return f"UPDATE vms SET {', '.join(sets)} WHERE {where} {_RETURNING}"


@lru_cache(maxsize=64)
def _list_sql(by_pool: bool, n_states: int | None) -> str:
    where = []
    if by_pool:
        where.append("pool = ?")
    if n_states is not None:
        where.append(f"state IN ({', '.join('?' * n_states)})")
    clause = f" WHERE {' AND '.join(where)}" if where else ""
    return f"SELECT {_SELECT} FROM vms{clause} ORDER BY created_at, name"


class _Short(Exception):
    """A pool had too few ready VMs: roll the checkout_many transaction back."""


def _run(conn: sqlite3.Connection, sql: str, params: Any = ()) -> sqlite3.Cursor:
    """Execute one statement, waiting up to BUSY_TIMEOUT_S while another process writes.

    sqlite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, so under
    contention a process can lose many rounds in a row and wait 100+ ms for a lock that is
    held for ~50 us. Retrying here with short, jittered sleeps keeps waits near the lock
    hold time. Retrying is safe: a statement that gets SQLITE_BUSY has done nothing (writes
    take their lock before they start; BEGIN IMMEDIATE takes it up front).
    """
    delay, deadline = 0.0, 0.0
    while True:
        try:
            return conn.execute(sql, params)
        except sqlite3.OperationalError as err:
            if getattr(err, "sqlite_errorcode", 0) & 0xFF != sqlite3.SQLITE_BUSY:
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + BUSY_TIMEOUT_S
            elif now > deadline:
                raise
        delay = min(delay * 2 or _RETRY_FIRST_S, _RETRY_MAX_S)
        time.sleep(delay * random.uniform(0.5, 1.5))


@contextmanager
def _immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
    _run(conn, "BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:  # an error, or a COMMIT that failed
            conn.execute("ROLLBACK")


class _Session:
    """``with session as conn``: the store's lock held, its connection open, sqlite errors
    raised as :class:`StoreError`. A plain class: cheaper than ``contextlib`` per call."""

    __slots__ = ("_store",)

    def __init__(self, store: SqliteStore) -> None:
        self._store = store

    def __enter__(self) -> sqlite3.Connection:
        store = self._store
        store._lock.acquire()
        conn = store._conn
        if conn is None:
            store._lock.release()
            raise StoreError(f"{store!r} is closed")
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self._store._lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{self._store!r}: {exc}") from exc


class SqliteStore:
    """A :class:`~corral.store.base.Store` on one sqlite file (or ``":memory:"``).

    One connection per object, guarded by a lock, so an object may be shared by threads;
    other processes open their own ``SqliteStore`` on the same path.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._session = _Session(self)
        self._conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: autocommit; each single statement is its own atomic
            # transaction and multi-statement writes say BEGIN IMMEDIATE themselves.
            self._conn = sqlite3.connect(
                self.path,
                timeout=0,  # no sqlite busy handler: _run() waits for locks itself
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
            )
            with self._session as conn:
                self._setup(conn)
        except BaseException as err:
            self.close()
            if isinstance(err, sqlite3.Error):
                raise StoreError(f"cannot open sqlite store {self.path!r}: {err}") from err
            raise

    def _setup(self, conn: sqlite3.Connection) -> None:
        (mode,) = _run(conn, "PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal" and self.path != ":memory:":  # ":memory:" stays "memory"
            raise StoreError(f"sqlite store {self.path!r} cannot use WAL (journal mode {mode})")
        # With WAL, NORMAL syncs only at checkpoints: a committed transaction is in the WAL
        # file (the OS page cache) when COMMIT returns, so it survives the process being
        # killed; only an OS crash or power loss may lose the last commits, and it never
        # corrupts the database. FULL would fsync on every commit for little gain.
        conn.execute("PRAGMA synchronous = NORMAL")
        (version,) = _run(conn, "PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        with _immediate(conn):  # a second process may be creating the schema too
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version == 0:
                for statement in filter(str.strip, _SCHEMA.split(";")):
                    conn.execute(statement)
        if version not in (0, SCHEMA_VERSION):
            raise StoreError(
                f"sqlite store {self.path!r} has schema version {version}; "
                f"this corral knows version {SCHEMA_VERSION}"
            )

    def _one(self, sql: str, params: tuple[object, ...] | list[object]) -> Vm | None:
        """Run one statement (its own atomic transaction); the VM of its first row."""
        with self._session as conn:
            rows = _run(conn, sql, params).fetchall()
        return _vm_from_row(rows[0]) if rows else None

    def close(self) -> None:
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def __enter__(self) -> SqliteStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"SqliteStore({self.path!r})"

    # -- the Store protocol ---------------------------------------------------------------

    def add_vm(self, vm: Vm) -> None:
        params = [_encode(c, getattr(vm, c)) for c in COLUMNS]
        with self._session as conn:
            added = _run(conn, _ADD_SQL, params).rowcount
        if added != 1:
            raise StoreError(f"VM {vm.name!r} already exists in an active state")

    def get_vm(self, name: str) -> Vm | None:
        return self._one(_GET_SQL, (name,))

    def list_vms(
        self,
        *,
        pool: str | None = None,
        states: Iterable[VmState] | None = None,
    ) -> list[Vm]:
        params: list[object] = [] if pool is None else [pool]
        n_states = None
        if states is not None:
            states = (states,) if isinstance(states, str) else states  # one state given
            wanted = [VmState(s).value for s in states]
            if not wanted:
                return []
            params += wanted
            n_states = len(wanted)
        with self._session as conn:
            rows = _run(conn, _list_sql(pool is not None, n_states), params).fetchall()
        return [_vm_from_row(r) for r in rows]

    def transition(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        dst, src = _move(expected, new)
        _check_fields(fields)
        params = [dst, *(_encode(n, v) for n, v in fields.items()), name, *src]
        return self._one(_update_sql(tuple(fields), len(src)), params)

    def update_vm(self, name: str, **fields: object) -> Vm | None:
        _check_fields(fields)
        if not fields:
            return self.get_vm(name)
        params = [*(_encode(n, v) for n, v in fields.items()), name]
        return self._one(_update_sql(tuple(fields), 0), params)

    def checkout(
        self,
        pool: str,
        *,
        now: float,
        lifetime_s: float,
        token: str | None = None,
        user: str | None = None,
    ) -> Vm | None:
        # One statement: the pick and the move happen under one write lock, so no VM is
        # ever handed to two callers, whichever thread or process they are in.
        return self._one(_CHECKOUT_SQL, (now, lifetime_s, token, user, pool, 1))

    def checkout_many(
        self,
        wanted: list[tuple[str, int]],
        *,
        now: float,
        lifetimes: dict[str, float],
        token: str | None = None,
        user: str | None = None,
    ) -> list[Vm] | None:
        totals: dict[str, int] = {}
        for pool, count in wanted:
            if count < 0:
                raise StoreError(f"cannot check out {count} VMs of pool {pool!r}")
            if pool not in lifetimes:
                raise StoreError(f"no lifetime given for pool {pool!r}")
            totals[pool] = totals.get(pool, 0) + count
        taken: dict[str, list[Vm]] = {}
        try:
            with self._session as conn, _immediate(conn):
                for pool, count in totals.items():
                    params = (now, lifetimes[pool], token, user, pool, count)
                    rows = conn.execute(_CHECKOUT_SQL, params).fetchall() if count else []
                    if len(rows) < count:
                        raise _Short
                    taken[pool] = [_vm_from_row(r) for r in rows]
        except _Short:
            return None  # rolled back: nothing changed
        # RETURNING has no defined order: hand out each pool's VMs longest-ready first,
        # as sqlite orders them (a missing ready_at sorts first).
        queues = {
            pool: iter(sorted(vms, key=lambda v: (v.ready_at is not None, v.ready_at, v.name)))
            for pool, vms in taken.items()
        }
        return [next(queues[pool]) for pool, count in wanted for _ in range(count)]

    def counts(self) -> dict[str, dict[VmState, int]]:
        with self._session as conn:
            rows = _run(conn, _COUNTS_SQL).fetchall()
        result: dict[str, dict[VmState, int]] = {}
        for pool, state, n in rows:
            result.setdefault(pool, {})[VmState(state)] = n
        return result

    def purge_destroyed(self, older_than: float) -> int:
        with self._session as conn:
            return _run(conn, _PURGE_SQL, (older_than,)).rowcount
