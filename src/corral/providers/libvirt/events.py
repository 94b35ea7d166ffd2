"""libvirt's event loop: libvirtaio on an asyncio loop of its own thread, once per process.

libvirt takes one event implementation per process, for good: a second registration is refused.
corral's own loop is not a safe home for it, because a process may run more than one asyncio
loop over its life (a test suite, a service embedded in another program) and libvirt would keep
calling into the first one after it closed. So the first connection opened starts this thread,
which registers libvirtaio on its loop before the connection opens; every connection's events
and keepalives are served there, and each callback hands its event to the loop of the provider
that asked for it (``call_soon_threadsafe``), which is where the inventory lives.
"""

from __future__ import annotations

import asyncio
import threading

import libvirt
import libvirtaio

__all__ = ["ensure_event_loop"]

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _quiet(_context: object, _error: object) -> None:
    """libvirt prints every error to standard error unless a handler takes it; corral raises
    them as exceptions and logs what matters, so the printing is switched off."""


def _serve(loop: asyncio.AbstractEventLoop, started: threading.Event) -> None:
    asyncio.set_event_loop(loop)
    libvirtaio.virEventRegisterAsyncIOImpl(loop=loop)
    loop.call_soon(started.set)
    loop.run_forever()


def ensure_event_loop() -> asyncio.AbstractEventLoop:
    """Start libvirt's event thread if it is not running yet; returns its loop. Call it before
    the first connection opens (libvirt only watches connections opened after)."""
    global _loop
    with _lock:
        if _loop is None:
            libvirt.registerErrorHandler(_quiet, None)
            loop = asyncio.new_event_loop()
            started = threading.Event()
            thread = threading.Thread(target=_serve, args=(loop, started), name="libvirt-events", daemon=True)
            thread.start()
            if not started.wait(10):
                raise RuntimeError("libvirt's event thread did not start")
            _loop = loop
        return _loop
