"""Wakes: a pool's name published by one process reaches the listener of another, also after
Redis came back."""

from __future__ import annotations

import asyncio
import contextlib

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from corral.bench.redisd import RedisServer
from corral.ha.wake import Wakes, listen
from corral.store.redis_keys import Keys
from helpers import eventually


async def test_a_wake_reaches_the_listener(redis_server: RedisServer, redis_site: str) -> None:
    keys = Keys(redis_site)
    heard: list[tuple[str, bool]] = []
    subscribed = asyncio.Event()
    client = aioredis.Redis(port=redis_server.port)
    task = asyncio.create_task(listen(client, keys, lambda pool, settings: heard.append((pool, settings)),
                                      subscribed=subscribed))
    try:
        await asyncio.wait_for(subscribed.wait(), 5)
        wakes = Wakes(redis.Redis(port=redis_server.port), keys)
        wakes.wake(["b", "a", "a"])  # each pool once, about its settings
        await eventually(lambda: sorted(heard) == [("a", True), ("b", True)])
        other = Wakes(redis.Redis(port=redis_server.port), Keys(redis_site + "-other"))
        other.wake(["c"])  # another site's wake is not ours
        redis.Redis(port=redis_server.port).publish(keys.wake, "e")  # as the store's scripts do: stock
        wakes.wake(["d"])
        await eventually(lambda: ("d", True) in heard and ("e", False) in heard)
        assert all(pool != "c" for pool, _ in heard) and wakes.sent == 3
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await client.aclose()


async def test_the_listener_listens_again_after_redis_restarts(redis_site: str) -> None:
    keys = Keys(redis_site)
    heard: list[str] = []
    subscribed = asyncio.Event()
    with RedisServer() as server:
        client = aioredis.Redis(port=server.port)
        task = asyncio.create_task(listen(client, keys, lambda pool, _: heard.append(pool), retry_s=0.1,
                                          subscribed=subscribed))
        try:
            await asyncio.wait_for(subscribed.wait(), 5)
            server.stop()
            wakes = Wakes(redis.Redis(port=server.port, socket_timeout=1, retry=Retry(NoBackoff(), 0)), keys)
            wakes.wake(["lost"])  # Redis is down: not an error for the caller, only counted
            assert wakes.failed == 1
            await eventually(lambda: not subscribed.is_set())
            server.start()
            await asyncio.wait_for(subscribed.wait(), 10)
            wakes.wake(["back"])
            await eventually(lambda: heard == ["back"])
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await client.aclose()
