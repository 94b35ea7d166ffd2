"""Waking a pool's owner when another process changed the pool in the store.

A process that only answers the API records a checkout, a return or a setting change in
Redis, and the pool's name is published on the site's wake channel: by the store's own script
for a checkout or a return (``RedisStore.waking``), as ``settings:<pool>`` by :class:`Wakes` for
a setting (a pool name has no ``:``). The manager that owns the pool hears it and looks at the
pool at once (refill, destroy what was returned, and for a setting, take it in).

A message is best effort. A lost wake about stock is made up for by the manager's sweep
(every ``check_interval``), which refills every pool it runs and destroys what was returned;
a lost wake about a setting is taken in when the manager next starts its pools.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

from corral.store.redis_keys import Keys

log = logging.getLogger("corral.ha")


SETTINGS = "settings:"  # the prefix of a wake about a pool's settings


class Wakes:
    """Publishes wakes about pools' settings with ``client`` (a synchronous redis-py client)."""

    def __init__(self, client: Any, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.sent = 0
        self.failed = 0

    def wake(self, pools: Iterable[str]) -> None:
        names = sorted(set(pools))
        if not names:
            return
        try:
            with self.client.pipeline(transaction=False) as pipe:
                for pool in names:
                    pipe.publish(self.keys.wake, SETTINGS + pool)
                pipe.execute()
            self.sent += len(names)
        except Exception as exc:  # the owner's sweep makes up for it
            self.failed += len(names)
            log.debug("wake not published", extra={"pools": ",".join(names), "error": type(exc).__name__})


async def listen(client: Any, keys: Keys, on_pool: Callable[[str, bool], None], *, retry_s: float = 1.0,
                 subscribed: asyncio.Event | None = None) -> None:
    """Call ``on_pool(pool, settings)`` for each pool woken, until cancelled (``client``: a
    redis.asyncio client; ``settings``: the wake is about the pool's settings).
    A lost connection is subscribed again after ``retry_s``; ``subscribed`` is set once listening."""
    lost = 0  # tries in a row that failed (the first is logged as a warning, the rest at debug)
    while True:
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(keys.wake)
            if subscribed is not None:
                subscribed.set()
            if lost:
                log.info("wake channel listened to again", extra={"tries": lost})
                lost = 0
            async for message in pubsub.listen():
                data = message.get("data")
                if message.get("type") == "message" and isinstance(data, (bytes, str)):
                    text = data.decode() if isinstance(data, bytes) else data
                    on_pool(text.removeprefix(SETTINGS), text.startswith(SETTINGS))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if subscribed is not None:
                subscribed.clear()
            lost += 1
            log.log(logging.WARNING if lost == 1 else logging.DEBUG, "wake channel lost; listening again",
                    extra={"error": type(exc).__name__, "tries": lost})
            await asyncio.sleep(retry_s)
        finally:
            try:
                await pubsub.aclose()
            except Exception:
                pass
