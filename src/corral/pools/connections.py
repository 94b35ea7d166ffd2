"""Provider sessions: one that cannot be reached does not stop the others.

At start every provider is tried once, all at once, and the manager waits a bounded time for
those first attempts: one that is still connecting then (an address that never answers) goes
on in the background. One that fails (cannot connect, or its first inventory cannot be read)
is left down and tried again after a backoff: 1 s, doubled each time, up to 60 s. Each failed
attempt is one log line without a traceback. When it comes up, the manager brings it in
(templates, inventory, recovery) and its pools start filling; meanwhile the manager leaves its
pools and its VMs alone. ``view()`` is what ``/status`` shows of each provider's session.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from corral.providers.base import Provider, ProviderError

log = logging.getLogger("corral.pool")


def next_retry_delay(previous: float | None, first: float, cap: float) -> float:
    """Seconds before the next attempt: ``first``, then doubled after each failure, at most ``cap``."""
    return min(first if previous is None else previous * 2, cap)


def failure_text(exc: BaseException) -> str:
    """One line for the log and ``/status``: a provider's own error as it is, others with their type."""
    text = str(exc) if isinstance(exc, ProviderError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split()) or type(exc).__name__


@dataclass(slots=True)
class Link:
    """One provider's session as the manager sees it."""

    connected: bool = False
    error: str | None = None  # why the last attempt failed
    attempts: int = 0
    delay: float | None = None  # the last backoff
    retry_at: float | None = None  # monotonic time of the next attempt

    def view(self, now: float) -> LinkStatus:
        retry_in = None if self.retry_at is None else round(max(self.retry_at - now, 0.0), 3)
        return LinkStatus(connected=self.connected, error=self.error, attempts=self.attempts, retry_in=retry_in)


@dataclass(frozen=True, slots=True)
class LinkStatus:
    """A provider's session as ``/status`` shows it: its last attempt and the seconds until the
    next one (None while connected, or while an attempt is under way)."""

    connected: bool
    error: str | None
    attempts: int
    retry_in: float | None


class Connections:
    """Connects providers and brings each in with ``bring_in`` (run right after its connect;
    a failure there counts as a failed attempt and closes the session again)."""

    def __init__(self, providers: Mapping[str, Provider], bring_in: Callable[[str], Awaitable[None]], *,
                 first_s: float = 1.0, max_s: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.providers = providers
        self.bring_in = bring_in
        self.first_s = first_s
        self.max_s = max_s
        self.clock = clock
        self.links = {name: Link() for name in providers}
        self._first: dict[str, asyncio.Task[bool]] = {}
        self._retries: dict[str, asyncio.Task[None]] = {}

    def up(self, provider: str) -> bool:
        link = self.links.get(provider)
        return link is not None and link.connected

    def down(self) -> list[str]:
        return [name for name, link in self.links.items() if not link.connected]

    async def connect_all(self, wait_s: float) -> None:
        """Try every provider once, concurrently, waiting at most ``wait_s`` for them; those that
        failed, or are still connecting, are left to :meth:`keep_trying`."""
        self._first = {name: asyncio.create_task(self.attempt(name), name=f"connect-{name}")
                       for name in self.providers}
        if self._first:
            await asyncio.wait(self._first.values(), timeout=wait_s)

    async def attempt(self, name: str) -> bool:
        """Connect ``name`` and bring it in; on failure log one line and set the next try."""
        link = self.links[name]
        link.attempts += 1
        provider = self.providers[name]
        try:
            await provider.connect()
            await self.bring_in(name)
        except Exception as exc:  # noqa: BLE001 - any failure leaves this provider down, not corral
            link.error = failure_text(exc)
            link.delay = next_retry_delay(link.delay, self.first_s, self.max_s)
            link.retry_at = self.clock() + link.delay
            log.warning("provider unreachable, retrying", extra={"provider": name, "error": link.error,
                                                                 "attempt": link.attempts, "retry_in": link.delay})
            if not isinstance(exc, ProviderError):
                log.debug("provider connect failed", exc_info=True, extra={"provider": name})
            with contextlib.suppress(Exception):
                await provider.close()
            return False
        if link.attempts > 1:
            log.info("provider connected", extra={"provider": name, "attempts": link.attempts})
        link.connected, link.error, link.delay, link.retry_at = True, None, None, None
        return True

    def keep_trying(self) -> None:
        """Retry each provider that is down, in the background, until it is up."""
        self._first = {name: task for name, task in self._first.items() if not task.done()}
        for name in self.down():
            if name not in self._retries:
                self._retries[name] = asyncio.create_task(self._retry(name), name=f"connect-{name}")

    async def _retry(self, name: str) -> None:
        link = self.links[name]
        first = self._first.pop(name, None)
        if first is not None and not first.done():
            await first  # the first attempt is still under way
        while not link.connected:
            await asyncio.sleep(max((link.retry_at or 0.0) - self.clock(), 0.0))
            await self.attempt(name)
        self._retries.pop(name, None)

    async def forget(self, name: str) -> None:
        """Stop connecting ``name``'s session: the provider under its name is new (or was not
        there); :meth:`keep_trying` then connects the new one."""
        tasks = [t for t in (self._retries.pop(name, None), self._first.pop(name, None)) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.links[name] = Link()

    async def stop(self) -> None:
        tasks = [*self._retries.values(), *self._first.values()]
        self._retries, self._first = {}, {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task

    def view(self) -> dict[str, LinkStatus]:
        now = self.clock()
        return {name: link.view(now) for name, link in self.links.items()}
