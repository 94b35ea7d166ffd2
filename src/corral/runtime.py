"""Assemble a running corral from its configuration: store, providers, pool manager."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from corral.auth import LoginGuard, build_authenticator
from corral.config import Config, ConfigError
from corral.inventory import Inventory, MonitorSettings
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.base import Provider
from corral.runner import RunnerSettings
from corral.runner.breaker import BreakerSettings
from corral.scheduling import SchedulerSettings
from corral.store.base import Store


@dataclass
class Service:
    config: Config
    store: Store
    providers: dict[str, Provider]
    manager: PoolManager
    authenticator: LoginGuard | None = None  # the provider behind the login guard; None: no ``:auth:``
    started_at: float = field(default_factory=time.time)

    async def start(self) -> None:
        await self.manager.start()

    async def stop(self) -> None:
        await self.manager.stop()
        self.store.close()


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


def build_service(config: Config) -> Service:
    providers = build_providers(config)
    store = build_store(config)
    inventory = Inventory(providers, monitor_settings(config))
    manager = PoolManager(config.domain_pools(), providers, store, manager_settings(config), inventory=inventory)
    manager.apply_overrides(store.pool_overrides())
    authenticator = build_authenticator(config.auth) if config.auth is not None else None
    return Service(config=config, store=store, providers=providers, manager=manager, authenticator=authenticator)
