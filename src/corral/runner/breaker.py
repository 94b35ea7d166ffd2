"""Circuit breakers per host: a host that fails VM after VM gets no new ones for a while.

Without them a broken host attracts work: its failed VMs release their reservations, so it
looks the emptiest and the scheduler keeps choosing it. A breaker opens after
``failure_threshold`` VMs in a row failed on the host (with errors that retrying can fix), and
keeps the host out of placement for ``timeout`` seconds. Then it is half-open: VMs may go
there again, ``half_open_attempts`` successes close it, one failure opens it again.

A call that failed because the endpoint could not be reached or its session could not be
renewed says nothing about the host it was for (:func:`blames_host`): an outage of the whole
endpoint would otherwise open every host's breaker, and keep the pools from refilling for
``timeout`` seconds after the endpoint came back.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from corral.providers.base import ENDPOINT_CAUSES, Cause

log = logging.getLogger("corral.runner")


def blames_host(cause: Cause | None) -> bool:
    """Whether a failure of ``cause`` counts against the host's breaker."""
    return cause not in ENDPOINT_CAUSES


@dataclass(slots=True)
class BreakerSettings:
    enabled: bool = True
    failure_threshold: int = 5  # VMs failed in a row
    timeout_s: float = 30.0
    half_open_attempts: int = 3  # successes that close a half-open breaker


@dataclass(frozen=True, slots=True)
class OpenBreaker:
    """A host that gets no new VMs now, and the seconds until it is tried again."""

    provider: str
    host: str
    retry_in: float


@dataclass(slots=True)
class _Breaker:
    failures: int = 0
    open_until: float | None = None  # set while open or half-open (then in the past)
    successes: int = 0  # while half-open


class HostBreakers:
    def __init__(self, settings: BreakerSettings | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or BreakerSettings()
        self.clock = clock
        self._breakers: dict[tuple[str, str], _Breaker] = {}
        self.opened = 0  # times a breaker opened (again, from half-open, included)
        self.closed = 0  # times a half-open breaker closed: its host took VMs again

    def failed(self, provider: str, host: str, error: str) -> None:
        s = self.settings
        if not s.enabled:
            return
        breaker = self._breakers.setdefault((provider, host), _Breaker())
        breaker.failures += 1
        half_open = breaker.open_until is not None and breaker.open_until <= self.clock()
        if half_open or (breaker.open_until is None and breaker.failures >= s.failure_threshold):
            breaker.open_until = self.clock() + s.timeout_s
            breaker.successes = 0
            self.opened += 1
            log.warning("host keeps failing VMs: no new VMs go there for a while",
                        extra={"provider": provider, "host": host, "failures": breaker.failures,
                               "retry_in": s.timeout_s, "error": error})

    def succeeded(self, provider: str, host: str) -> None:
        breaker = self._breakers.get((provider, host))
        if breaker is None:
            return
        if breaker.open_until is None:
            del self._breakers[(provider, host)]
            return
        breaker.successes += 1
        if breaker.successes >= self.settings.half_open_attempts:
            del self._breakers[(provider, host)]
            self.closed += 1
            log.info("host works again", extra={"provider": provider, "host": host})

    def open_hosts(self, provider: str) -> frozenset[str]:
        """Hosts of ``provider`` that get no new VMs now."""
        now = self.clock()
        return frozenset(host for (p, host), b in self._breakers.items()
                         if p == provider and b.open_until is not None and b.open_until > now)

    def view(self) -> tuple[OpenBreaker, ...]:
        """The open breakers, by provider and host."""
        now = self.clock()
        return tuple(OpenBreaker(provider, host, round(b.open_until - now, 1))
                     for (provider, host), b in sorted(self._breakers.items())
                     if b.open_until is not None and b.open_until > now)
