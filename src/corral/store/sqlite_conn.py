"""How the sqlite store talks to its connection: busy retries, transactions, sessions."""

from __future__ import annotations

import logging
import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from corral.store.base import StoreError, StoreUnavailable

log = logging.getLogger("corral.store")

LOCK_WAIT_S = 2.0  # how long a statement waits for another process's write lock (:store: lock_wait)
LOCKED_WAIT_S = 0.01  # how long, while the store is known to be locked (see LockWait)
_RETRY_FIRST_S, _RETRY_MAX_S = 20e-6, 1e-3
_LOCKED_CODES = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)


def wait_bound(limit_s: float, locked_s: float, locked: bool) -> float:
    """How long a statement waits for the write lock: ``limit_s``, or only ``locked_s`` while an
    earlier statement already waited its whole limit in vain (the lock is held for long)."""
    return min(locked_s, limit_s) if locked else limit_s


class LockWait:
    """How long the statements of one connection wait for another process's write lock.

    The store is called on the event loop, so a statement that waits holds up every request of
    the process. A statement waits at most ``limit_s``; once one has waited that long in vain
    (``since``: when), the lock is taken to be held for long and the next statements wait only
    ``locked_s``, each failing at once as unavailable, until one gets the lock again.
    """

    __slots__ = ("limit_s", "locked_s", "since")

    def __init__(self, limit_s: float = LOCK_WAIT_S, locked_s: float = LOCKED_WAIT_S) -> None:
        if limit_s <= 0:
            raise ValueError(f"the wait for a sqlite lock must be > 0 s, not {limit_s}")
        self.limit_s = limit_s
        self.locked_s = locked_s
        self.since: float | None = None

    def bound(self) -> float:
        return wait_bound(self.limit_s, self.locked_s, self.since is not None)


class WaitingConnection(sqlite3.Connection):
    """A connection that carries its :class:`LockWait` (what :func:`run` waits for a lock)."""

    lock_wait: LockWait


def locked(err: sqlite3.Error) -> bool:
    """True when ``err`` says another connection holds the lock (SQLITE_BUSY or SQLITE_LOCKED)."""
    return getattr(err, "sqlite_errorcode", 0) & 0xFF in _LOCKED_CODES


def store_error(owner: str, err: sqlite3.Error, wait: LockWait | None = None) -> StoreError:
    """The store error of a sqlite error: :class:`StoreUnavailable` when another process holds
    the lock past the wait, naming the store (``owner``) and the wait."""
    if locked(err):
        waited = f"{wait.limit_s:g} s" if wait is not None else "its wait"
        return StoreUnavailable(f"{owner} is locked by another process: a write waited {waited} for it "
                                f"(:store: lock_wait) and the store answers again once the lock is released ({err})")
    return StoreError(f"{owner}: {err}")


def run(conn: sqlite3.Connection, sql: str, params: Any = ()) -> sqlite3.Cursor:
    """Execute one statement, waiting for another process's write lock as the connection's
    :class:`LockWait` says (:data:`LOCK_WAIT_S` for a plain connection).

    sqlite's own busy handler sleeps 1, 2, 5, 10 ... 100 ms between tries, so under
    contention a process can lose many rounds in a row and wait 100+ ms for a lock that is
    held for ~50 us. Retrying here with short, jittered sleeps keeps waits near the lock
    hold time. Retrying is safe: a statement that gets SQLITE_BUSY has done nothing (writes
    take their lock before they start; BEGIN IMMEDIATE takes it up front).
    """
    wait: LockWait | None = getattr(conn, "lock_wait", None)
    delay, deadline = 0.0, 0.0
    before = conn.total_changes
    while True:
        try:
            cursor = conn.execute(sql, params)
        except sqlite3.OperationalError as err:
            if not locked(err):
                raise
            now = time.monotonic()
            if not deadline:
                deadline = now + (wait.bound() if wait is not None else LOCK_WAIT_S)
            elif now > deadline:
                if wait is not None and wait.since is None:
                    wait.since = now
                raise
        else:
            # it got the lock (it waited, opened a write transaction or wrote): not locked now
            if wait is not None and wait.since is not None and (
                    deadline or conn.in_transaction or conn.total_changes != before):
                wait.since = None
            return cursor
        delay = min(delay * 2 or _RETRY_FIRST_S, _RETRY_MAX_S)
        time.sleep(delay * random.uniform(0.5, 1.5))


@contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error.

    Inside a transaction already open (writes left for later, see :class:`Session`) it is a
    savepoint instead: released on success, its writes alone undone on an error; the session
    commits the whole when the block that holds it ends.
    """
    if conn.in_transaction:
        conn.execute("SAVEPOINT corral_write")
        try:
            yield
        except BaseException:
            conn.execute("ROLLBACK TO corral_write")
            raise
        finally:
            conn.execute("RELEASE corral_write")
        return
    run(conn, "BEGIN IMMEDIATE")
    try:
        yield
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:  # an error, or a COMMIT that failed
            conn.execute("ROLLBACK")


class Session:
    """A store's connection (``conn``, None until opened and once closed) and the lock that
    guards it. ``with session as conn``: the lock held, the connection open, sqlite errors
    raised as :class:`StoreError` naming ``owner`` (the store). A plain class: cheaper than
    ``contextlib`` per call.

    Writes left for later (``with session.later as conn``, see :class:`LaterCommits`) stay
    in an open transaction; the next ordinary block that writes commits them with its own
    writes, in one commit, before it returns: what a caller was told is written is durable.
    A block that only reads leaves them for later (it sees them: one connection).
    """

    __slots__ = ("changes", "conn", "later", "lock", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None
        self.later: LaterCommits | None = None
        self.changes = 0  # the connection's count of changed rows when the block began

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        conn = self.conn
        if conn is None:
            self.lock.release()
            raise StoreError(f"{self.owner} is closed")
        self.changes = conn.total_changes
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        try:
            conn = self.conn
            # writes left for later, and this block wrote (in their transaction): commit both
            if conn is not None and conn.in_transaction and conn.total_changes != self.changes:
                commit(conn)
        except sqlite3.Error as err:
            exc = exc or err
        finally:
            self.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise store_error(self.owner, exc, getattr(self.conn, "lock_wait", None)) from exc

    def close(self) -> None:
        """Commit what was left for later, close the connection (once the lock is free); the
        session answers "closed" after."""
        if self.later is not None:
            self.later.stop()
        with self.lock:
            conn, self.conn = self.conn, None
            if conn is not None and conn.in_transaction:
                commit(conn)
        if conn is not None:
            conn.close()


def commit(conn: sqlite3.Connection) -> None:
    """COMMIT the open transaction; if that fails, roll it back and raise."""
    try:
        conn.execute("COMMIT")
    finally:
        if conn.in_transaction:
            conn.execute("ROLLBACK")


class LaterCommits:
    """Writes that may wait for the next commit: a crash may lose them, so only writes whose
    loss recovery repairs (a VM found ready, a destroy found done) are left for later.

    ``with later as conn`` opens a write transaction if none is open and leaves it open; the
    session's next ordinary write commits it, or a thread of its own does within
    ``within_s`` seconds. Meanwhile other processes wait for sqlite's write lock, so the wait
    is kept short.
    """

    def __init__(self, session: Session, *, within_s: float) -> None:
        if within_s <= 0:
            raise ValueError(f"the wait for a later commit must be > 0 s, not {within_s}")
        self.session = session
        self.within_s = within_s
        self.left = 0  # writes left for later so far
        self.failures = 0  # commits of the thread that failed (their writes were rolled back)
        self._due = threading.Condition(threading.Lock())
        self._waiting = False  # a transaction was opened that the thread has not yet taken up
        self._idle = False  # the thread waits for such a transaction (only then is it woken)
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name=f"sqlite-commit {session.owner}", daemon=True)
        self._thread.start()

    def __enter__(self) -> sqlite3.Connection:
        conn = self.session.__enter__()
        try:
            if not conn.in_transaction:
                run(conn, "BEGIN IMMEDIATE")
                with self._due:
                    self._waiting = True
                    if self._idle:  # a thread counting down already takes it up after its commit
                        self._due.notify()
        except BaseException as err:
            self.session.lock.release()
            if isinstance(err, sqlite3.Error):
                raise store_error(self.session.owner, err, getattr(conn, "lock_wait", None)) from err
            raise
        self.left += 1
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.session.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise store_error(self.session.owner, exc, getattr(self.session.conn, "lock_wait", None)) from exc

    def stop(self) -> None:
        with self._due:
            self._stopped = True
            self._due.notify()
        if self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        while True:
            with self._due:
                while not self._waiting and not self._stopped:
                    self._idle = True
                    self._due.wait()
                self._idle = self._waiting = False
                deadline = time.monotonic() + self.within_s
                while not self._stopped and (left := deadline - time.monotonic()) > 0:
                    self._due.wait(left)  # stop() ends the wait early
                if self._stopped:
                    return  # closing the session commits what is left
            self.flush()

    def flush(self) -> None:
        """Commit what is left for later now (nothing if it is committed already)."""
        with self.session.lock:
            conn = self.session.conn
            if conn is None or not conn.in_transaction:
                return
            try:
                commit(conn)
            except sqlite3.Error as err:
                self.failures += 1
                log.warning("writes left for later could not be committed; recovery redoes them",
                            extra={"error": str(err)})
