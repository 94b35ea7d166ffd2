"""The waking view of the Redis store: a checkout and a move of a VM's state publish the VM's
pool on the site's wake channel in the same script; other writes and other views do not."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import redis

from corral.bench.redisd import RedisServer
from corral.domain.states import VmState
from corral.store.redis import RedisStore

from .contract import fill, make_vm

S = VmState


@pytest.fixture
def store(redis_server: RedisServer, redis_site: str) -> Iterator[RedisStore]:
    s = RedisStore("127.0.0.1", redis_server.port, site=redis_site)
    yield s
    s.close()


def heard(listener: redis.client.PubSub, wait: float = 0.3) -> list[str]:
    out: list[str] = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        message = listener.get_message(timeout=0.05)
        if message is not None and message["type"] == "message":
            out.append(message["data"].decode())
    return out


@pytest.fixture
def listener(redis_server: RedisServer, store: RedisStore) -> Iterator[redis.client.PubSub]:
    client = redis.Redis(port=redis_server.port)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.keys.wake)
    heard(pubsub, 0.1)
    yield pubsub
    pubsub.close()
    client.close()


def test_checkouts_and_moves_publish_their_pools(store: RedisStore, listener: redis.client.PubSub) -> None:
    waking = store.waking()
    fill(store, "pool-a", 2)
    fill(store, "pool-b", 1)
    assert heard(listener) == []  # the plain handle publishes nothing
    taken = waking.checkout_many([("pool-a", 1), ("pool-b", 1)], now=3000.0, lifetimes={"pool-a": 60, "pool-b": 60})
    assert taken is not None and sorted(heard(listener)) == ["pool-a", "pool-b"]
    assert waking.checkout_many([("pool-b", 1)], now=3000.0, lifetimes={"pool-b": 60}) is None
    assert heard(listener) == []  # nothing taken, nothing said
    vm = taken[0]
    assert waking.transition(vm.name, [S.RUNNING], S.COMPLETED, completed_at=3001.0) is not None
    assert heard(listener) == ["pool-a"]
    assert waking.update_vm(vm.name, reason="x") is not None  # no move of state
    assert waking.transition(vm.name, [S.RUNNING], S.COMPLETED) is None  # no move made
    assert heard(listener) == []
    store.add_vm(make_vm("other", "pool-c", S.READY))
    assert store.transition("other", [S.READY], S.RUNNING) is not None
    assert heard(listener) == []
    assert repr(waking) == repr(store) and waking.get_vm(vm.name) == store.get_vm(vm.name)
