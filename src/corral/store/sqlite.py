"""The embedded default store: one sqlite file, shared safely by threads and processes.

Every state move is one atomic ``UPDATE ... WHERE state IN (...) RETURNING`` statement, so
it is a compare-and-set without a read-modify-write round trip; the few multi-statement
writes (:meth:`SqliteStore.checkout_many`, :meth:`SqliteStore.purge_destroyed`, creating or
upgrading the schema) run in a ``BEGIN IMMEDIATE`` transaction. Tokens, pool overrides,
on-demand requests and history come from :mod:`corral.store.sqlite_meta`; the tables and
the SQL text live in :mod:`corral.store.sqlite_schema`.
Several processes may open one file: sqlite's write lock serialises them, and a writer
waits for it (up to ``lock_wait_s``, :data:`LOCK_WAIT_S` by default) instead of failing at once; a lock
held longer (another process's long transaction) makes the store unavailable
(:class:`~corral.store.base.StoreUnavailable`) until it is released, each statement then failing
after a few milliseconds (:class:`~corral.store.sqlite_conn.LockWait`).

A write is committed before its method returns, with one exception: a move recovery redoes
if a crash loses it (:meth:`SqliteStore.transition_soon`) waits for the next write, which
commits it with its own in one commit, or a few milliseconds at most
(:class:`~corral.store.sqlite_conn.LaterCommits`). WAL checkpoints run in a thread of their
own (:mod:`corral.store.sqlite_checkpoint`), never inside a caller's commit.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from corral.domain.models import Vm
from corral.domain.states import VmState
from corral.store.base import SETTABLE_FIELDS, StoreError, check_fields, checked_move, checkout_totals
from corral.store.sqlite_checkpoint import BACKSTOP_PAGES, Checkpointer
from corral.store.sqlite_conn import LOCK_WAIT_S, LaterCommits, LockWait, Session, WaitingConnection
from corral.store.sqlite_conn import immediate as _immediate
from corral.store.sqlite_conn import run as _run
from corral.store.sqlite_meta import SqliteMeta, purge_history
from corral.store.sqlite_open import PathAccess, StoreOpenError, directory_problem, open_problem
from corral.store.sqlite_schema import (
    ADD_SQL,
    CHECKOUT_SQL,
    COLUMN_TYPES,
    COLUMNS,
    COUNTS_SQL,
    CREATE_SCHEMA,
    GET_SQL,
    PURGE_VMS_SQL,
    REQUEST_VMS_SQL,
    SCHEMA_VERSION,
    UPGRADES,
    list_sql,
    statements,
    update_sql,
)

__all__ = ["LOCK_WAIT_S", "COLUMNS", "LATER_S", "SCHEMA_VERSION", "SETTABLE_FIELDS", "SqliteStore"]

LATER_S = 0.005  # the longest a move left for later (transition_soon) waits for its commit


def _dump_tags(tags: object) -> str:
    if not isinstance(tags, dict):
        raise TypeError(f"tags must be a dict, not {type(tags).__name__}")
    return json.dumps(tags, sort_keys=True, separators=(",", ":")) if tags else "{}"


def _dump_list(values: object) -> str:
    if not isinstance(values, list | tuple):
        raise TypeError(f"must be a list, not {type(values).__name__}")
    return json.dumps(list(values), separators=(",", ":")) if values else "[]"


# How a field value is stored, where it is not stored as it is.
_ENCODERS: dict[str, Callable[[Any], object]] = {
    "state": lambda s: VmState(s).value,
    "tags": _dump_tags,
    "migrated": lambda m: int(bool(m)),
    "disks": _dump_list,
    "snapshots": _dump_list,
}
_STATE_AT, _TAGS_AT, _MIGRATED_AT = (COLUMNS.index(c) for c in ("state", "tags", "migrated"))
_LISTS_AT = (COLUMNS.index("disks"), COLUMNS.index("snapshots"))
_REAL_AT = tuple(i for i, c in enumerate(COLUMNS) if COLUMN_TYPES[c].startswith("REAL"))


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
    for i in _LISTS_AT:
        values[i] = [] if values[i] == "[]" else json.loads(values[i])
    return Vm(*values)


def _move_statement(name: str, expected: Iterable[VmState], new: VmState,
                    fields: dict[str, object]) -> tuple[str, list[object]]:
    """The compare-and-set UPDATE of a move, and its parameters."""
    dst, src = checked_move(expected, new)
    check_fields(fields)
    return update_sql(tuple(fields), len(src)), [dst, *(_encode(n, v) for n, v in fields.items()), name, *src]


class _Short(Exception):
    """A pool had too few ready VMs: roll the checkout_many transaction back."""


class SqliteStore(SqliteMeta):
    """A :class:`~corral.store.base.Store` on one sqlite file (or ``":memory:"``).

    One connection per object, guarded by a lock, so an object may be shared by threads;
    other processes open their own ``SqliteStore`` on the same path.
    """

    def __init__(self, path: str | os.PathLike[str], *, lock_wait_s: float = LOCK_WAIT_S) -> None:
        self.path = os.fspath(path)
        self.lock_wait = LockWait(lock_wait_s)
        if self.path != ":memory:":
            directory = Path(self.path).parent
            try:
                directory.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise StoreOpenError(self.path, directory_problem(str(directory), err)) from None
        self._session = Session(repr(self))
        self._checkpointer: Checkpointer | None = None
        try:
            # isolation_level=None: autocommit; each single statement is its own atomic
            # transaction and multi-statement writes say BEGIN IMMEDIATE themselves.
            conn = sqlite3.connect(
                self.path,
                timeout=0,  # no sqlite busy handler: _run() waits for locks itself
                isolation_level=None,
                check_same_thread=False,
                cached_statements=256,
                factory=WaitingConnection,
            )
            conn.lock_wait = self.lock_wait
            self._session.conn = conn
            with self._session as conn:
                self._setup(conn)
            self._later = self._session.later = LaterCommits(self._session, within_s=LATER_S)
            if self.path != ":memory:":
                self._checkpointer = Checkpointer(self.path)
                self._checkpointer.start()
        except BaseException as err:
            self.close()
            cause = err if isinstance(err, sqlite3.Error) else err.__cause__  # a StoreError of the session
            if isinstance(cause, sqlite3.Error):
                code = getattr(cause, "sqlite_errorcode", None)
                raise StoreOpenError(self.path, open_problem(str(cause), code, PathAccess.of(self.path))) from err
            if isinstance(err, StoreError):
                raise StoreOpenError(self.path, str(err)) from err
            raise

    def _setup(self, conn: sqlite3.Connection) -> None:
        (mode,) = _run(conn, "PRAGMA journal_mode = WAL").fetchone()
        if mode != "wal" and self.path != ":memory:":  # ":memory:" stays "memory"
            raise StoreError(f"it cannot use WAL (journal mode {mode})")
        # With WAL, NORMAL syncs only at checkpoints: a committed transaction is in the WAL
        # file (the OS page cache) when COMMIT returns, so it survives the process being
        # killed; only an OS crash or power loss may lose the last commits, and it never
        # corrupts the database. FULL would fsync on every commit for little gain.
        conn.execute("PRAGMA synchronous = NORMAL")
        # Checkpoints run in a thread of their own (sqlite_checkpoint); this is the backstop.
        conn.execute(f"PRAGMA wal_autocheckpoint = {BACKSTOP_PAGES}")
        (version,) = _run(conn, "PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        # Create or upgrade in place; a second process may be doing it too, so look again
        # once the write lock is held.
        with _immediate(conn):
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(f"it has schema version {version}; this corral knows version {SCHEMA_VERSION}")
            upgrades = range(version, SCHEMA_VERSION)
            scripts = [UPGRADES[v] for v in upgrades] if version else [CREATE_SCHEMA]
            for script in scripts:
                for statement in statements(script):
                    conn.execute(statement)

    def _one(self, sql: str, params: tuple[object, ...] | list[object]) -> Vm | None:
        """Run one statement (its own atomic transaction); the VM of its first row."""
        with self._session as conn:
            rows = _run(conn, sql, params).fetchall()
        return _vm_from_row(rows[0]) if rows else None

    def close(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.stop()
        self._session.close()

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
            added = _run(conn, ADD_SQL, params).rowcount
        if added != 1:
            raise StoreError(f"VM {vm.name!r} already exists in an active state")

    def add_vms(self, vms: list[Vm]) -> None:
        if len(vms) <= 1:
            for vm in vms:
                self.add_vm(vm)
            return
        rows = [[_encode(c, getattr(vm, c)) for c in COLUMNS] for vm in vms]
        with self._session as conn, _immediate(conn):
            for vm, params in zip(vms, rows, strict=True):
                if conn.execute(ADD_SQL, params).rowcount != 1:
                    raise StoreError(f"VM {vm.name!r} already exists in an active state")  # rolls back

    def get_vm(self, name: str) -> Vm | None:
        return self._one(GET_SQL, (name,))

    def list_vms(
        self,
        *,
        pool: str | None = None,
        states: Iterable[VmState] | None = None,
    ) -> list[Vm]:
        params: list[object] = [] if pool is None else [pool]
        n_states = None
        if states is not None:
            wanted = [VmState(s).value for s in ((states,) if isinstance(states, str) else states)]  # one state given
            if not wanted:
                return []
            params += wanted
            n_states = len(wanted)
        with self._session as conn:
            rows = _run(conn, list_sql(pool is not None, n_states), params).fetchall()
        return [_vm_from_row(r) for r in rows]

    def transition(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        return self._one(*_move_statement(name, expected, new, fields))

    def transition_soon(
        self,
        name: str,
        expected: Iterable[VmState],
        new: VmState,
        **fields: object,
    ) -> Vm | None:
        """:meth:`transition`, committed with the next write or within :data:`LATER_S`, not on
        its own: for moves a crash may lose because recovery redoes them. Cheaper than a
        commit of its own; a write that returns after it commits it too."""
        with self._later as conn:
            rows = _run(conn, *_move_statement(name, expected, new, fields)).fetchall()
        return _vm_from_row(rows[0]) if rows else None

    def update_vm(self, name: str, **fields: object) -> Vm | None:
        check_fields(fields)
        if not fields:
            return self.get_vm(name)
        params = [*(_encode(n, v) for n, v in fields.items()), name]
        return self._one(update_sql(tuple(fields), 0), params)

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
        return self._one(CHECKOUT_SQL, (now, lifetime_s, token, user, pool, 1))

    def checkout_many(
        self,
        wanted: list[tuple[str, int]],
        *,
        now: float,
        lifetimes: dict[str, float],
        token: str | None = None,
        user: str | None = None,
    ) -> list[Vm] | None:
        totals = checkout_totals(wanted, lifetimes)
        if len(wanted) == 1 and wanted[0][1] == 1:  # one statement is atomic on its own
            pool = wanted[0][0]
            vm = self.checkout(pool, now=now, lifetime_s=lifetimes[pool], token=token, user=user)
            return None if vm is None else [vm]
        taken: dict[str, list[Vm]] = {}
        try:
            with self._session as conn, _immediate(conn):
                for pool, count in totals.items():
                    params = (now, lifetimes[pool], token, user, pool, count)
                    rows = conn.execute(CHECKOUT_SQL, params).fetchall() if count else []
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
            rows = _run(conn, COUNTS_SQL).fetchall()
        result: dict[str, dict[VmState, int]] = {}
        for pool, state, n in rows:
            result.setdefault(pool, {})[VmState(state)] = n
        return result

    def purge_destroyed(self, older_than: float) -> int:
        with self._session as conn, _immediate(conn):
            purged = conn.execute(PURGE_VMS_SQL, (older_than,)).rowcount
            purge_history(conn, older_than)
        return purged

    def request_vms(self, request_id: str) -> list[Vm]:
        with self._session as conn:
            rows = _run(conn, REQUEST_VMS_SQL, (request_id,)).fetchall()
        return [_vm_from_row(r) for r in rows]
