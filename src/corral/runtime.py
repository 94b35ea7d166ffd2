"""Assemble a running corral from its configuration: store, providers, the pool service."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError
from corral.domain.models import TokenRecord
from corral.inventory import MonitorSettings
from corral.pools.manager import ManagerSettings
from corral.pools.service import CheckoutSettings, PoolService
from corral.providers.base import Provider
from corral.runner import RunnerSettings
from corral.runner.breaker import BreakerSettings
from corral.scheduling import SchedulerSettings
from corral.store.base import Store


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
        if cls == "sim":
            from corral.providers.sim import SimProvider

            providers[name] = SimProvider(name, config.sim_settings(name))
        elif cls == "vsphere":
            providers[name] = build_vsphere(config, name)
        else:
            problems.append(f"providers.{name}.provider_class: the {cls!r} provider is not available "
                            "in this version of corral (available: sim, vsphere)")
    if problems:
        raise ConfigError(problems)
    return providers


def build_vsphere(config: Config, name: str) -> Provider:
    """A vSphere provider with the vSphere keys of the pools that use it and ``:config:``'s defaults."""
    from corral.providers.vsphere import VsphereProvider, vsphere_pools
    from corral.providers.vsphere.settings import ReadyCheck

    settings = config.vsphere_settings(name)
    g = config.config
    pools = vsphere_pools([p for p in config.pools if config.pool_provider(p) == name], g, settings,
                          config.dns_domains)
    return VsphereProvider(
        name,
        settings,
        pools,
        create_folders=g.create_folders,
        create_template_delta_disks=g.create_template_delta_disks,
        purge=g.purge_unconfigured_resources or g.purge_unconfigured_folders,
        ready=ReadyCheck(g.ready_check_port, g.ready_check_timeout, g.ready_check_address),
    )


def build_store(config: Config) -> Store:
    """The sqlite store; one line naming the path and the cause if it cannot be opened."""
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


def monitor_settings(config: Config) -> MonitorSettings:
    m = config.monitoring
    return MonitorSettings(feed_timeout=m.feed_timeout, host_down_grace_s=m.host_down_grace,
                           over_utilized_percent=m.over_utilized_percent, queue_size=m.subscriber_queue,
                           history=m.event_history)


def manager_settings(config: Config) -> ManagerSettings:
    g = config.config
    m = config.monitoring
    return ManagerSettings(
        task_limit=g.task_limit,
        check_interval=g.check_interval,
        prefix=g.prefix,
        data_ttl_s=config.history_ttl_hours * 3600.0,
        ondemand_clone_limit=g.ondemand_clone_limit,
        ondemand_ttl_s=g.ondemand_request_ttl * 60.0,
        lifetime_auth_s=g.vm_lifetime_auth * 3600.0 if g.vm_lifetime_auth else None,
        reconcile_interval=m.reconcile_interval,
        feed_timeout=m.feed_timeout,
        host_down_grace_s=m.host_down_grace,
        scheduling=scheduler_settings(config),
        migration_limit=g.migration_limit,
        rebalance=config.scheduling.rebalance,
        rebalance_threshold=config.scheduling.rebalance_threshold,
        rebalance_sustain_s=config.scheduling.rebalance_sustain,
        rebalance_interval_s=config.scheduling.rebalance_interval,
        runner=runner_settings(config),
    )


def runner_settings(config: Config) -> RunnerSettings:
    r, g = config.runner, config.config
    return RunnerSettings(window_s=r.aggregation_window, batch_size=r.batch_size, task_limit=config.config.task_limit,
                          host_limit=r.host_task_limit, queue_limit=r.queue_limit, refill_share=r.refill_share,
                          max_tries=config.config.max_tries, retry_delay_s=r.retry_delay,
                          retry_delay_max_s=r.retry_delay_max, breakers=BreakerSettings(
                              enabled=g.circuit_breaker_enabled, failure_threshold=g.circuit_breaker_failure_threshold,
                              timeout_s=g.circuit_breaker_timeout,
                              half_open_attempts=g.circuit_breaker_half_open_attempts))


def scheduler_settings(config: Config) -> SchedulerSettings:
    s = config.scheduling
    return SchedulerSettings(utilization_limit=config.config.utilization_limit, memory_overcommit=s.memory_overcommit,
                             vcpu_load=s.vcpu_load, policy=s.policy, weights=dict(s.weights) or None,
                             reservation_timeout=s.reservation_timeout)


def checkout_settings(config: Config) -> CheckoutSettings:
    g = config.config
    return CheckoutSettings(backend_weight=dict(g.backend_weight),
                            lifetime_auth_s=g.vm_lifetime_auth * 3600.0 if g.vm_lifetime_auth else None)


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
