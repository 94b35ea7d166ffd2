"""Assemble a running corral from its configuration: store, providers, the pool service."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError
from corral.config.settings import checkout_settings, manager_settings, monitor_settings, provider_context
from corral.domain.models import TokenRecord
from corral.pools.service import PoolService
from corral.providers.base import Provider
from corral.providers.registry import PROVIDERS
from corral.store.base import Store

DEFAULT_REDIS_PORT = 6379


class TokenStore(Protocol):
    """The store as the API's token routes and checks see it: tokens only (only hashes are
    stored); everything about pools and VMs goes through the pool service."""

    def add_token(self, token: TokenRecord) -> None: ...

    def get_token(self, token_hash: str) -> TokenRecord | None: ...

    def touch_token(self, token_hash: str, now: float) -> None: ...

    def user_tokens(self, user: str) -> list[TokenRecord]: ...

    def delete_token(self, token_hash: str) -> bool: ...


@dataclass
class Service:
    """What the API serves: the configuration, the pool service and the login guard."""

    config: Config
    pools: PoolService
    authenticator: LoginGuard | None = None  # the provider behind the login guard; None: no ``:auth:``
    started_at: float = field(default_factory=time.time)

    @property
    def tokens(self) -> TokenStore:
        """The pool service's store, for tokens."""
        return self.pools.store

    async def start(self) -> None:
        await self.pools.start()

    async def stop(self) -> None:
        await self.pools.stop()
        self.pools.close()


def build_providers(config: Config) -> dict[str, Provider]:
    """One provider object (one session) per configured endpoint that a pool uses."""
    used = {config.pool_provider(p) for p in config.pools}
    providers: dict[str, Provider] = {}
    problems = []
    for name in sorted(used):
        cls = config.provider_class(name)
        if cls in PROVIDERS:
            providers[name] = build_provider(config, name)
        else:
            problems.append(f"providers.{name}.provider_class: the {cls!r} provider is not available "
                            f"in this version of corral (available: {', '.join(PROVIDERS)})")
    if problems:
        raise ConfigError(problems)
    return providers


def build_provider(config: Config, name: str) -> Provider:
    """Provider ``name``, built by its class's factory (see :mod:`corral.providers.registry`)."""
    cls = PROVIDERS[config.provider_class(name)]
    return cls.build(name, config.provider_settings(name), provider_context(config, name))


def build_store(config: Config) -> Store:
    """The configured store: sqlite (one line naming the path and the cause if it cannot be
    opened), or Redis (:func:`build_redis_store`)."""
    if config.store.type == "redis":
        return build_redis_store(config)
    from corral.store.sqlite import SqliteStore
    from corral.store.sqlite_open import StoreOpenError

    path = Path(config.store.path)
    try:
        return SqliteStore(path)
    except StoreOpenError as exc:  # every StoreError of opening is one
        raise ConfigError([f"store.path: {exc}"]) from None
    except OSError as exc:
        detail = f"{exc.strerror}: {exc.filename}" if exc.strerror else str(exc)
        raise ConfigError([f"store.path: cannot open the sqlite store {str(path)!r}: {detail}"]) from None


def build_redis_store(config: Config) -> Store:
    """The Redis store of ``:redis:`` (defaults: localhost:6379, no password) for
    ``:store: site``; one line naming the server and the cause if Redis cannot be reached or
    refuses the password. The password goes to the client only."""
    from corral.config import RedisSettings
    from corral.store.base import StoreError
    from corral.store.redis import RedisStore

    settings = config.redis or RedisSettings()
    password = settings.password.get_secret_value() if settings.password is not None else None
    store = RedisStore(settings.server, settings.port or DEFAULT_REDIS_PORT, password, site=config.store.site)
    try:
        store.ping()
    except StoreError as exc:
        store.close()
        raise ConfigError([f"redis: {exc}"]) from None
    return store


def build_pool_service(config: Config) -> PoolService:
    """The pools of ``config`` on its providers and store, with the overrides stored at the API."""
    providers = build_providers(config)
    store = build_store(config)
    return PoolService(config.domain_pools(), providers, store, manager_settings(config),
                       monitor=monitor_settings(config), checkout=checkout_settings(config))


def build_service(config: Config) -> Service:
    pools = build_pool_service(config)
    authenticator = build_authenticator(config.auth) if config.auth is not None else None
    return Service(config=config, pools=pools, authenticator=authenticator)
