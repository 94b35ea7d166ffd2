"""Fixtures of the control-plane tests: an async client on the session's redis-server and the
key names of the test's own site."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from redis.asyncio import Redis

from corral.bench.redisd import RedisServer
from corral.store.redis_keys import Keys


@pytest_asyncio.fixture
async def client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    conn = Redis.from_url(redis_server.url)
    yield conn
    await conn.aclose()


@pytest.fixture
def keys(redis_site: str) -> Keys:
    return Keys(redis_site)
