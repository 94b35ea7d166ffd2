"""Copying a sqlite store's write-ahead log into its database file, off the writers' thread.

In WAL mode a commit appends pages to the ``-wal`` file; a checkpoint copies them into the
database file and syncs both. sqlite's automatic checkpoint runs inside the commit that
crosses ``wal_autocheckpoint`` pages, in the caller's thread: with the API on one event
loop, every few hundred commits one request waited 5-10 ms for it (the p99 of a checkout).

:class:`Checkpointer` runs passive checkpoints from a thread and a connection of its own
instead. A passive checkpoint takes no write lock, so writers never wait for it, and it
changes nothing a commit promises: a committed transaction is in the WAL file when COMMIT
returns, checkpointed or not. The writers' connection keeps an automatic checkpoint with a
high threshold (:data:`BACKSTOP_PAGES`) as a backstop: under a steady stream of commits the
log is only rewound from its start after a checkpoint that caught up with every commit, which
the backstop provides. Each checkpoint syncs the log and the database file (two fsyncs, a few
ms each), so the backstop is set high: it stalls a writer rarely, and copies little then, the
thread having copied nearly everything already.
"""

from __future__ import annotations

import logging
import sqlite3
import threading

log = logging.getLogger("corral.store")

INTERVAL_S = 0.05  # how often the thread checkpoints what was committed meanwhile
BACKSTOP_PAGES = 16000  # the writers' own automatic checkpoint, ~64 MiB of WAL (sqlite's default: 1000 pages)


class Checkpointer:
    """A daemon thread checkpointing the sqlite file at ``path`` every ``interval_s`` seconds
    (see the module's docstring). ``start()`` once; ``stop()`` is idempotent and waits for it."""

    def __init__(self, path: str, *, interval_s: float = INTERVAL_S) -> None:
        if interval_s <= 0:
            raise ValueError(f"the checkpoint interval must be > 0 s, not {interval_s}")
        self.path = path
        self.interval_s = interval_s
        self.checkpoints = 0  # passive checkpoints run (whether or not there was anything to copy)
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"sqlite-checkpoint {path}", daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join()

    def _run(self) -> None:
        try:
            # timeout=0: a passive checkpoint never waits for a lock; busy means "next time"
            conn = sqlite3.connect(self.path, timeout=0, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as err:
            log.warning("the WAL checkpoint thread could not open the store; commits checkpoint themselves",
                        extra={"error": str(err)})
            return
        try:
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA wal_autocheckpoint = 0")  # this connection never writes; be explicit
            while not self._stop.wait(self.interval_s):
                self.checkpoint(conn)
        finally:
            conn.close()

    def checkpoint(self, conn: sqlite3.Connection) -> None:
        """One passive checkpoint on ``conn``; an error is counted and logged once, not raised."""
        try:
            conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as err:
            self.failures += 1
            if self.failures == 1:
                log.warning("a WAL checkpoint failed; the next is tried as usual", extra={"error": str(err)})
        else:
            self.checkpoints += 1
