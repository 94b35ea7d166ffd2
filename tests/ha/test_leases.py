"""Leases with fencing tokens and the manager registry, on a real redis-server."""

from __future__ import annotations

import asyncio

import pytest
from redis.asyncio import Redis

from corral.bench.redisd import RedisServer
from corral.ha.leases import Leases, Registry
from corral.store.redis_keys import Keys

TTL_MS = 10_000


@pytest.fixture
def leases(client: Redis, keys: Keys) -> Leases:
    return Leases(client, keys)


@pytest.fixture
def registry(client: Redis, keys: Keys) -> Registry:
    return Registry(client, keys)


async def test_a_free_pool_is_taken_with_the_counter_after_its_incr(leases: Leases, client: Redis,
                                                                    keys: Keys) -> None:
    await client.set(keys.fence("b"), 41)  # earlier holders left the counter at 41
    got = await leases.acquire(["a", "b"], "m1", TTL_MS)
    assert got == {"a": 1, "b": 42}
    assert {p: await leases.fence(p) for p in "ab"} == got
    assert await leases.holders(["a", "b", "c"]) == {"a": "m1", "b": "m1"}
    assert 0 < await client.pttl(keys.lease("a")) <= TTL_MS


async def test_two_managers_contending_each_pool_goes_to_one(leases: Leases) -> None:
    pools = [f"p{i}" for i in range(20)]
    first, second = await asyncio.gather(leases.acquire(pools, "m1", TTL_MS), leases.acquire(pools, "m2", TTL_MS))
    assert not first or not second  # one script each, atomic: whoever runs first takes them all
    assert set(first) | set(second) == set(pools)
    winner = "m1" if first else "m2"
    assert await leases.holders(pools) == dict.fromkeys(pools, winner)
    assert all(token == 1 for token in (first or second).values())


async def test_held_by_me_is_extended_with_the_same_token(leases: Leases, client: Redis, keys: Keys) -> None:
    assert await leases.acquire(["a"], "m1", 1000) == {"a": 1}
    assert await leases.acquire(["a"], "m1", TTL_MS) == {"a": 1}
    assert await client.pttl(keys.lease("a")) > 1000
    assert await leases.renew(["a"], "m1", 2 * TTL_MS) == {"a": 1}
    assert await client.pttl(keys.lease("a")) > TTL_MS
    assert await leases.fence("a") == 1


async def test_held_by_another_is_left_out(leases: Leases) -> None:
    await leases.acquire(["a"], "m1", TTL_MS)
    assert await leases.acquire(["a", "b"], "m2", TTL_MS) == {"b": 1}
    assert await leases.renew(["a", "b"], "m1", TTL_MS) == {"a": 1}  # b never was m1's
    assert await leases.holders(["a", "b"]) == {"a": "m1", "b": "m2"}


async def test_renew_after_expiry_is_refused_and_a_new_owner_gets_a_bigger_token(leases: Leases) -> None:
    assert await leases.acquire(["a"], "m1", 50) == {"a": 1}
    await asyncio.sleep(0.1)
    assert await leases.holders(["a"]) == {}
    assert await leases.renew(["a"], "m1", TTL_MS) == {}
    assert await leases.acquire(["a"], "m2", TTL_MS) == {"a": 2}
    assert await leases.renew(["a"], "m1", TTL_MS) == {}


async def test_release_frees_only_mine_and_the_next_holder_gets_a_bigger_token(leases: Leases) -> None:
    await leases.acquire(["a"], "m1", TTL_MS)
    await leases.acquire(["b"], "m2", TTL_MS)
    assert await leases.release(["a", "b"], "m1") == frozenset({"a"})
    assert await leases.holders(["a", "b"]) == {"b": "m2"}
    assert await leases.acquire(["a"], "m2", TTL_MS) == {"a": 2}


async def test_the_counter_only_grows(leases: Leases) -> None:
    seen = []
    for round_ in range(6):
        me = f"m{round_ % 2}"
        got = await leases.acquire(["a"], me, TTL_MS)
        seen.append(got["a"])
        assert await leases.acquire(["a"], me, TTL_MS) == got  # again by the holder: unchanged
        await leases.release(["a"], me)
    assert seen == sorted(set(seen)) == list(range(1, 7))
    assert await leases.fence("a") == 6


async def test_nothing_asked_nothing_sent(leases: Leases) -> None:
    assert await leases.acquire([], "m1", TTL_MS) == {}
    assert await leases.renew([], "m1", TTL_MS) == {}
    assert await leases.release([], "m1") == frozenset()
    assert await leases.holders([]) == {}


async def test_registry_keeps_the_live_managers_and_drops_the_dead(registry: Registry, client: Redis,
                                                                  keys: Keys) -> None:
    await registry.publish("m1", {"state": "Active", "score": 100}, TTL_MS)
    await registry.publish("m2", {"state": "Standby", "score": 80}, 50)
    assert await registry.managers() == {"m1": {"state": "Active", "score": 100},
                                         "m2": {"state": "Standby", "score": 80}}
    await asyncio.sleep(0.1)
    assert await registry.managers() == {"m1": {"state": "Active", "score": 100}}
    assert await client.hkeys(keys.managers) == [b"m1"]  # the dead entry was deleted
    await registry.publish("m1", {"state": "Draining", "score": 0}, TTL_MS)
    assert (await registry.managers())["m1"]["state"] == "Draining"
    await registry.retire("m1")
    assert await registry.managers() == {}
    assert await client.exists(keys.alive("m1")) == 0


async def test_an_unreadable_entry_reads_as_empty(registry: Registry, client: Redis, keys: Keys) -> None:
    await registry.publish("m1", {"score": 100}, TTL_MS)
    await client.hset(keys.managers, "m1", "not json")
    assert await registry.managers() == {"m1": {}}


async def test_a_client_decoding_responses_reads_the_same(redis_server: RedisServer, keys: Keys) -> None:
    conn = Redis.from_url(redis_server.url, decode_responses=True)
    try:
        leases, registry = Leases(conn, keys), Registry(conn, keys)
        assert await leases.acquire(["a"], "m1", TTL_MS) == {"a": 1}
        assert await leases.holders(["a"]) == {"a": "m1"}
        assert await leases.release(["a"], "m1") == frozenset({"a"})
        await registry.publish("m1", {"score": 7}, TTL_MS)
        assert await registry.managers() == {"m1": {"score": 7}}
    finally:
        await conn.aclose()


async def test_sites_keep_apart(client: Redis, redis_site: str) -> None:
    one, other = Leases(client, Keys(redis_site + "-1")), Leases(client, Keys(redis_site + "-2"))
    assert await one.acquire(["a"], "m1", TTL_MS) == {"a": 1}
    assert await other.acquire(["a"], "m2", TTL_MS) == {"a": 1}


async def test_every_operation_is_one_script_call_whatever_the_number_of_pools(leases: Leases, client: Redis) -> None:
    pools = [f"p{i}" for i in range(500)]
    await leases.acquire(["warm"], "m1", TTL_MS)  # loads the scripts once
    await leases.renew(["warm"], "m1", TTL_MS)
    await leases.release(["warm"], "m1")

    async def calls() -> int:
        stats = await client.info("commandstats")
        return sum(int(v["calls"]) for k, v in stats.items() if k in ("cmdstat_evalsha", "cmdstat_eval"))

    for operation in (leases.acquire(pools, "m1", TTL_MS), leases.renew(pools, "m1", TTL_MS),
                      leases.release(pools, "m1")):
        before = await calls()
        await operation
        assert await calls() == before + 1
