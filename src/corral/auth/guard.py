"""The login guard: in front of every authenticator, so that logins cannot take the service down.

* **Bounded work**: at most ``login_workers`` checks run at once; up to ``login_queue`` more
  wait their turn, and a login beyond that is refused at once (:class:`LoginRefused`, 503)
  without any work done.
* **Backoff**: failed logins are counted per user name and per client address. From the
  ``login_failures``-th failure of a user (``login_address_failures``-th of an address), the
  next attempt must wait ``login_backoff`` seconds, doubled for each further failure up to
  ``login_backoff_max``; an attempt made sooner is refused (429) without asking the backend,
  even with the right password. A success clears the user's count (not the address's).
  Failures are forgotten once ``login_window`` seconds pass without one (and no wait is due).

Refusals are not failures: they neither count nor lengthen a wait. The tables are bounded
(:data:`MAX_TRACKED` entries each; the least recently failed entry goes first) and pruned as
they are used. User names are kept only as a short digest.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from corral.auth.base import Authenticator
from corral.auth.settings import AuthSettings

__all__ = ["MAX_TRACKED", "FailureTable", "LoginGuard", "LoginLimits", "LoginRefused", "backoff_delay"]

log = logging.getLogger("corral.auth")

MAX_TRACKED = 10_000  # entries per table (users, addresses)
BUSY_RETRY_AFTER = 1  # seconds a client refused for a full queue is told to wait
_MAX_DOUBLINGS = 64  # 2**64 times any delay is past any cap


def backoff_delay(failures: int, threshold: int, delay: float, delay_max: float) -> float:
    """Seconds to wait after ``failures`` failures in a row: 0 below ``threshold`` (or when
    ``threshold`` is 0), then ``delay`` doubled per failure past it, at most ``delay_max``."""
    if threshold <= 0 or failures < threshold:
        return 0.0
    return float(min(delay * 2.0 ** min(failures - threshold, _MAX_DOUBLINGS), delay_max))


@dataclass
class _Entry:
    failures: int
    last: float  # time of the last failure
    until: float  # no attempt before this time


class FailureTable:
    """Failed attempts per key, and how long a key must wait before its next attempt."""

    def __init__(self, *, threshold: int, window: float, delay: float, delay_max: float,
                 clock: Callable[[], float] = time.monotonic, capacity: int = MAX_TRACKED) -> None:
        self.threshold, self.window, self.delay, self.delay_max = threshold, window, delay, delay_max
        self.clock = clock
        self.capacity = capacity
        # an entry is surely stale this long after its last failure
        self._horizon = max(window, delay_max)
        self._entries: OrderedDict[str, _Entry] = OrderedDict()  # least recently failed first

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    def _stale(self, entry: _Entry, now: float) -> bool:
        return now >= entry.until and now - entry.last >= self.window

    def _prune(self, now: float) -> None:
        while self._entries:
            entry = next(iter(self._entries.values()))
            if now - entry.last < self._horizon:
                break
            self._entries.popitem(last=False)

    def wait(self, key: str) -> float:
        """Seconds ``key`` must still wait before its next attempt (0: it may try now)."""
        now = self.clock()
        self._prune(now)
        entry = self._entries.get(key)
        if entry is None or self._stale(entry, now):
            return 0.0
        return max(entry.until - now, 0.0)

    def failed(self, key: str) -> float:
        """Count a failure of ``key``; the wait it now has."""
        if self.threshold <= 0:
            return 0.0
        now = self.clock()
        self._prune(now)
        entry = self._entries.pop(key, None)
        if entry is None or self._stale(entry, now):
            entry = _Entry(failures=0, last=now, until=now)
        entry.failures += 1
        entry.last = now
        wait = backoff_delay(entry.failures, self.threshold, self.delay, self.delay_max)
        entry.until = now + wait
        self._entries[key] = entry  # to the end: the most recently failed
        while len(self._entries) > self.capacity:
            self._entries.popitem(last=False)
        return wait

    def succeeded(self, key: str) -> None:
        self._entries.pop(key, None)


@dataclass(frozen=True)
class LoginLimits:
    workers: int = 1
    queue: int = 8
    user_failures: int = 5
    address_failures: int = 20
    window: float = 900
    backoff: float = 2
    backoff_max: float = 300

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> LoginLimits:
        return cls(workers=settings.login_workers, queue=settings.login_queue,
                   user_failures=settings.login_failures, address_failures=settings.login_address_failures,
                   window=settings.login_window, backoff=settings.login_backoff,
                   backoff_max=settings.login_backoff_max)


class LoginRefused(Exception):
    """A login refused before its credentials were checked: ``status`` 503 (too many logins in
    progress) or 429 (too many failures), and the whole seconds to wait (``retry_after``)."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


def _user_key(user: str) -> str:
    # a digest: bounded size whatever was sent, and nothing typed in the wrong field is kept
    return hashlib.blake2b(user.casefold().encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def _seconds(wait: float) -> int:
    return max(math.ceil(wait), 1)


class LoginGuard:
    """An :class:`Authenticator` that bounds and backs off the logins of ``backend``."""

    def __init__(self, backend: Authenticator, limits: LoginLimits,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self.limits = limits
        self.users = FailureTable(threshold=limits.user_failures, window=limits.window, delay=limits.backoff,
                                  delay_max=limits.backoff_max, clock=clock)
        self.addresses = FailureTable(threshold=limits.address_failures, window=limits.window,
                                      delay=limits.backoff, delay_max=limits.backoff_max, clock=clock)
        self._slots = asyncio.Semaphore(limits.workers)
        self.in_flight = 0  # logins admitted and not answered: checking or waiting to

    async def authenticate(self, user: str, password: str) -> bool:
        """The :class:`Authenticator` call: guarded, with no client address to count."""
        return await self.login(user, password, None)

    async def login(self, user: str, password: str, address: str | None) -> bool:
        """Whether the credentials are good; :class:`LoginRefused` when they were not checked,
        :class:`~corral.auth.base.AuthUnavailable` when the backend could not answer."""
        user_key = _user_key(user) if isinstance(user, str) else ""
        self._check_backoff(user_key, address)
        if self.in_flight >= self.limits.workers + self.limits.queue:
            raise LoginRefused(503, f"too many logins in progress; try again in {BUSY_RETRY_AFTER} s",
                               BUSY_RETRY_AFTER)
        self.in_flight += 1
        try:
            async with self._slots:
                self._check_backoff(user_key, address)  # failures may have come in while it waited
                ok = await self.backend.authenticate(user, password)
        finally:
            self.in_flight -= 1
        if ok:
            self.users.succeeded(user_key)
        else:
            self._failed(user, user_key, address)
        return ok

    def _check_backoff(self, user_key: str, address: str | None) -> None:
        wait = self.users.wait(user_key)
        if wait > 0:
            raise LoginRefused(429, f"too many failed logins for this user; try again in {_seconds(wait)} s",
                               _seconds(wait))
        wait = self.addresses.wait(address) if address is not None else 0.0
        if wait > 0:
            raise LoginRefused(429, f"too many failed logins from this address; try again in {_seconds(wait)} s",
                               _seconds(wait))

    def _failed(self, user: str, user_key: str, address: str | None) -> None:
        wait = self.users.failed(user_key)
        if wait > 0:
            log.warning("failed logins: user %r backed off for %s s", str(user)[:64], _seconds(wait),
                        extra={"address": address})
        if address is not None and (wait := self.addresses.failed(address)) > 0:
            log.warning("failed logins: address %s backed off for %s s", address, _seconds(wait))
