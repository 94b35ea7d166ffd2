"""The broker alone, on a real redis-server, with a clock of the test's own: deadlines, probes,
the spreading it reads from the registry, lost leases, a lost store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Iterator

import pytest
import redis
from redis.asyncio import Redis

from corral.bench.redisd import RedisServer
from corral.ha.agent import Active, Draining
from corral.ha.broker import Broker
from corral.ha.keeper import SILENT_TTLS
from corral.ha.leases import Leases, Registry, SyncRenewal
from corral.ha.ownership import assign
from corral.ha.settings import HaSettings
from corral.store.redis_keys import Keys

SETTINGS = HaSettings(manager_id="me", ttl_s=0.6, renew_every_s=0.1, safety=0.6)
POOLS = frozenset({"a", "b", "c", "d"})


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class SlowLeases(Leases):
    """Leases whose calls take ``slow`` seconds of the test's clock."""

    def __init__(self, client: Redis, keys: Keys, clock: Clock, slow: float) -> None:
        super().__init__(client, keys)
        self.clock, self.slow = clock, slow

    async def acquire(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        self.clock.now += self.slow
        return await super().acquire(pools, me, ttl_ms)

    async def renew(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        self.clock.now += self.slow
        return await super().renew(pools, me, ttl_ms)


def broker(client: Redis, keys: Keys, clock: Clock, **kw: object) -> Broker:
    return Broker(SETTINGS, SlowLeases(client, keys, clock, slow=1.0), Registry(client, keys), pools=lambda: POOLS,
                  ping=client.ping, clock=clock, **kw)  # type: ignore[arg-type]


async def test_the_deadline_counts_from_the_time_taken_before_the_call(client: Redis, keys: Keys) -> None:
    clock = Clock(100.0)
    b = broker(client, keys, clock)
    assert b.deadline is None
    assert await b.acquire({"a", "b"}, within=1.0) == {"a", "b"}
    assert b.deadline == 100.0 + SETTINGS.trusted_s  # not 101 + ...: the call took 1 s
    clock.now = 200.0
    data = await b.observe(stop_requested=False, within=1.0)
    assert data.deadline == b.deadline == 200.0 + SETTINGS.trusted_s
    assert data.now == 201.0 and data.held == {"a", "b"}
    assert b.token("a") == 1 and b.token("c") is None


async def test_past_the_deadline_of_the_pools_acted_on_no_call_is_made(client: Redis, keys: Keys) -> None:
    clock = Clock(100.0)
    b = broker(client, keys, clock)
    await b.acquire({"a"}, within=1.0)
    assert b.deadline is not None
    clock.now = b.deadline + 0.01
    data = await b.observe(stop_requested=False, within=0.0)
    assert clock.now == data.now == b.deadline + 0.01  # the slow renewal was not called
    assert data.expired and data.held == {"a"} and data.store_ok


async def test_providers_are_probed_and_each_failure_counts_as_down(client: Redis, keys: Keys) -> None:
    async def up() -> bool:
        return True

    async def answers_nothing() -> None:
        return None

    async def down() -> bool:
        return False

    async def fails() -> bool:
        raise OSError("unreachable")

    async def hangs() -> bool:
        await asyncio.sleep(60)
        return True

    probes = {"up": up, "none": answers_nothing, "down": down, "fails": fails, "hangs": hangs}
    b = broker(client, keys, Clock(), providers=probes, error_rate=lambda: 0.1, load=lambda: 0.5)
    data = await b.observe(stop_requested=False, within=5.0)  # the hanging probe gives up after io_timeout_s
    assert (data.providers_up, data.providers_total) == (2, 5)
    assert (data.error_rate, data.load, data.store_ok) == (0.1, 0.5, True)
    assert b.score == round(100 - 40 * 3 / 5 - 30 * 0.1 - 10 * 0.5)


async def test_wanted_follows_the_published_scores(client: Redis, keys: Keys) -> None:
    registry = Registry(client, keys)
    await registry.publish("other", {"score": 90}, 10_000)
    await registry.publish("weak", {"score": 10}, 10_000)
    await registry.publish("odd", {"score": "high"}, 10_000)  # unreadable: counts as 0
    b = broker(client, keys, Clock())
    data = await b.observe(stop_requested=False, within=1.0)
    assert data.wanted == assign(POOLS, {"me": 100, "other": 90, "weak": 10, "odd": 0})["me"]
    assert data.wanted == POOLS - assign(POOLS, {"me": 1, "other": 1})["other"]
    stopping = await b.observe(stop_requested=True, within=1.0)
    assert b.score == 0 and stopping.wanted == frozenset()  # a stopping manager wants nothing


async def test_a_lease_taken_away_is_dropped_at_the_next_renewal(client: Redis, keys: Keys,
                                                                 caplog: pytest.LogCaptureFixture) -> None:
    b = broker(client, keys, Clock())
    await b.acquire({"a", "b"}, within=1.0)
    await client.delete(keys.lease("a"))
    assert await Leases(client, keys).acquire(["a"], "thief", 10_000) == {"a": 2}
    with caplog.at_level(logging.WARNING, logger="corral.ha"):
        data = await b.observe(stop_requested=False, within=1.0)
    assert data.held == {"b"} and b.token("a") is None
    assert [(r.getMessage(), r.__dict__["pool"]) for r in caplog.records] == [("lease lost", "a")]


async def test_the_keepers_round_extends_the_deadlines_finds_lost_leases_and_spares_a_hung_loop(
        client: Redis, keys: Keys, redis_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(100.0)
    renewal = SyncRenewal(redis.Redis.from_url(redis_server.url), keys)
    b = broker(client, keys, clock, keep=renewal)
    b.keeper = None  # its rounds are called here, on the test's clock, not from a thread
    await b.acquire({"a", "b"}, within=1.0)
    assert b.deadline == 100.0 + SETTINGS.trusted_s
    await b.observe(stop_requested=False, within=1.0)  # the loop ticks at 101 (each lease call takes 1 s)
    clock.now = 103.0
    b.keep()  # the keeper renews at 103, the loop busy: the deadline counts from then
    assert b.deadline == 103.0 + SETTINGS.trusted_s and b.kept_at == 103.0
    await client.delete(keys.lease("a"))
    assert await Leases(client, keys).acquire(["a"], "thief", 10_000) == {"a": 2}
    clock.now = 103.2
    b.keep()
    assert b.deadlines["a"] == 103.0 + SETTINGS.trusted_s  # not extended
    assert b.deadlines["b"] == 103.2 + SETTINGS.trusted_s
    with caplog.at_level(logging.WARNING, logger="corral.ha"):
        b.let_go_lost()
    assert b.held == {"b"} and [r.getMessage() for r in caplog.records] == ["lease lost"]
    # a loop silent for longer than SILENT_TTLS lease lives is hung: its leases are left to expire
    assert b.ticked_at is not None
    clock.now = b.ticked_at + SETTINGS.ttl_s * SILENT_TTLS + 0.1
    b.keep()
    assert b.deadlines["b"] == 103.2 + SETTINGS.trusted_s and b.kept_at == 103.2
    await b.close()


async def test_release_forgets_first_and_leaves_others_leases(client: Redis, keys: Keys) -> None:
    b = broker(client, keys, Clock())
    await b.acquire({"a", "b"}, within=1.0)
    await Leases(client, keys).acquire(["c"], "other", 10_000)
    await b.release({"a", "c"}, within=1.0)
    assert b.held == {"b"}
    assert await Leases(client, keys).holders(POOLS) == {"b": "me", "c": "other"}


async def test_publish_and_close(client: Redis, keys: Keys) -> None:
    clock = Clock(100.0)
    b = broker(client, keys, clock)
    await b.acquire({"a"}, within=1.0)
    await b.observe(stop_requested=False, within=1.0)
    assert b.deadline is not None
    clock.now = b.deadline - 0.25
    b.publish(Active(), {"a"})
    await b.publisher.flush()
    info = (await Registry(client, keys).managers())["me"]
    assert info == {"state": "Active", "score": 100, "pools": ["a"], "acting": ["a"],
                    "lease_left_s": 0.25}
    b.publish(Draining(), set())
    await b.close()
    assert await Registry(client, keys).managers() == {}


@pytest.fixture
def locked_server() -> Iterator[RedisServer]:
    with RedisServer(password="pw-never-shown") as server:
        yield server


async def test_a_lost_store_keeps_the_last_spreading_and_shows_no_secret(
        locked_server: RedisServer, caplog: pytest.LogCaptureFixture) -> None:
    conn = Redis.from_url(locked_server.url, socket_timeout=1, socket_connect_timeout=1)
    try:
        b = broker(conn, Keys("lost"), Clock())
        first = await b.observe(stop_requested=False, within=1.0)
        assert first.store_ok and first.wanted == POOLS
        await b.acquire(POOLS, within=1.0)
        locked_server.stop()
        with caplog.at_level(logging.INFO, logger="corral.ha"):
            lost = await b.observe(stop_requested=False, within=1.0)
            await b.release({"a"}, within=1.0)
        assert not lost.store_ok and lost.wanted == POOLS and lost.held == POOLS
        assert b.held == POOLS - {"a"}
        assert b.store_error is not None and "pw-never-shown" not in b.store_error
        assert [r.getMessage() for r in caplog.records] == ["store unreachable"]  # once, not per call
        assert "pw-never-shown" not in caplog.text + repr(b) + repr(b.leases) + repr(b.settings)
        for record in caplog.records:
            assert "pw-never-shown" not in str(record.__dict__)
        locked_server.start()
        with caplog.at_level(logging.INFO, logger="corral.ha"):
            back = await b.observe(stop_requested=False, within=1.0)
        assert back.store_ok and b.store_error is None
        assert back.held == frozenset()  # the restarted Redis kept nothing: the leases are gone
        assert caplog.records[-1].getMessage() == "store reachable again"
    finally:
        await conn.aclose()
