"""The Redis store's client, its scripts, and how Redis errors become store errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.exceptions import (
    BusyLoadingError,
    RedisError,
    ResponseError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from corral.store import redis_scripts as lua
from corral.store.base import StoreError, StoreUnavailable
from corral.store.redis_keys import Keys

REDACTED = "<redacted>"


def client(host: str, port: int, password: str | None, db: int, timeout_s: float) -> redis.Redis:
    """A client with a pool of connections. No retries: a script that reached the server and
    lost its answer must not run twice; the store's callers retry at their own level."""
    return redis.Redis(
        host=host, port=port, db=db, password=password, socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s, decode_responses=True, retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


def scrubber(secret: str | None) -> Callable[[str], str]:
    """A function that removes ``secret`` from a text (error messages are shown to people)."""
    if not secret:
        return lambda text: text
    return lambda text: text.replace(secret, REDACTED)


def _auth_problem(text: str) -> str | None:
    lowered = text.lower()
    if "noauth" in lowered or "authentication required" in lowered or "already authenticated" in lowered:
        return "wants a password and none is configured (:redis: password)"
    if "wrongpass" in lowered or "invalid password" in lowered or "invalid username-password" in lowered:
        return "refused the password (:redis: password)"
    if "without any password configured" in lowered:
        return "refused the password: it has none configured"
    return None


class Guard:
    """``with guard:`` raises a Redis error as a store error naming the server:
    :class:`StoreUnavailable` when Redis cannot be reached, is loading, or refused the password."""

    __slots__ = ("scrub", "server")

    def __init__(self, server: str, scrub: Callable[[str], str]) -> None:
        self.server = server
        self.scrub = scrub

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        if isinstance(exc, RedisError):
            raise self.translate(exc) from None

    def translate(self, exc: RedisError) -> StoreError:
        cause = self.scrub(str(exc)) or type(exc).__name__
        auth = _auth_problem(cause) if isinstance(exc, RedisConnectionError | ResponseError) else None
        if auth is not None:
            return StoreUnavailable(f"Redis at {self.server} {auth}")
        if isinstance(exc, BusyLoadingError):
            return StoreUnavailable(f"Redis at {self.server} is loading its data and cannot answer yet")
        if isinstance(exc, RedisConnectionError | RedisTimeoutError):
            return StoreUnavailable(f"Redis at {self.server} cannot be reached: {cause}")
        if isinstance(exc, ResponseError) and cause.startswith(("READONLY", "MASTERDOWN")):
            return StoreUnavailable(f"Redis at {self.server} does not take writes now (a replica or a "
                                    f"failover under way): {cause}")
        return StoreError(f"Redis at {self.server}: {cause}")


class Scripts:
    """The store's Lua scripts, registered on one client (EVALSHA, loaded again when missing)."""

    def __init__(self, conn: redis.Redis, keys: Keys) -> None:
        head = lua.prelude(keys)

        def script(body: str) -> Any:
            return conn.register_script(head + body)

        self.add = script(lua.ADD)
        self.set = script(lua.SET)
        self.checkout = script(lua.CHECKOUT)
        self.list = script(lua.LIST)
        self.request_vms = script(lua.REQUEST_VMS)
        self.purge = script(lua.PURGE)
        self.history = script(lua.HISTORY)
        self.override = script(lua.OVERRIDE)
        self.token_add = script(lua.TOKEN_ADD)
        self.token_touch = script(lua.TOKEN_TOUCH)
        self.token_delete = script(lua.TOKEN_DELETE)
        self.request_add = script(lua.REQUEST_ADD)
        self.request_status = script(lua.REQUEST_STATUS)
