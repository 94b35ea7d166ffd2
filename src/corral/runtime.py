"""Assemble a running corral from its configuration: store, providers, the pool service."""

from __future__ import annotations

import dataclasses
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError, RedisSettings
from corral.config.settings import (
    checkout_settings,
    ha_settings,
    manager_settings,
    metrics_settings,
    monitor_settings,
    provider_context,
)
from corral.domain.models import TokenRecord
from corral.ha.broker import Broker
from corral.ha.cluster import Cluster
from corral.ha.leases import Leases, Registry
from corral.ha.loop import HaLoop
from corral.ha.roles import Role
from corral.ha.switch import ServiceSwitch
from corral.ha.wake import Wakes, listen
from corral.metrics import Metrics
from corral.pools.service import PoolService
from corral.providers.base import Provider
from corral.providers.registry import PROVIDERS, ProviderUnavailable
from corral.store.base import Store, StoreError
from corral.store.redis import RedisStore
from corral.store.redis_keys import Keys
from corral.store.scoped import Scoped

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
    """What the API serves: the configuration, the pool service, the login guard and the
    metrics; with several processes on Redis, also this process's manager (``cluster``) and the
    registry of the site's managers (``managers``)."""

    config: Config
    pools: PoolService
    authenticator: LoginGuard | None = None  # the provider behind the login guard; None: no ``:auth:``
    started_at: float = field(default_factory=time.time)
    cluster: Cluster | None = None
    managers: Callable[[], Awaitable[dict[str, dict[str, Any]]]] | None = None
    site: SharedSite | None = None  # the connections to a site on Redis, closed last
    metrics: Metrics = field(init=False)

    def __post_init__(self) -> None:
        self.metrics = Metrics(metrics_settings(self.config), self.pools,
                               running_pools(self.pools, shared=self.site is not None, cluster=self.cluster),
                               self.managers)
        if self.site is not None and self.cluster is not None:
            metrics = self.metrics

            def announced(service: object) -> None:
                if isinstance(service, PoolService):
                    metrics.follow(service)

            self.cluster.switch.on_new = announced  # the manager's services are followed from their start

    @property
    def tokens(self) -> TokenStore:
        """The pool service's store, for tokens."""
        return self.pools.store

    async def start(self) -> None:
        await self.metrics.start()  # first: it hears the first fill
        await self.pools.start()
        if self.cluster is not None:
            await self.cluster.start()

    async def stop(self) -> None:
        await self.metrics.stop()
        if self.cluster is not None:
            await self.cluster.stop()
        await self.pools.stop()
        self.pools.close()
        if self.site is not None:
            await self.site.close()


def running_pools(front: PoolService, *, shared: bool,
                  cluster: Cluster | None) -> Callable[[], PoolService | None]:
    """The pool service that runs the pools in this process, now: on sqlite the API's own; on
    a shared Redis the one this process's manager acts with (none while it acts on no pool, or
    in a process that only answers the API)."""
    if not shared:
        return lambda: front
    switch = cluster.switch if cluster is not None else None

    def acting() -> PoolService | None:
        service = switch.service if switch is not None else None
        return service if isinstance(service, PoolService) else None

    return acting


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
    """Provider ``name``, built by its class's factory (see :mod:`corral.providers.registry`);
    a ConfigError when a package its class needs is not installed."""
    cls = PROVIDERS[config.provider_class(name)]
    try:
        return cls.build(name, config.provider_settings(name), provider_context(config, name))
    except ProviderUnavailable as exc:
        raise ConfigError([f"providers.{name}: {exc}"]) from None


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


def redis_endpoint(config: Config) -> tuple[str, int, str | None]:
    """Host, port and password of ``:redis:`` (defaults: localhost:6379, no password); the
    password goes to clients only."""
    settings = config.redis or RedisSettings()
    password = settings.password.get_secret_value() if settings.password is not None else None
    return settings.server, settings.port or DEFAULT_REDIS_PORT, password


def build_redis_store(config: Config) -> Store:
    """The Redis store of ``:redis:`` for ``:store: site``; one line naming the server and the
    cause if Redis cannot be reached or refuses the password."""
    store = RedisStore(*redis_endpoint(config), site=config.store.site)
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


def build_service(config: Config, role: Role = Role.ALL, manager_id: str | None = None) -> Service:
    """What ``corral serve`` runs with an API (roles ``all`` and ``api``)."""
    authenticator = build_authenticator(config.auth) if config.auth is not None else None
    if config.store.type != "redis":
        if role is not Role.ALL:
            raise ConfigError([f"--role {role.value}: several processes need a shared store; "
                               "set :store: type: redis (the sqlite store serves one process, --role all)"])
        return Service(config=config, pools=build_pool_service(config), authenticator=authenticator)
    site = shared_site(config)
    providers = build_providers(config)
    front = PoolService(config.domain_pools(), providers, site.store.waking(), manager_settings(config),
                        monitor=monitor_settings(config), checkout=checkout_settings(config), owners=site.wakes)
    cluster = build_cluster(config, site, providers, manager_id, close=nothing) if role is Role.ALL else None
    return Service(config=config, pools=front, authenticator=authenticator, cluster=cluster,
                   managers=site.registry.managers, site=site)


async def nothing() -> None:
    """A close with nothing to close (the service closes the site once its manager has drained)."""


@dataclass
class SharedSite:
    """The connections of one process to a site on Redis: the store, wakes, the registry."""

    store: RedisStore
    keys: Keys
    client: aioredis.Redis
    wakes: Wakes
    registry: Registry

    async def close(self) -> None:
        """Close every connection: the loop's and the listener's, the wakes', the store's."""
        await self.client.aclose()
        self.wakes.client.close()
        self.store.close()


def shared_site(config: Config) -> SharedSite:
    store = build_store(config)
    assert isinstance(store, RedisStore)
    host, port, password = redis_endpoint(config)
    keys = Keys(config.store.site)
    client = aioredis.Redis(host=host, port=port, password=password, socket_timeout=5, socket_connect_timeout=5)
    wakes = Wakes(sync_client(host, port, password), keys)
    return SharedSite(store=store, keys=keys, client=client, wakes=wakes, registry=Registry(client, keys))


def sync_client(host: str, port: int, password: str | None) -> redis.Redis:
    """A client for wakes: one try, short timeouts (a wake is best effort)."""
    return redis.Redis(host=host, port=port, password=password, socket_timeout=1, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))


def build_cluster(config: Config, site: SharedSite, providers: dict[str, Provider],
                  manager_id: str | None = None, close: Callable[[], Awaitable[None]] | None = None) -> Cluster:
    """This process's manager: the agent's loop over leases in Redis, running the pool service
    over the pools it holds (writes fenced by their tokens, reads scoped to them). ``close``
    (by default the site's connections) runs once the manager has drained."""
    settings = ha_settings(config, manager_id)
    pools = config.domain_pools()
    names = tuple(p.name for p in pools)

    async def ping() -> bool:
        return bool(await site.client.ping())

    broker = Broker(settings, Leases(site.client, site.keys), site.registry, pools=lambda: names, ping=ping)
    fenced = site.store.fenced(broker.token)

    # a start waits for the providers at most half the time a lease is trusted for after its
    # renewal; a provider slower than that comes in later. A start that took longer would let
    # the lease's deadline pass before the next renewal: the pools stopped again at once.
    configured = manager_settings(config)
    run = dataclasses.replace(configured, connect_wait_s=min(configured.connect_wait_s, settings.io_timeout_s / 2))

    def make(acting: frozenset[str]) -> PoolService:
        return PoolService([p for p in pools if p.name in acting], providers, cast(Store, Scoped(fenced, acting)),
                           run, monitor=monitor_settings(config), checkout=checkout_settings(config))

    switch = ServiceSwitch(make)
    return Cluster(HaLoop(broker, switch.apply), switch, functools.partial(listen, site.client, site.keys),
                   close or site.close)


def build_manager(config: Config, manager_id: str | None = None) -> Cluster:
    """What ``corral serve --role manager`` runs: a manager with no API."""
    if config.store.type != "redis":
        raise ConfigError(["--role manager: several processes need a shared store; set :store: type: redis "
                           "(the sqlite store serves one process, --role all)"])
    site = shared_site(config)
    return build_cluster(config, site, build_providers(config), manager_id, site.close)
