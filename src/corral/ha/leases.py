"""Pool leases with fencing tokens, and the registry of live managers, in Redis.

A lease is the key ``Keys.lease(pool)`` holding the manager id, set with a TTL (``SET PX``):
while it lives no other manager can take the pool. A fencing token is the value of the pool's
counter ``Keys.fence(pool)`` right after the ``INCR`` that a *new* acquisition makes: the
counter only grows, so each holder's token is above every earlier holder's, and the store
refuses a write carrying a token below the counter. A holder that renews or acquires again
keeps its token. Every operation is one Lua script over all the pools given (one round trip,
atomic), so two managers never both take a pool.

These guarantees hold for one Redis primary. A failover to a replica that had not yet received
the last writes (replication is asynchronous), or a restart of a Redis without persistence, can
lose a lease, so two managers both hold a pool until the older one's deadline, and can lose the
counter, so a new token need not be above an old one.

The registry: each manager publishes its state as JSON in the hash ``Keys.managers`` and keeps
``Keys.alive(id)`` alive with a TTL; ``managers()`` reads the live ones and drops the rest.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping
from typing import Any

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import RedisError

from corral.store.base import StoreUnavailable
from corral.store.redis_keys import Keys

log = logging.getLogger("corral.ha")

# KEYS: lease, fence pairs; ARGV: manager id, ttl in ms. One token per pair (0: held by another).
ACQUIRE = """
local me, ttl = ARGV[1], tonumber(ARGV[2])
local tokens = {}
for i = 1, #KEYS, 2 do
  local holder = redis.call('GET', KEYS[i])
  local token = 0
  if holder == false then
    token = redis.call('INCR', KEYS[i + 1])
    redis.call('SET', KEYS[i], me, 'PX', ttl)
  elseif holder == me then
    redis.call('PEXPIRE', KEYS[i], ttl)
    token = tonumber(redis.call('GET', KEYS[i + 1])) or redis.call('INCR', KEYS[i + 1])
  end
  tokens[#tokens + 1] = token
end
return tokens
"""

# KEYS: lease, fence pairs; ARGV: manager id, ttl in ms. One token per pair (0: not held by me).
RENEW = """
local me, ttl = ARGV[1], tonumber(ARGV[2])
local tokens = {}
for i = 1, #KEYS, 2 do
  local token = 0
  if redis.call('GET', KEYS[i]) == me then
    token = tonumber(redis.call('GET', KEYS[i + 1])) or 0
    if token > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
  tokens[#tokens + 1] = token
end
return tokens
"""

# KEYS: leases; ARGV: manager id. The (1-based) indexes of the leases released.
RELEASE = """
local released = {}
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then
    redis.call('DEL', KEYS[i])
    released[#released + 1] = i
  end
end
return released
"""

# KEYS: the managers hash; ARGV: the prefix of the alive keys. id, info pairs of the live ones.
MANAGERS = """
local all = redis.call('HGETALL', KEYS[1])
local live, dead = {}, {}
for i = 1, #all, 2 do
  if redis.call('EXISTS', ARGV[1] .. all[i]) == 1 then
    live[#live + 1] = all[i]
    live[#live + 1] = all[i + 1]
  else
    dead[#dead + 1] = all[i]
  end
end
if #dead > 0 then redis.call('HDEL', KEYS[1], unpack(dead)) end
return live
"""


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


class Leases:
    """The leases of one site's pools, through ``client`` (with or without ``decode_responses``)."""

    def __init__(self, client: Redis, keys: Keys) -> None:
        self.keys = keys
        self.client = client
        self.acquire_script = client.register_script(ACQUIRE)
        self.renew_script = client.register_script(RENEW)
        self.release_script = client.register_script(RELEASE)

    def pairs(self, pools: list[str]) -> list[str]:
        return [k for p in pools for k in (self.keys.lease(p), self.keys.fence(p))]

    async def acquire(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        """Take every pool that is free or already mine, for ``ttl_ms``: pool -> fencing token.
        A new acquisition gets the pool's counter after its INCR; one already mine keeps its
        token. Pools held by another manager are left out."""
        return await self.scripted(self.acquire_script, pools, me, ttl_ms)

    async def renew(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        """Extend the leases still mine by ``ttl_ms``: pool -> its token (unchanged). Pools whose
        lease expired or went to another are left out."""
        return await self.scripted(self.renew_script, pools, me, ttl_ms)

    async def scripted(self, script: AsyncScript, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        names = list(dict.fromkeys(pools))
        if not names:
            return {}
        answer = await script(keys=self.pairs(names), args=[me, int(ttl_ms)])
        return {p: int(t) for p, t in zip(names, answer, strict=True) if int(t) > 0}

    async def release(self, pools: Iterable[str], me: str) -> frozenset[str]:
        """Give up the leases that are mine (others' are untouched): the pools released."""
        names = list(dict.fromkeys(pools))
        if not names:
            return frozenset()
        released = await self.release_script(keys=[self.keys.lease(p) for p in names], args=[me])
        return frozenset(names[int(i) - 1] for i in released)

    async def holders(self, pools: Iterable[str]) -> dict[str, str]:
        """pool -> the manager holding its lease, for the pools held (one MGET)."""
        names = list(dict.fromkeys(pools))
        if not names:
            return {}
        values = await self.client.mget([self.keys.lease(p) for p in names])
        return {p: text(v) for p, v in zip(names, values, strict=True) if v is not None}

    async def fence(self, pool: str) -> int:
        """The pool's fencing counter: the highest token ever given for it (0 if never)."""
        value = await self.client.get(self.keys.fence(pool))
        return int(value) if value is not None else 0


class SyncRenewal:
    """The renewal of :class:`Leases`, through a synchronous client (``redis.Redis``): for the
    keeper's thread (``ha.keeper``), which must not wait for a busy event loop."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.keys = keys
        self.client = client
        self.script = client.register_script(RENEW)

    def __call__(self, pools: Iterable[str], me: str, ttl_ms: int) -> dict[str, int]:
        names = list(dict.fromkeys(pools))
        if not names:
            self.client.ping()  # nothing held: the store answering is all there is to learn
            return {}
        answer = self.script(keys=[k for p in names for k in (self.keys.lease(p), self.keys.fence(p))],
                             args=[me, int(ttl_ms)])
        return {p: int(t) for p, t in zip(names, answer, strict=True) if int(t) > 0}

    def close(self) -> None:
        self.client.close()


class Registry:
    """The managers of one site: who is alive, and what each last published. ``server`` (host:port,
    no password) names Redis in the error of a read that could not reach it."""

    def __init__(self, client: Redis, keys: Keys, server: str = "") -> None:
        self.keys = keys
        self.client = client
        self.server = server
        self.managers_script = client.register_script(MANAGERS)

    async def publish(self, me: str, info: Mapping[str, object], ttl_ms: int) -> None:
        """Mark ``me`` alive for ``ttl_ms`` and store its ``info`` (JSON), in one transaction."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(self.keys.alive(me), "1", px=int(ttl_ms))
            pipe.hset(self.keys.managers, me, json.dumps(dict(info), sort_keys=True))
            await pipe.execute()

    async def managers(self) -> dict[str, dict[str, Any]]:
        """id -> info of every live manager; the entries of managers whose alive key expired
        are deleted on the way (one script). Raises :class:`StoreUnavailable` naming the server
        when Redis cannot be reached."""
        try:
            flat = await self.managers_script(keys=[self.keys.managers], args=[self.keys.alive_prefix])
        except RedisError as exc:
            where = f"Redis at {self.server}" if self.server else "Redis"
            raise StoreUnavailable(f"{where} cannot be reached: cannot read the managers "
                                   f"({type(exc).__name__})") from None
        live: dict[str, dict[str, Any]] = {}
        for raw_id, raw_info in zip(flat[::2], flat[1::2], strict=True):
            manager = text(raw_id)
            try:
                info = json.loads(text(raw_info))
            except ValueError:
                info = None
            if not isinstance(info, dict):
                log.warning("a manager published no readable state", extra={"manager": manager})
                info = {}
            live[manager] = info
        return live

    async def retire(self, me: str) -> None:
        """Leave the registry at once (a stopping manager), instead of after the TTL."""
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.hdel(self.keys.managers, me)
            pipe.delete(self.keys.alive(me))
            await pipe.execute()
