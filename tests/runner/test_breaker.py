"""Per-host circuit breakers: open after failures in a row, half-open after the timeout."""

from __future__ import annotations

import pytest

from corral.providers.base import Cause
from corral.runner.breaker import BreakerSettings, HostBreakers, OpenBreaker, blames_host


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def breakers(**kw) -> tuple[HostBreakers, Clock]:
    clock = Clock()
    return HostBreakers(BreakerSettings(**{"failure_threshold": 3, "timeout_s": 10, "half_open_attempts": 2, **kw}),
                        clock), clock


def test_opens_after_failures_in_a_row_only():
    b, _ = breakers()
    b.failed("p", "h1", "boom")
    b.failed("p", "h1", "boom")
    b.succeeded("p", "h1")  # a success resets the count
    b.failed("p", "h1", "boom")
    b.failed("p", "h1", "boom")
    assert b.open_hosts("p") == frozenset()
    b.failed("p", "h1", "boom")
    assert b.open_hosts("p") == {"h1"} and b.open_hosts("other") == frozenset() and b.opened == 1
    assert b.view() == (OpenBreaker("p", "h1", 10.0),)


def test_half_open_after_the_timeout_closes_on_successes_and_reopens_on_a_failure():
    b, clock = breakers()
    for _ in range(3):
        b.failed("p", "h1", "boom")
    clock.now += 10.5
    assert b.open_hosts("p") == frozenset(), "after the timeout the host may be tried again"
    b.failed("p", "h1", "still broken")
    assert b.open_hosts("p") == {"h1"}, "one failure while half-open opens it again"
    clock.now += 10.5
    b.succeeded("p", "h1")
    b.failed("p", "h1", "x")  # the second attempt fails: open again
    assert b.open_hosts("p") == {"h1"}
    clock.now += 10.5
    b.succeeded("p", "h1")
    b.succeeded("p", "h1")
    b.failed("p", "h1", "x")
    assert b.open_hosts("p") == frozenset(), "closed after two successes: one failure is not enough"
    assert (b.opened, b.closed) == (3, 1)


@pytest.mark.parametrize(("cause", "blamed"), [
    (None, True), (Cause.OTHER, True), (Cause.HOST, True), (Cause.INJECTED, True), (Cause.TIMEOUT, True),
    (Cause.REFUSED, True), (Cause.UNREACHABLE, False), (Cause.SESSION, False),
])
def test_only_failures_of_the_host_count_against_its_breaker(cause: Cause | None, blamed: bool) -> None:
    assert blames_host(cause) is blamed


def test_disabled_breakers_never_open():
    b, _ = breakers(enabled=False)
    for _ in range(10):
        b.failed("p", "h1", "boom")
    assert b.open_hosts("p") == frozenset() and b.view() == ()
