"""The login guard's decisions (backoff delays, the failure table) with a made-up clock, and
the guard itself in front of real authenticators."""

from __future__ import annotations

import asyncio

import pytest

from corral.auth import Authenticator, DummyAuthenticator, StaticAuthenticator, build_authenticator, hash_password
from corral.auth.guard import FailureTable, LoginGuard, LoginLimits, LoginRefused, backoff_delay
from corral.auth.settings import AuthSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("failures", "threshold", "base", "cap", "delay"),
    [
        (0, 5, 2.0, 60.0, 0.0),
        (4, 5, 2.0, 60.0, 0.0),
        (5, 5, 2.0, 60.0, 2.0),  # the threshold reached: the first delay
        (6, 5, 2.0, 60.0, 4.0),  # then doubled per failure
        (8, 5, 2.0, 60.0, 16.0),
        (10, 5, 2.0, 60.0, 60.0),  # up to the cap
        (10**6, 5, 2.0, 60.0, 60.0),  # no overflow however many
        (1, 1, 0.5, 0.5, 0.5),
        (99, 0, 2.0, 60.0, 0.0),  # threshold 0: backoff off
    ],
)
def test_backoff_delay(failures: int, threshold: int, base: float, cap: float, delay: float) -> None:
    assert backoff_delay(failures, threshold, base, cap) == delay


# (seconds since start, action, key, wait expected after the action)
SEQUENCES = {
    "blocked at the third failure, doubling, then a success clears": [
        (0, "fail", "a", 0), (1, "fail", "a", 0), (2, "fail", "a", 10),
        (5, "wait", "a", 7), (5, "wait", "b", 0),  # other keys are not affected
        (12, "wait", "a", 0), (12, "fail", "a", 20), (32, "fail", "a", 40),
        (72, "fail", "a", 60), (132, "fail", "a", 60),  # capped
        (192, "succeed", "a", 0), (193, "fail", "a", 0),
    ],
    "failures further apart than the window are forgotten": [
        (0, "fail", "a", 0), (1, "fail", "a", 0), (302, "fail", "a", 0), (303, "fail", "a", 0),
        (304, "fail", "a", 10),
    ],
    "the window runs from the last failure": [
        (0, "fail", "a", 0), (299, "fail", "a", 0), (598, "fail", "a", 10),
    ],
    "a long streak counts on until a window passes without failures": [
        (0, "fail", "a", 0), (0, "fail", "a", 0), (0, "fail", "a", 10), (10, "fail", "a", 20),
        (30, "fail", "a", 40), (70, "fail", "a", 60), (130, "fail", "a", 60), (190, "fail", "a", 60),
        (249, "wait", "a", 1), (489, "wait", "a", 0), (490, "fail", "a", 0),  # 300 s quiet: forgotten
    ],
}


@pytest.mark.parametrize("steps", SEQUENCES.values(), ids=list(SEQUENCES))
def test_failure_table(steps: list[tuple[float, str, str, float]]) -> None:
    clock = Clock()
    start = clock.now
    table = FailureTable(threshold=3, window=300, delay=10, delay_max=60, clock=clock)
    for at, action, key, wait in steps:
        clock.now = start + at
        if action == "fail":
            table.failed(key)
        elif action == "succeed":
            table.succeeded(key)
        assert table.wait(key) == pytest.approx(wait), (at, action, key)


def test_failure_table_is_bounded_and_pruned() -> None:
    clock = Clock()
    table = FailureTable(threshold=2, window=100, delay=10, delay_max=50, clock=clock, capacity=4)
    for n in range(10):
        table.failed(f"user{n}")
        clock.now += 1
    assert len(table) == 4  # the least recently failed went first
    assert table.wait("user9") == 0 and "user0" not in table and "user9" in table
    table.failed("user9")
    assert table.wait("user9") == pytest.approx(10)
    clock.now += 151  # past the window and the longest delay: every entry is forgotten
    table.failed("other")
    assert len(table) == 1


def test_disabled_table_keeps_nothing() -> None:
    table = FailureTable(threshold=0, window=100, delay=10, delay_max=50, clock=Clock())
    for _ in range(20):
        table.failed("a")
    assert table.wait("a") == 0 and len(table) == 0


def test_limits_from_settings_defaults_and_checks() -> None:
    limits = LoginLimits.from_settings(AuthSettings(provider="dummy"))
    assert limits == LoginLimits(workers=1, queue=8, user_failures=5, address_failures=20, window=900,
                                 backoff=2, backoff_max=300)
    with pytest.raises(ValueError, match="login_backoff_max"):
        AuthSettings(provider="dummy", login_backoff=10, login_backoff_max=5)
    with pytest.raises(ValueError, match="login_workers"):
        AuthSettings(provider="dummy", login_workers=0)


async def test_guard_backs_off_users_and_addresses_without_asking_the_backend() -> None:
    clock = Clock()
    backend = StaticAuthenticator({"alice": hash_password("alice-pw", iterations=1000),
                                   "bob": hash_password("bob-pw", iterations=1000)})
    guard = LoginGuard(backend, LoginLimits(workers=1, queue=4, user_failures=2, address_failures=5, window=60,
                                            backoff=5, backoff_max=20), clock=clock)
    assert not await guard.login("alice", "nope", "10.0.0.1")
    assert not await guard.login("alice", "nope", "10.0.0.2")
    before = backend.stats.total
    with pytest.raises(LoginRefused) as refused:
        await guard.login("alice", "alice-pw", "10.0.0.3")
    assert refused.value.status == 429 and refused.value.retry_after == 5 and "user" in str(refused.value)
    assert backend.stats.total == before  # answered without hashing
    assert await guard.login("bob", "bob-pw", "10.0.0.1")
    clock.now += 5
    assert await guard.login("alice", "alice-pw", "10.0.0.1")  # the delay is over; success clears
    assert not await guard.login("alice", "nope", "10.0.0.1")  # one failure: not blocked again

    for user in ("carol", "dave", "erin"):  # 10.0.0.1 has now failed five times
        assert not await guard.login(user, "x", "10.0.0.1")
    with pytest.raises(LoginRefused) as refused:
        await guard.login("bob", "bob-pw", "10.0.0.1")
    assert refused.value.status == 429 and "address" in str(refused.value)
    assert await guard.login("bob", "bob-pw", "10.0.0.9")  # other addresses are not affected
    assert await guard.authenticate("bob", "bob-pw")  # the plain Authenticator call is guarded too


async def test_guard_refuses_at_once_when_the_queue_is_full() -> None:
    backend = StaticAuthenticator({"alice": hash_password("alice-pw", iterations=100_000)})
    guard = LoginGuard(backend, LoginLimits(workers=1, queue=2, user_failures=0, address_failures=0, window=60,
                                            backoff=1, backoff_max=1))
    results = await asyncio.gather(*(guard.login(f"user{n}", "x", "10.0.0.1") for n in range(8)),
                                   return_exceptions=True)
    refused = [r for r in results if isinstance(r, LoginRefused)]
    assert results[:3] == [False] * 3  # one verifying, two waiting
    assert len(refused) == 5 and all(r.status == 503 and r.retry_after >= 1 for r in refused)
    assert all("too many logins in progress" in str(r) for r in refused)
    assert backend.stats.total == 3 and backend.stats.peak == 1


async def test_static_verifies_in_its_own_bounded_executor() -> None:
    encoded = hash_password("alice-pw", iterations=50_000)
    one = StaticAuthenticator({"alice": encoded}, workers=1)
    assert await asyncio.gather(*(one.authenticate("alice", "alice-pw") for _ in range(4))) == [True] * 4
    assert one.stats.peak == 1 and one.stats.total == 4 and one.stats.active == 0
    two = StaticAuthenticator({"alice": encoded}, workers=2)
    await asyncio.gather(*(two.authenticate("alice", "nope") for _ in range(6)))
    assert two.stats.peak == 2
    with pytest.raises(ValueError, match="workers"):
        StaticAuthenticator({"alice": encoded}, workers=0)


def test_build_authenticator_puts_the_guard_in_front() -> None:
    users = {"alice": hash_password("alice-pw", iterations=1000)}
    guard = build_authenticator(AuthSettings(provider="static", users=users, login_workers=3, login_queue=1))
    assert isinstance(guard, LoginGuard) and isinstance(guard, Authenticator)
    assert isinstance(guard.backend, StaticAuthenticator)
    assert guard.limits.workers == 3 and guard.limits.queue == 1 and guard.backend.workers == 3
    assert isinstance(build_authenticator(AuthSettings(provider="dummy")).backend, DummyAuthenticator)
