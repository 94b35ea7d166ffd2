"""What each layer is given of the configuration: its own settings dataclasses, built from the
model (the inventory's, the pool manager's, the runner's, the scheduler's, a provider factory's
context). The layers below never see the configuration model itself."""

from __future__ import annotations

import os
import socket

from corral.config.errors import ConfigError
from corral.config.schema import Config
from corral.ha.settings import HaSettings
from corral.inventory import MonitorSettings
from corral.metrics.settings import MetricsSettings, PrometheusSettings, PushTarget
from corral.pools.service import CheckoutSettings
from corral.pools.settings import ManagerSettings
from corral.providers.registry import ProviderContext
from corral.runner import RunnerSettings
from corral.runner.breaker import BreakerSettings
from corral.scheduling import SchedulerSettings

__all__ = ["ha_settings", "manager_settings", "metrics_settings", "monitor_settings", "provider_context",
           "runner_settings", "scheduler_settings"]


def provider_context(config: Config, name: str) -> ProviderContext:
    """What provider ``name``'s factory reads beside its own entry: the pools that use it,
    ``:config:`` and the ``:dns_configs:`` domains, as plain values."""
    return ProviderContext(
        pools=tuple(p.model_dump() for p in config.pools if config.pool_provider(p) == name),
        config=config.config.model_dump(),
        dns_domains=config.dns_domains,
    )


def monitor_settings(config: Config) -> MonitorSettings:
    """The live inventory's settings (``:monitoring:``)."""
    m = config.monitoring
    return MonitorSettings(feed_timeout=m.feed_timeout, host_down_grace_s=m.host_down_grace,
                           over_utilized_percent=m.over_utilized_percent, queue_size=m.subscriber_queue,
                           history=m.event_history)


def manager_settings(config: Config) -> ManagerSettings:
    """The pool manager's settings, with the runner's and the scheduler's inside."""
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
    """The runner's settings (``:runner:``, and ``:config:``'s task limit, tries and circuit breakers)."""
    r, g = config.runner, config.config
    return RunnerSettings(window_s=r.aggregation_window, batch_size=r.batch_size, task_limit=config.config.task_limit,
                          host_limit=r.host_task_limit, queue_limit=r.queue_limit, refill_share=r.refill_share,
                          max_tries=config.config.max_tries, retry_delay_s=r.retry_delay,
                          retry_delay_max_s=r.retry_delay_max, refill_order=r.refill_order, breakers=BreakerSettings(
                              enabled=g.circuit_breaker_enabled, failure_threshold=g.circuit_breaker_failure_threshold,
                              timeout_s=g.circuit_breaker_timeout,
                              half_open_attempts=g.circuit_breaker_half_open_attempts))


def scheduler_settings(config: Config) -> SchedulerSettings:
    """The scheduler's settings (``:scheduling:`` and ``:config: utilization_limit``)."""
    s = config.scheduling
    return SchedulerSettings(utilization_limit=config.config.utilization_limit, memory_overcommit=s.memory_overcommit,
                             vcpu_load=s.vcpu_load, policy=s.policy, weights=dict(s.weights) or None,
                             reservation_timeout=s.reservation_timeout)


def checkout_settings(config: Config) -> CheckoutSettings:
    g = config.config
    return CheckoutSettings(backend_weight=dict(g.backend_weight))


def ha_settings(config: Config, manager_id: str | None = None) -> HaSettings:
    """This manager's control-plane settings (``:ha:``); ``manager_id`` overrides the configured
    name, and without either the name is ``host:pid``."""
    h = config.ha
    name = manager_id or h.manager_id or f"{socket.gethostname()}:{os.getpid()}"
    try:
        return HaSettings(manager_id=name, ttl_s=h.lease_ttl, renew_every_s=h.renew_every, safety=h.safety,
                          score_threshold=h.score_threshold)
    except ValueError as exc:  # a blank --manager-id; the file's values are checked when it is read
        raise ConfigError([f"ha: {exc}"]) from None


def metrics_settings(config: Config) -> MetricsSettings:
    """The metrics' settings (``:prometheus:``, ``:statsd:``, ``:graphite:``)."""
    p = config.prometheus
    prometheus = PrometheusSettings(instance=p.prefix, name_prefix=p.prometheus_prefix,
                                    endpoint=p.prometheus_endpoint)
    targets = [None if c is None else PushTarget(server=c.server, port=c.port, prefix=c.prefix, interval_s=c.interval,
                                                 timeout_s=c.timeout)
               for c in (config.statsd, config.graphite)]
    return MetricsSettings(prometheus=prometheus, statsd=targets[0], graphite=targets[1])
