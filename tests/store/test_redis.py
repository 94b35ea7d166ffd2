"""RedisStore: the store contract on a real redis-server, and what only Redis promises."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import pytest

from corral.bench.redisd import RedisServer
from corral.store.redis import RedisStore

from .contract import StoreContract


class TestRedisContract(StoreContract):
    @pytest.fixture
    def store_factory(self, redis_server: RedisServer, redis_site: str) -> Callable[[], RedisStore]:
        return functools.partial(RedisStore, "127.0.0.1", redis_server.port, site=redis_site)

    @pytest.fixture
    def store(self, store_factory: Callable[[], RedisStore]) -> Iterator[RedisStore]:
        store = store_factory()
        yield store
        store.close()
