"""How the sqlite store talks to its connection: busy retries, transactions, sessions."""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from corral.store.base import StoreError

BUSY_TIMEOUT_S = 10.0  # how long a statement waits for another process's write lock
_RETRY_FIRST_S, _RETRY_MAX_S = 20e-6, 1e-3


def run(conn: sqlite3.Connection, sql: str, params: Any = ()) -> sqlite3.Cursor:
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
def immediate(conn: sqlite3.Connection) -> Iterator[None]:
    """A ``BEGIN IMMEDIATE`` transaction: committed on success, rolled back on any error."""
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
    ``contextlib`` per call."""

    __slots__ = ("conn", "lock", "owner")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.lock = threading.Lock()
        self.conn: sqlite3.Connection | None = None

    def __enter__(self) -> sqlite3.Connection:
        self.lock.acquire()
        conn = self.conn
        if conn is None:
            self.lock.release()
            raise StoreError(f"{self.owner} is closed")
        return conn

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.lock.release()
        if isinstance(exc, sqlite3.Error):
            raise StoreError(f"{self.owner}: {exc}") from exc

    def close(self) -> None:
        """Close the connection (once the lock is free); the session answers "closed" after."""
        with self.lock:
            conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
