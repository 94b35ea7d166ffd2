"""Keeping the leases alive from a thread of their own.

The driver (``ha.loop``) renews the leases at each tick, on the event loop the pool service
runs on. A manager busy filling thousands of VMs keeps that loop so busy that a tick, and each
await of its calls, comes seconds late: the renewal's answer then arrives after its timeout,
the deadline passes, the pool service is stopped, and its restart (recovery of every VM) makes
the loop busier still, so a big fill never finished. The keeper renews the held leases every
``renew_every_s`` from a thread with a synchronous client, whatever the loop is doing
(``Broker.keep``): the deadlines stay ahead while Redis answers, and a late tick finds its
leases kept. A lease the keeper finds lost is not extended; the next tick lets the pool go.

A loop that is hung rather than busy must not keep its pools: the keeper renews only while the
loop has observed within the last ``SILENT_TTLS`` lease lives (30 s with the default 5 s TTL);
after that the leases expire and other managers take the pools.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("corral.ha")

SILENT_TTLS = 6  # lease lives without a tick after which the keeper takes the loop as hung


class Keeper:
    """Calls ``keep()`` every ``every_s`` seconds in a daemon thread until :meth:`stop`."""

    def __init__(self, keep: Callable[[], None], every_s: float, name: str = "ha-keeper") -> None:
        self.keep = keep
        self.every_s = every_s
        self.rounds = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.keep()
            except Exception:  # keep() handles the store's errors; anything else must not end the thread
                log.exception("keeping the leases failed")
            self.rounds += 1
            self._stop.wait(self.every_s)

    def stop(self, timeout_s: float) -> None:
        """Stop the thread, waiting up to ``timeout_s`` for the round under way."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
