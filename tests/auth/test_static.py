from __future__ import annotations

import asyncio
import time

import pytest
from pydantic import SecretStr

from corral.auth import AuthUnavailable, StaticAuthenticator, build_authenticator, hash_password
from corral.auth.settings import AuthSettings

FAST = 1000


@pytest.fixture(scope="module")
def hashes() -> dict[str, str]:
    return {"alice": hash_password("alice-pw", iterations=FAST), "bob": hash_password("bob-pw", iterations=FAST)}


async def test_good_wrong_unknown_empty(hashes: dict[str, str]) -> None:
    auth = build_authenticator(AuthSettings(provider="static", users=hashes)).backend
    assert isinstance(auth, StaticAuthenticator)
    assert auth.users == {"alice", "bob"}
    assert await auth.authenticate("alice", "alice-pw")
    assert await auth.authenticate("bob", "bob-pw")
    assert not await auth.authenticate("alice", "bob-pw")
    assert not await auth.authenticate("Alice", "alice-pw")  # user names are exact
    assert not await auth.authenticate("mallory", "alice-pw")
    assert not await auth.authenticate("alice", "")
    assert not await auth.authenticate("", "alice-pw")


async def test_accepts_secretstr_and_str(hashes: dict[str, str]) -> None:
    auth = StaticAuthenticator({"alice": SecretStr(hashes["alice"]), "bob": hashes["bob"]})
    assert await auth.authenticate("alice", "alice-pw")
    assert await auth.authenticate("bob", "bob-pw")


def test_bad_hash_is_refused_at_construction_naming_the_user(hashes: dict[str, str]) -> None:
    with pytest.raises(ValueError) as info:
        StaticAuthenticator({"alice": hashes["alice"], "bob": "hunter2", "carol": "md5$1$x$y"})
    message = str(info.value)
    assert "auth.users.bob" in message and "auth.users.carol" in message and "alice" not in message
    assert "hunter2" not in message  # a password typed in clear is not echoed


async def test_unknown_user_costs_as_much_as_a_wrong_password() -> None:
    iterations = 100_000
    auth = StaticAuthenticator({"alice": hash_password("alice-pw", iterations=iterations)})

    async def best_of(user: str, runs: int = 5) -> float:
        times = []
        for _ in range(runs):
            t0 = time.perf_counter()
            assert not await auth.authenticate(user, "wrong")
            times.append(time.perf_counter() - t0)
        return min(times)

    wrong, unknown = await best_of("alice"), await best_of("nobody")
    assert 0.5 < unknown / wrong < 2.0, (unknown, wrong)


async def test_hashing_does_not_block_the_event_loop() -> None:
    auth = StaticAuthenticator({"alice": hash_password("alice-pw", iterations=300_000)})
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.002)
            ticks += 1

    task = asyncio.create_task(ticker())
    t0 = time.perf_counter()
    assert await auth.authenticate("alice", "alice-pw")
    elapsed = time.perf_counter() - t0
    task.cancel()
    assert elapsed > 0.02 and ticks >= 3, (elapsed, ticks)


def test_static_never_raises_unavailable() -> None:
    # nothing to reach: the static provider answers or raises ValueError at build time only
    assert not issubclass(ValueError, AuthUnavailable)
