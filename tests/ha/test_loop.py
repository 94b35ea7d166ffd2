"""Managers on one redis-server of the test's own, each a Broker driven by an HaLoop: they spread
the pools, hand them over without ever running one twice, drain at once, and stop acting
before their leases can expire when Redis goes away."""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping

import pytest
import pytest_asyncio
import redis
from redis.asyncio import Redis

from corral.bench.redisd import RedisServer
from corral.ha.agent import SCORE_UNHEALTHY, Active, Degraded, Draining, Stopped
from corral.ha.broker import Broker
from corral.ha.leases import Leases, Registry, SyncRenewal
from corral.ha.loop import HaLoop
from corral.ha.ownership import assign
from corral.ha.settings import HaSettings
from corral.store.redis_keys import Keys

POOLS = frozenset(f"pool-{i}" for i in range(8))
TTL_S, RENEW_S, SAFETY = 0.6, 0.05, 0.6
LATE = 0.1  # how late the event loop may run a callback on a busy machine (the margin to expiry is 0.24 s)
SEQ = itertools.count()  # orders the apply() calls of every manager of a test


class TimedLeases(Leases):
    """Leases that note when each successful call setting a TTL started: Redis keeps the lease
    at least ttl from then."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        super().__init__(client, keys)
        self.set_at: list[float] = []

    async def acquire(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        t0 = time.monotonic()
        got = await super().acquire(pools, me, ttl_ms)
        self.set_at.append(t0)
        return got

    async def renew(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        t0 = time.monotonic()
        got = await super().renew(pools, me, ttl_ms)
        self.set_at.append(t0)
        return got


class Manager:
    """One corral process's control plane, recording every apply() call: (seq, time, acting)."""

    def __init__(self, name: str, client: Redis, keys: Keys, registry: Registry | None = None,
                 keep: SyncRenewal | None = None) -> None:
        self.settings = HaSettings(manager_id=name, ttl_s=TTL_S, renew_every_s=RENEW_S, safety=SAFETY)
        self.registry = registry or Registry(client, keys)
        self.leases = TimedLeases(client, keys)
        self.broker = Broker(self.settings, self.leases, self.registry, pools=lambda: POOLS, ping=client.ping,
                             providers={"sim": self.probe}, keep=keep)
        self.loop = HaLoop(self.broker, self.apply)
        self.calls: list[tuple[int, float, frozenset[str]]] = []
        self.task: asyncio.Task[object] | None = None
        self.provider_up = True
        self.apply_fails = 0  # the next so many apply() calls raise

    async def probe(self) -> bool:
        return self.provider_up

    async def apply(self, acting: frozenset[str]) -> None:
        if self.apply_fails:
            self.apply_fails -= 1
            raise RuntimeError("the pool service is stuck")
        self.calls.append((next(SEQ), time.monotonic(), acting))

    @property
    def acting(self) -> frozenset[str]:
        return self.calls[-1][2] if self.calls else frozenset()

    def start(self) -> Manager:
        self.task = asyncio.create_task(self.loop.run())
        return self

    async def drain(self) -> object:
        self.loop.stop()
        assert self.task is not None
        return await self.task


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> float:
    """Wait until condition() holds; the time it first held."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)
    return time.monotonic()


def never_twice(*managers: Manager) -> None:
    """Replaying every apply() call in order, no pool is ever run by two managers at once."""
    events = sorted((seq, m.settings.manager_id, acting) for m in managers for seq, _, acting in m.calls)
    running: dict[str, frozenset[str]] = {}
    for seq, name, acting in events:
        running[name] = acting
        for other, theirs in running.items():
            assert other == name or not (acting & theirs), f"#{seq}: {name} and {other} both run {acting & theirs}"


@pytest.fixture
def server() -> Iterator[RedisServer]:
    with RedisServer() as redis_server:
        yield redis_server


@pytest_asyncio.fixture
async def client(server: RedisServer) -> AsyncIterator[Redis]:
    # long socket timeouts: only corral's own bounds may keep a manager from hanging on a call
    conn = Redis.from_url(server.url, socket_timeout=10, socket_connect_timeout=10)
    yield conn
    await conn.aclose()


@pytest_asyncio.fixture
async def managers(client: Redis) -> AsyncIterator[Callable[[str], Manager]]:
    made: list[Manager] = []
    keys = Keys("ha-loop")

    def make(name: str) -> Manager:
        made.append(Manager(name, client, keys))
        return made[-1]

    yield make
    for m in made:
        if m.task is not None and not m.task.done():
            m.task.cancel()
            await asyncio.gather(m.task, return_exceptions=True)


async def test_two_managers_spread_the_pools(managers: Callable[[str], Manager]) -> None:
    a, b = managers("corral-a").start(), managers("corral-b").start()
    expected = assign(POOLS, {"corral-a": 100, "corral-b": 100})
    await until(lambda: a.acting == expected["corral-a"] and b.acting == expected["corral-b"])
    assert a.acting and b.acting  # both got some of the eight
    never_twice(a, b)
    assert isinstance(a.loop.state, Active) and isinstance(b.loop.state, Active)
    leases = a.broker.leases
    for m in (a, b):
        assert await leases.holders(m.acting) == dict.fromkeys(m.acting, m.settings.manager_id)
        assert {p: m.broker.token(p) for p in m.acting} == {p: await leases.fence(p) for p in m.acting}
    seen = await a.registry.managers()
    assert seen["corral-a"]["state"] == "Active" and seen["corral-a"]["score"] == 100
    assert seen["corral-a"]["pools"] == sorted(a.acting)


async def test_a_manager_joining_is_handed_its_share_never_run_twice(managers: Callable[[str], Manager]) -> None:
    a = managers("corral-a").start()
    await until(lambda: a.acting == POOLS)
    first_tokens = {p: a.broker.token(p) for p in POOLS}
    b = managers("corral-b").start()
    share = assign(POOLS, {"corral-a": 100, "corral-b": 100})["corral-b"]
    await until(lambda: b.acting == share and a.acting == POOLS - share)
    never_twice(a, b)
    assert all(b.broker.token(p) == first_tokens[p] + 1 for p in share)  # a new holder: the next token
    assert all(a.broker.token(p) == first_tokens[p] for p in POOLS - share)  # kept: unchanged


async def test_a_draining_manager_hands_over_at_once(managers: Callable[[str], Manager]) -> None:
    a, b = managers("corral-a").start(), managers("corral-b").start()
    await until(lambda: a.acting | b.acting == POOLS and a.acting and b.acting)
    tokens_a = {p: a.broker.token(p) for p in a.acting}
    stopped_at = time.monotonic()
    assert isinstance(await a.drain(), Stopped)
    assert a.acting == frozenset()
    taken_at = await until(lambda: b.acting == POOLS)
    assert taken_at - stopped_at < TTL_S / 2  # no wait for a lease to expire
    never_twice(a, b)
    assert all(b.broker.token(p) > token for p, token in tokens_a.items())  # type: ignore[operator]
    assert "corral-a" not in await b.registry.managers()
    assert await b.broker.leases.holders(POOLS) == dict.fromkeys(POOLS, "corral-b")


async def test_a_manager_whose_providers_are_all_down_hands_over_to_a_healthy_one(
        managers: Callable[[str], Manager]) -> None:
    a, b = managers("corral-a").start(), managers("corral-b").start()
    await until(lambda: a.acting | b.acting == POOLS and a.acting and b.acting)
    a.provider_up = False
    await until(lambda: b.acting == POOLS and a.acting == frozenset())
    assert isinstance(a.loop.state, Degraded) and a.broker.score == SCORE_UNHEALTHY
    never_twice(a, b)
    b.provider_up = False  # both unhealthy: nobody is at the threshold, so both take part again
    share = assign(POOLS, {"corral-a": 1, "corral-b": 1})
    await until(lambda: a.acting == share["corral-a"] and b.acting == share["corral-b"])
    assert isinstance(a.loop.state, Degraded) and isinstance(b.loop.state, Degraded)
    never_twice(a, b)


async def test_a_pool_service_that_cannot_stop_keeps_its_leases(managers: Callable[[str], Manager]) -> None:
    a = managers("corral-a").start()
    await until(lambda: a.acting == POOLS)
    a.apply_fails = stuck = 10**6
    a.loop.stop()
    await until(lambda: a.apply_fails <= stuck - 3)  # three ticks of a drain that cannot stop the pools
    await asyncio.sleep(TTL_S)  # longer than a lease lives: they are renewed, not released
    assert isinstance(a.loop.state, Draining)
    assert await a.leases.holders(POOLS) == dict.fromkeys(POOLS, "corral-a")
    a.apply_fails = 0
    assert a.task is not None
    assert isinstance(await a.task, Stopped)
    assert a.acting == frozenset()
    assert await a.leases.holders(POOLS) == {}


async def test_a_pool_service_that_failed_to_start_is_started_again_at_the_next_tick(
        managers: Callable[[str], Manager]) -> None:
    """A start that raised (the store timing out while the service read its pools) leaves
    nothing running: the loop asks again, instead of taking the pools as run and never
    running them."""
    a = managers("corral-a")
    a.apply_fails = 2
    a.start()
    await until(lambda: a.acting == POOLS)
    assert a.apply_fails == 0 and [acting for _, _, acting in a.calls] == [POOLS]
    assert isinstance(a.loop.state, Active)
    await a.drain()
    assert a.acting == frozenset()


async def test_a_stop_before_the_first_tick(managers: Callable[[str], Manager]) -> None:
    a = managers("corral-a")
    a.loop.stop()
    assert isinstance(await a.start().drain(), Stopped)
    assert a.calls == [] and await a.registry.managers() == {}


class SlowRegistry(Registry):
    """A registry whose writes take a second (cut short by the broker's I/O timeout)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        super().__init__(client, keys)
        self.spans: list[tuple[float, float]] = []

    async def publish(self, me: str, info: Mapping[str, object], ttl_ms: int) -> None:
        began = time.monotonic()
        try:
            await asyncio.sleep(1.0)
        finally:
            self.spans.append((began, time.monotonic()))


async def test_a_slow_store_for_the_published_state_does_not_slow_the_ticks(client: Redis) -> None:
    keys = Keys("slow-publish")
    registry = SlowRegistry(client, keys)
    a = Manager("corral-a", client, keys, registry=registry).start()
    await until(lambda: len(registry.spans) >= 2)
    began, ended = registry.spans[0]
    renewals = [t for t in a.leases.set_at if began < t < ended]
    assert len(renewals) >= 3  # the ticks went on while the first write hung
    assert a.acting == POOLS
    assert a.broker.publisher.written == 0 and a.broker.publisher.replaced >= 1
    await a.drain()


async def test_a_dead_manager_loses_its_pools_once_its_leases_expire(managers: Callable[[str], Manager]) -> None:
    a, b = managers("corral-a").start(), managers("corral-b").start()
    await until(lambda: a.acting | b.acting == POOLS and a.acting and b.acting)
    tokens_a = {p: a.broker.token(p) for p in a.acting}
    assert a.task is not None
    a.task.cancel()  # as if killed: its leases stay in Redis until their TTL
    await asyncio.gather(a.task, return_exceptions=True)
    died_at = time.monotonic()
    taken_at = await until(lambda: b.acting == POOLS)
    assert taken_at - died_at < TTL_S + 5 * RENEW_S
    never_twice(a, b)
    assert all(b.broker.token(p) == token + 1 for p, token in tokens_a.items())  # type: ignore[operator]


async def test_without_redis_a_manager_stops_acting_before_its_leases_expire(
        server: RedisServer, managers: Callable[[str], Manager]) -> None:
    a = managers("corral-a").start()
    await until(lambda: a.acting == POOLS)
    deadline = a.broker.deadline
    assert deadline is not None
    server.stop()  # blocks the event loop: no renewal between reading the deadline and this
    stopped_at = time.monotonic()
    # the leases live in Redis at least ttl_s from the time taken before the last renewal
    expire_at = deadline - a.settings.trusted_s + TTL_S
    off_at = await until(lambda: a.acting == frozenset(), timeout=TTL_S)
    assert off_at <= deadline + LATE < expire_at
    assert off_at < a.leases.set_at[-1] + TTL_S
    assert off_at - stopped_at < a.settings.trusted_s + LATE
    assert isinstance(a.loop.state, Degraded)
    assert a.broker.store_error is not None
    assert [acting for _, _, acting in a.calls] == [POOLS, frozenset()]
    # Redis back (empty: it keeps nothing): the manager takes its pools again
    server.start()
    await until(lambda: a.acting == POOLS)
    assert isinstance(a.loop.state, Active)


async def test_a_draining_manager_without_redis_still_stops(server: RedisServer,
                                                           managers: Callable[[str], Manager]) -> None:
    a = managers("corral-a").start()
    await until(lambda: a.acting == POOLS)
    server.stop()
    t0 = time.monotonic()
    assert isinstance(await asyncio.wait_for(a.drain(), 5), Stopped)
    assert a.acting == frozenset()
    assert a.calls[-1][1] - t0 < a.settings.trusted_s


@pytest.mark.parametrize("keeper", [False, True], ids=["ticks-only", "keeper"])
async def test_with_redis_hanging_a_manager_stops_acting_at_its_deadline(
        server: RedisServer, client: Redis, keeper: bool) -> None:
    keys = Keys("hanging")
    a = Manager("corral-a", client, keys, keep=keeping(server, keys) if keeper else None).start()
    await until(lambda: a.acting == POOLS)
    tokens = {p: a.broker.token(p) or 0 for p in POOLS}
    assert server.proc is not None
    os.kill(server.proc.pid, signal.SIGSTOP)  # calls neither fail nor answer
    try:
        stopped_at = time.monotonic()
        off_at = await until(lambda: a.acting == frozenset(), timeout=TTL_S)
        assert off_at < a.leases.set_at[-1] + TTL_S  # before Redis could let the leases expire
        if keeper:  # the keeper's renewals too: the last one answered keeps them from its start
            assert a.broker.kept_at is not None and off_at < a.broker.kept_at + TTL_S
        assert off_at - stopped_at < a.settings.trusted_s + LATE
        assert isinstance(a.loop.state, Degraded)
    finally:
        os.kill(server.proc.pid, signal.SIGCONT)
    await until(lambda: a.acting == POOLS)
    assert all((a.broker.token(p) or 0) >= tokens[p] for p in POOLS)  # renewed, or taken again: never lower
    await a.drain()


def keeping(server: RedisServer, keys: Keys) -> SyncRenewal:
    return SyncRenewal(redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=1), keys)


async def hog(seconds: float, chunk: float) -> None:
    """Keep the event loop busy, as a pool service filling thousands of VMs does: CPU work in
    chunks of ``chunk`` seconds with one yield between them."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        until_ = time.monotonic() + chunk
        while time.monotonic() < until_:
            pass
        await asyncio.sleep(0)


@pytest.mark.parametrize("keeper", [True, False], ids=["keeper", "ticks-only"])
async def test_a_manager_whose_event_loop_is_busy_keeps_its_pools(server: RedisServer, client: Redis,
                                                                  keeper: bool) -> None:
    """The loop busy in chunks longer than a lease is trusted (0.45 s against 0.36 s): every
    await of a tick comes too late. The keeper's thread renews the leases meanwhile, so the
    manager goes on acting on its pools, never stopping its pool service; with the ticks alone
    (no keeper) it stops them and starts them again, as the big fill of ``corral bench load``
    did over and over."""
    keys = Keys(f"busy-{keeper}")
    a = Manager("corral-a", client, keys, keep=keeping(server, keys) if keeper else None).start()
    await until(lambda: a.acting == POOLS)
    await hog(3.0, 0.45)
    await asyncio.sleep(0.2)
    applied = [acting for _, _, acting in a.calls]
    if keeper:
        assert applied == [POOLS], "the pool service was stopped while the loop was busy"
        assert isinstance(a.loop.state, Active)
        assert a.broker.keeper is not None and a.broker.keeper.rounds >= 20
    else:  # the flaw the keeper mends: the ticks alone let the deadline pass
        assert frozenset() in applied
    await until(lambda: a.acting == POOLS)
    assert await a.leases.holders(POOLS) == dict.fromkeys(POOLS, "corral-a")
    await a.drain()
    assert a.broker.keeper is None or not a.broker.keeper.running
    assert await a.leases.holders(POOLS) == {}
