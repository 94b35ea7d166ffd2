"""Assemble a running corral from its configuration: store, providers, the pool service."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import signal
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, cast

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.retry import Retry

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError, RedisSettings, load_config
from corral.config.diff import ConfigDiff, diff_configs
from corral.config.settings import (
    checkout_settings,
    ha_settings,
    manager_settings,
    metrics_settings,
    monitor_settings,
    provider_context,
    scheduler_settings,
)
from corral.domain.models import TokenRecord
from corral.ha.broker import Broker
from corral.ha.cluster import Cluster
from corral.ha.leases import Leases, Registry, SyncRenewal
from corral.ha.loop import HaLoop
from corral.ha.roles import Role
from corral.ha.switch import ServiceSwitch
from corral.ha.wake import Wakes, listen
from corral.metrics import Metrics
from corral.pools.service import PoolService
from corral.providers.base import Provider
from corral.providers.counting import ProviderCounts, counted
from corral.providers.registry import PROVIDERS, ProviderUnavailable
from corral.store.base import Store, StoreError
from corral.store.redis import RedisStore
from corral.store.redis_keys import Keys
from corral.store.scoped import Scoped

DEFAULT_REDIS_PORT = 6379

log = logging.getLogger("corral.config")


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
    path: Path | None = None  # the file the configuration was read from (reloaded from there)
    plan: ManagerPlan | None = None  # what this process's manager builds its pool services from (Redis)
    metrics: Metrics = field(init=False)
    _reloading: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

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

    async def reload(self) -> Reloaded:
        """Read the file again and apply what changed (see :func:`reload_service`); a
        :class:`~corral.config.ConfigError` naming every problem leaves everything as it was."""
        async with self._reloading:
            return await reload_service(self)

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
        return SqliteStore(path, lock_wait_s=config.store.lock_wait)
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
    counts = ProviderCounts()
    providers = counted(build_providers(config), counts)
    store = build_store(config)
    return PoolService(config.domain_pools(), providers, store, manager_settings(config),
                       monitor=monitor_settings(config), checkout=checkout_settings(config), counts=counts)


def build_service(config: Config, role: Role = Role.ALL, manager_id: str | None = None,
                  path: Path | None = None) -> Service:
    """What ``corral serve`` runs with an API (roles ``all`` and ``api``); ``path``, the file
    ``config`` was read from, is the one a reload reads."""
    service = _build_service(config, role, manager_id)
    service.path = path
    return service


def _build_service(config: Config, role: Role, manager_id: str | None) -> Service:
    authenticator = build_authenticator(config.auth) if config.auth is not None else None
    if config.store.type != "redis":
        if role is not Role.ALL:
            raise ConfigError([f"--role {role.value}: several processes need a shared store; "
                               "set :store: type: redis (the sqlite store serves one process, --role all)"])
        return Service(config=config, pools=build_pool_service(config), authenticator=authenticator)
    site = shared_site(config)
    counts = ProviderCounts()
    providers = counted(build_providers(config), counts)
    front = PoolService(config.domain_pools(), providers, site.store.waking(), manager_settings(config),
                        monitor=monitor_settings(config), checkout=checkout_settings(config), owners=site.wakes,
                        counts=counts)
    plan = ManagerPlan(config, dict(providers), counts)
    cluster = build_cluster(config, site, providers, manager_id, close=nothing, plan=plan) if role is Role.ALL else None
    return Service(config=config, pools=front, authenticator=authenticator, cluster=cluster,
                   managers=site.registry.managers, site=site, plan=plan if cluster is not None else None)


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
    return SharedSite(store=store, keys=keys, client=client, wakes=wakes,
                      registry=Registry(client, keys, f"{host}:{port}"))


def sync_client(host: str, port: int, password: str | None) -> redis.Redis:
    """A client for wakes: one try, short timeouts (a wake is best effort)."""
    return redis.Redis(host=host, port=port, password=password, socket_timeout=1, socket_connect_timeout=1,
                       retry=Retry(NoBackoff(), 0))


def build_cluster(config: Config, site: SharedSite, providers: dict[str, Provider],
                  manager_id: str | None = None, close: Callable[[], Awaitable[None]] | None = None,
                  plan: ManagerPlan | None = None) -> Cluster:
    """This process's manager: the agent's loop over leases in Redis, running the pool service
    over the pools it holds (writes fenced by their tokens, reads scoped to them). ``close``
    (by default the site's connections) runs once the manager has drained."""
    settings = ha_settings(config, manager_id)
    plan = plan or ManagerPlan(config, providers, ProviderCounts())

    async def ping() -> bool:
        return bool(await site.client.ping())

    host, port, password = redis_endpoint(config)
    # the keeper's own connection: it renews the leases from a thread while the loop is busy
    keeper = redis.Redis(host=host, port=port, password=password, socket_timeout=settings.io_timeout_s,
                         socket_connect_timeout=settings.io_timeout_s, retry=Retry(NoBackoff(), 0))
    broker = Broker(settings, Leases(site.client, site.keys), site.registry, pools=lambda: plan.names, ping=ping,
                    keep=SyncRenewal(keeper, site.keys))
    fenced = site.store.fenced(broker.token)

    # a start waits for the providers at most half the time a lease is trusted for after its
    # renewal; a provider slower than that comes in later. A start that took longer would let
    # the lease's deadline pass before the next renewal: the pools stopped again at once.
    configured = manager_settings(config)
    run = dataclasses.replace(configured, connect_wait_s=min(configured.connect_wait_s, settings.io_timeout_s / 2))

    def make(acting: frozenset[str]) -> PoolService:
        current = plan.config
        return PoolService([p for p in plan.pools if p.name in acting], plan.providers,
                           cast(Store, Scoped(fenced, acting)), dataclasses.replace(run, scheduling=scheduler_settings(
                               current)), monitor=monitor_settings(current), checkout=checkout_settings(current),
                           counts=plan.counts)

    switch = ServiceSwitch(make)
    return Cluster(HaLoop(broker, switch.apply), switch, functools.partial(listen, site.client, site.keys),
                   close or site.close)


class ManagerPlan:
    """What a manager builds its pool services from: the configuration and providers now (a
    reload replaces them; the next service built takes them), and the counts of the providers'
    failures (the process's, kept across reloads)."""

    def __init__(self, config: Config, providers: dict[str, Provider], counts: ProviderCounts) -> None:
        self.counts = counts
        self.providers = counted(providers, counts)
        self.update(config, {})

    def update(self, config: Config, providers: Mapping[str, Provider]) -> None:
        self.config = config
        self.providers.update(providers)
        self.pools = config.domain_pools()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.pools)


def build_manager(config: Config, manager_id: str | None = None, path: Path | None = None) -> ManagerRun:
    """What ``corral serve --role manager`` runs: a manager with no API (``path``: the file a
    reload reads)."""
    if config.store.type != "redis":
        raise ConfigError(["--role manager: several processes need a shared store; set :store: type: redis "
                           "(the sqlite store serves one process, --role all)"])
    site = shared_site(config)
    plan = ManagerPlan(config, build_providers(config), ProviderCounts())
    return ManagerRun(build_cluster(config, site, plan.providers, manager_id, site.close, plan), plan, path)


# -- reloading the configuration -------------------------------------------------------------------
@dataclass(frozen=True)
class Reloaded:
    """A reload that was applied: what changed (``diff.restart`` names what waits for a restart)
    and the new file's warnings."""

    diff: ConfigDiff
    warnings: list[str]

    def as_dict(self) -> dict[str, Any]:
        return {"changed": not self.diff.empty, **self.diff.as_dict(), "warnings": list(self.warnings)}


def reconnected(old: Config, new: Config) -> tuple[Config, list[str]]:
    """The providers a reload builds anew, and the configuration they are built from: ``new``
    with the pools it removes kept (their VMs drain, and a provider that reads its pools must
    still see them as its own). Built anew: the providers a pool uses now and none did, those
    whose keys changed, and those built with their pools' keys (vSphere, libvirt) when those
    changed."""
    names = {p.name for p in new.pools}
    built = new.model_copy(update={"pools": [*new.pools, *(p for p in old.pools if p.name not in names)]})
    diff = diff_configs(old, built)
    rebuilt = set(diff.providers_added) | set(diff.providers_changed)
    for name in diff.pools_of_providers:
        cls = PROVIDERS.get(new.provider_class(name))
        if cls is not None and cls.reads_pools:
            rebuilt.add(name)
    return built, sorted(rebuilt)


@dataclass(frozen=True)
class NextConfig:
    """A configuration file read again, checked, compared with the running one, and the providers
    it needs anew built (not connected): all of it before anything is applied."""

    config: Config
    warnings: list[str]
    diff: ConfigDiff
    providers: dict[str, Provider]


def read_again(path: Path | None, old: Config, counts: ProviderCounts) -> NextConfig:
    """Read ``path`` again against the running ``old``; a ConfigError naming every problem (an
    invalid file, a store of another kind, a provider that cannot be built) changes nothing. The
    providers built anew count their failures in ``counts``."""
    if path is None:
        raise ConfigError(["(reload): this corral was not started from a configuration file"])
    new, warnings = load_config(path)
    if new.store.type != old.store.type:
        raise ConfigError([f"store.type: {old.store.type!r} cannot become {new.store.type!r} while corral runs; "
                           "restart it"])
    diff = diff_configs(old, new)
    built, names = reconnected(old, new)
    try:
        providers = counted({name: build_provider(built, name) for name in names}, counts)
    except ValueError as exc:  # a provider refused its settings
        raise ConfigError([f"providers: {exc}"]) from None
    return NextConfig(new, warnings, diff, providers)


async def restart_manager(plan: ManagerPlan, cluster: Cluster, upcoming: NextConfig) -> None:
    """A manager on Redis takes a reload by restarting its pool service over the pools it holds
    that are still configured (recovery takes over, as after a change of leases); its agent bids
    for the pools added at its next tick."""
    plan.update(upcoming.config, upcoming.providers)
    switch = cluster.switch
    acting = switch.acting
    await switch.apply(frozenset())
    await switch.apply(acting & frozenset(plan.names))


def log_reloaded(path: Path | None, upcoming: NextConfig) -> Reloaded:
    diff = upcoming.diff
    log.info("configuration reloaded", extra={"path": str(path), "pools_added": ",".join(diff.pools_added),
                                             "pools_removed": ",".join(diff.pools_removed),
                                             "pools_changed": ",".join(diff.pools_changed),
                                             "providers": ",".join(upcoming.providers) or None,
                                             "restart_needed": ",".join(diff.restart) or None})
    return Reloaded(diff, upcoming.warnings)


async def reload_service(service: Service) -> Reloaded:
    """Read ``service.path`` again and apply it: pools added start filling, pools removed drain,
    changed pools apply at once, providers whose keys changed are rebuilt and reconnected (each
    alone), the scheduling policy, the checkout's weights and ``:auth:`` are replaced. On a site
    on Redis this process's manager restarts its pool service (:func:`restart_manager`); each
    process reloads its own file."""
    upcoming = read_again(service.path, service.config, service.pools.counts)
    new, diff = upcoming.config, upcoming.diff
    authenticator = build_authenticator(new.auth) if new.auth is not None else None
    scheduling = scheduler_settings(new) if diff.scheduling else None
    await service.pools.reload(new.domain_pools(), providers=upcoming.providers, scheduling=scheduling,
                               checkout=checkout_settings(new))
    if service.plan is not None and service.cluster is not None:
        await restart_manager(service.plan, service.cluster, upcoming)
    if diff.auth:
        service.authenticator = authenticator
    service.config = new
    return log_reloaded(service.path, upcoming)


@dataclass
class ManagerRun:
    """What ``corral serve --role manager`` runs: a manager with no API, and what a reload
    (SIGHUP) of its file replaces."""

    cluster: Cluster
    plan: ManagerPlan
    path: Path | None = None
    _reloading: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    async def reload(self) -> Reloaded:
        async with self._reloading:
            upcoming = read_again(self.path, self.plan.config, self.plan.counts)
            await restart_manager(self.plan, self.cluster, upcoming)
            return log_reloaded(self.path, upcoming)


class Reloads(Protocol):
    """A process whose configuration file can be read again."""

    path: Path | None

    async def reload(self) -> Reloaded: ...


async def reload_logged(service: Reloads) -> None:
    """A reload asked for by a signal: its outcome goes to the log only (every problem of a
    refused file on one line each)."""
    try:
        reloaded = await service.reload()
    except ConfigError as exc:
        log.error("configuration not reloaded: the file is invalid; the running configuration stays",
                  extra={"path": str(service.path), "problems": len(exc.problems)})
        for problem in exc.problems:
            log.error("configuration problem", extra={"problem": problem})
        return
    except Exception:
        log.exception("configuration reload failed")
        return
    for warning in reloaded.warnings:
        log.warning("configuration warning", extra={"warning": warning})


def reload_on_sighup(target: Reloads) -> None:
    """Reload ``target``'s configuration on each SIGHUP (installed on the running loop, which
    must be the main thread's); the outcome goes to the log."""
    reloads: set[asyncio.Task[None]] = set()  # kept until they end

    def hangup() -> None:
        task = asyncio.ensure_future(reload_logged(target))
        reloads.add(task)
        task.add_done_callback(reloads.discard)

    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hangup)
