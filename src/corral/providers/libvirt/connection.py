"""One KVM host's libvirt connection: opened once, held for the life of the provider, reopened with
back-off when it drops.

libvirt's calls block, so each host has a small pool of worker threads (``concurrency``) that
make them; the connection itself is shared by those threads, as libvirt allows. A call that
fails because the connection is gone (libvirt says so, or keepalive closed it) marks the host
down and starts the reconnect loop; the provider hears of both through ``on_down`` and
``on_up``, and reads the host again after ``on_up``. Domain lifecycle events arrive on
libvirt's event thread (``events.py``) and are handed to the provider's loop with the
connection's generation, so an event of a connection since replaced is recognised and dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import libvirt

from corral.providers.base import Cause, HostUnavailable, ProviderError, VmNotFound
from corral.providers.libvirt.counting import Counted
from corral.providers.libvirt.errors import NO_DOMAIN, NO_SUPPORT, Fault, classify
from corral.providers.libvirt.events import ensure_event_loop

__all__ = ["DomainEvent", "HostConnection", "LibvirtFault", "Opener"]

log = logging.getLogger("corral.providers.libvirt")

T = TypeVar("T")
Opener = Callable[[str], Any]  # a URI -> an open libvirt connection (libvirt.open)



class LibvirtFault(ProviderError):
    """A libvirt call failed; ``fault`` says what kind of failure it was."""

    def __init__(self, fault: Fault) -> None:
        super().__init__(fault.message, retryable=fault.retryable, cause=fault.cause)
        self.fault = fault


@dataclass(frozen=True, slots=True)
class DomainEvent:
    """One lifecycle event of one domain, as libvirt reported it on a host's connection."""

    host: str
    generation: int  # the connection's; events of an older connection are stale
    name: str
    uuid: str
    event: int  # VIR_DOMAIN_EVENT_DEFINED, _STARTED, …
    detail: int


class HostConnection:
    """The connection to one host. ``on_event`` gets each domain event, ``on_down``/``on_up`` the
    host's name when its connection is lost and when it is open again; all run on the loop that
    opened the connection."""

    CLOSE_WAIT = 5.0  # seconds a close waits for a free thread

    def __init__(self, name: str, uri: str, *, concurrency: int, call_timeout: float, keepalive: tuple[int, int],
                 backoff: tuple[float, float], calls: Counter[str], on_event: Callable[[DomainEvent], None],
                 on_down: Callable[[str], None], on_up: Callable[[str], None], opener: Opener = libvirt.open) -> None:
        self.name = name
        self.uri = uri  # never logged or shown: it may carry a user name
        self.call_timeout = call_timeout
        self.keepalive = keepalive
        self.backoff = backoff
        self.calls = calls
        self.on_event = on_event
        self.on_down = on_down
        self.on_up = on_up
        self.opener = opener
        self.executor = ThreadPoolExecutor(concurrency, thread_name_prefix=f"libvirt-{name}")
        self.conn: Any = None  # a Counted libvirt connection while up
        self.up = False
        self.generation = 0
        self.error: str | None = None  # why the host is down
        self.driver = ""  # the connection's driver ("QEMU", "Test" …)
        self._callbacks: list[int] = []
        self._attempts = itertools.count(1)
        self._reconnect: asyncio.Task[None] | None = None
        self._closed = False

    # -- calls -----------------------------------------------------------------------------

    async def call(self, operation: str, subject: str, fn: Callable[[Any], T], *, vm: str | None = None) -> T:
        """Run ``fn(connection)`` on one of the host's threads. A libvirt error becomes a
        :class:`LibvirtFault` (or :class:`VmNotFound` for a missing domain when ``vm`` names it);
        a lost connection also starts the reconnect."""
        conn = self.conn
        if conn is None or not self.up:
            raise HostUnavailable(f"libvirt host {self.name!r} is not connected ({self.error or 'connecting'})")
        generation = self.generation
        try:
            return await self._run(operation, subject, lambda: fn(conn), self.call_timeout)
        except libvirt.libvirtError as exc:
            raise self.fault(exc, operation, subject, generation, vm=vm) from None

    def submit(self, fn: Callable[[Any], T]) -> asyncio.Future[T]:
        """Start ``fn(connection)`` on one of the host's threads and return its future, for work
        that must be seen to its end even when nobody waits for it any more (a create)."""
        conn = self.conn
        if conn is None or not self.up:
            raise HostUnavailable(f"libvirt host {self.name!r} is not connected ({self.error or 'connecting'})")
        return asyncio.get_running_loop().run_in_executor(self.executor, fn, conn)

    async def _run(self, operation: str, subject: str, fn: Callable[[], T], timeout: float) -> T:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                return await loop.run_in_executor(self.executor, fn)
        except TimeoutError:
            raise ProviderError(f"libvirt host {self.name!r}: {operation} of {subject!r} took longer than "
                                f"{timeout:g} s", cause=Cause.TIMEOUT) from None
        except ValueError as exc:  # XML corral could not read or make
            raise ProviderError(f"libvirt host {self.name!r}: {operation} of {subject!r}: {exc}",
                                retryable=False, cause=Cause.REFUSED) from None

    def fault(self, exc: libvirt.libvirtError, operation: str, subject: str, generation: int, *,
              vm: str | None = None) -> ProviderError:
        """The error a failed call raises; a lost connection is noticed here (on the loop), when
        the call was made on the connection that is current (``generation``) and was not a
        migration (whose errors speak of the connection to the other host)."""
        code = exc.get_error_code() or 0
        if code == NO_DOMAIN and vm is not None:
            return VmNotFound(vm)
        fault = classify(code, exc.get_error_message() or str(exc), operation=operation, subject=subject,
                         host=self.name)
        if fault.connection_lost and generation == self.generation and operation != "migrate":
            self.lost(fault.message)
        return LibvirtFault(fault)

    # -- opening and losing the connection ------------------------------------------------

    async def open(self) -> None:
        """Open the connection and register for domain events; raises :class:`ProviderError`."""
        loop = asyncio.get_running_loop()
        ensure_event_loop()  # libvirt watches only connections opened after its event loop exists
        generation = next(self._attempts)  # an attempt given up on never shares a number with a later one

        def lifecycle(_conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
            happened = DomainEvent(self.name, generation, dom.name(), dom.UUIDString(), event, detail)
            try:
                loop.call_soon_threadsafe(self.on_event, happened)
            except RuntimeError:  # the provider's loop is closed: nobody listens any more
                pass

        def closed(_conn: Any, reason: int, _opaque: Any) -> None:
            try:
                loop.call_soon_threadsafe(self._closed_by_libvirt, generation, reason)
            except RuntimeError:
                pass

        def opening() -> tuple[Any, list[int], str]:
            conn = Counted(self.opener(self.uri), self.calls)
            try:
                try:
                    conn.setKeepAlive(*self.keepalive)
                except libvirt.libvirtError as exc:
                    if exc.get_error_code() != NO_SUPPORT:  # local drivers (test://) have no keepalive
                        raise
                ids = [conn.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, lifecycle, None)]
                conn.registerCloseCallback(closed, None)
                return conn, ids, conn.getType()
            except BaseException:
                conn.close()
                raise

        future = loop.run_in_executor(self.executor, opening)
        try:
            async with asyncio.timeout(self.call_timeout):
                conn, ids, driver = await asyncio.shield(future)
        except TimeoutError:
            future.add_done_callback(self._abandoned)
            raise ProviderError(f"libvirt host {self.name!r}: no connection within {self.call_timeout:g} s",
                                cause=Cause.HOST) from None
        except asyncio.CancelledError:
            future.add_done_callback(self._abandoned)
            raise
        except libvirt.libvirtError as exc:
            raise self.fault(exc, "connect", self.name, generation) from None
        self.conn, self._callbacks, self.driver = conn, ids, driver
        self.generation = generation
        self.up = True
        self.error = None

    def _abandoned(self, future: asyncio.Future[tuple[Any, list[int], str]]) -> None:
        """An open nobody waits for any more finished after all: close what it opened."""
        if future.cancelled() or future.exception() is not None:
            return
        conn, ids, _ = future.result()
        try:
            self.executor.submit(self._closing, conn, ids)
        except RuntimeError:  # the executor is shut down
            self._closing(conn, ids)

    def _closed_by_libvirt(self, generation: int, reason: int) -> None:
        if generation == self.generation:
            why = {libvirt.VIR_CONNECT_CLOSE_REASON_EOF: "the host closed the connection",
                   libvirt.VIR_CONNECT_CLOSE_REASON_KEEPALIVE: "keepalive got no answer",
                   libvirt.VIR_CONNECT_CLOSE_REASON_ERROR: "the connection failed"}.get(reason, "the connection closed")
            self.lost(f"libvirt host {self.name!r}: {why}")

    def lost(self, why: str) -> None:
        """The connection is gone: mark the host down and start reopening it (once)."""
        if self._closed or not self.up:
            return
        self.up = False
        self.error = why
        old, self.conn = self.conn, None
        log.warning("libvirt connection lost", extra={"provider_host": self.name, "error": why})
        self.on_down(self.name)
        self._reconnect = asyncio.get_running_loop().create_task(self._reopen(old), name=f"libvirt-reopen-{self.name}")

    async def _reopen(self, old: Any) -> None:
        await self._drop(old)
        delay, longest = self.backoff
        while not self._closed:
            await asyncio.sleep(delay)
            try:
                await self.open()
            except ProviderError as exc:
                self.error = str(exc)
                delay = min(delay * 2, longest)
                continue
            log.info("libvirt connection reopened", extra={"provider_host": self.name})
            self.on_up(self.name)
            return

    async def _drop(self, conn: Any) -> None:
        """Close a connection that is no longer used; errors are of no interest now."""
        if conn is None:
            return
        ids, self._callbacks = self._callbacks, []
        try:
            async with asyncio.timeout(self.CLOSE_WAIT):  # calls in flight may hold every thread for long
                await asyncio.get_running_loop().run_in_executor(self.executor, self._closing, conn, ids)
        except (RuntimeError, TimeoutError):  # the executor is shut down, or busy: the close runs when it can
            pass

    @staticmethod
    def _closing(conn: Any, ids: list[int]) -> None:
        for callback in ids:
            try:
                conn.domainEventDeregisterAny(callback)
            except libvirt.libvirtError:
                pass
        try:
            conn.unregisterCloseCallback()
        except libvirt.libvirtError:
            pass
        try:
            conn.close()
        except libvirt.libvirtError:
            pass

    def start_reopening(self, why: str) -> None:
        """The first open failed: keep trying in the background, with back-off."""
        self.error = why
        self._reconnect = asyncio.get_running_loop().create_task(self._reopen(None), name=f"libvirt-reopen-{self.name}")

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._reconnect is not None:
            self._reconnect.cancel()
            try:
                await self._reconnect
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - it is being stopped
                pass
        self.up = False
        old, self.conn = self.conn, None
        await self._drop(old)
        self.executor.shutdown(wait=False, cancel_futures=True)
