"""libvirt's event loop: libvirt's own (default) event implementation, run on a thread of its
own, once per process.

libvirt takes one event implementation per process, for good: a second registration is refused.
corral's own loop is not a safe home for it, because a process may run more than one asyncio
loop over its life (a test suite, a service embedded in another program) and libvirt would keep
calling into the first one after it closed. libvirt's asyncio adapter (libvirtaio) is no
answer either: libvirt adds and changes its timers and watches from whichever thread makes a
call (corral's calls run on each host's worker threads), and that adapter touches its asyncio
loop from those threads without waking it, so an event queued by a call could wait for ever.
libvirt's default implementation is made for that: any thread may change it, and it wakes its
poll when one does. So the first connection opened starts this thread, which registers the
default implementation and then runs it; every connection's events and keepalives are served
there, and each callback hands its event to the loop of the provider that asked for it
(``call_soon_threadsafe``), which is where the inventory lives.
"""

from __future__ import annotations

import logging
import threading
import time

import libvirt

__all__ = ["ensure_event_loop"]

log = logging.getLogger("corral.providers.libvirt")

_lock = threading.Lock()
_thread: threading.Thread | None = None


def _quiet(_context: object, _error: object) -> None:
    """libvirt prints every error to standard error unless a handler takes it; corral raises
    them as exceptions and logs what matters, so the printing is switched off."""


def _serve() -> None:
    failures = 0
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            failures += 1
            if failures == 1 or failures % 100 == 0:
                log.warning("libvirt's event loop failed a round", extra={"failures": failures})
            time.sleep(min(0.01 * failures, 1.0))  # no busy loop while it keeps failing
        else:
            failures = 0


def ensure_event_loop() -> threading.Thread:
    """Start libvirt's event thread if it is not running yet; returns it. Call it before the
    first connection opens (libvirt only watches connections opened after)."""
    global _thread
    with _lock:
        if _thread is None:
            libvirt.registerErrorHandler(_quiet, None)
            libvirt.virEventRegisterDefaultImpl()
            thread = threading.Thread(target=_serve, name="libvirt-events", daemon=True)
            thread.start()
            _thread = thread
        return _thread
