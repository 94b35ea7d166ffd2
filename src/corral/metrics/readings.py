"""What the pool service's views say, as metric readings: pure functions, read at scrape (or
push) time. A reading is a metric's key, its label values (in the order of the metric's
labels) and a number."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from corral.pools.service import (
    AutosizeView,
    HostStatus,
    MonitoringStatus,
    ProviderFailures,
    RunnerStatus,
    SchedulingStatus,
    Stock,
)

__all__ = ["Reading", "Views", "manager_readings", "view_readings"]


@dataclass(frozen=True, slots=True)
class Reading:
    key: str
    labels: tuple[str, ...]
    value: float


@dataclass(frozen=True, slots=True)
class Views:
    """One reading of the pool service: the stock from the store (every pool), and what the
    process running the pools knows (None in a process that runs none)."""

    stock: Stock
    monitoring: MonitoringStatus | None = None
    scheduling: SchedulingStatus | None = None
    runner: RunnerStatus | None = None
    hosts: tuple[HostStatus, ...] = ()
    rejections: Mapping[str, int] | None = None
    autosizing: Mapping[str, AutosizeView] | None = None
    provider_failures: ProviderFailures | None = None  # the process's providers, whichever service runs


def _flag(value: bool) -> float:
    return 1.0 if value else 0.0


def view_readings(views: Views) -> list[Reading]:
    """Every reading the views give (gauges, and the counters the layers keep)."""
    out: list[Reading] = []
    add = out.append
    for p in views.stock.pools:
        pool = (p.name,)
        add(Reading("ready", pool, p.ready))
        add(Reading("running", pool, p.running))
        add(Reading("pending", pool, p.pending))
        add(Reading("pool_size", pool, p.size))
        add(Reading("pool_unplaceable", pool, _flag(p.placement_error is not None)))
    for name, auto in (views.autosizing or {}).items():
        add(Reading("pool_target_size", (name,), auto.target))
        add(Reading("pool_demand_per_hour", (name,), auto.rate_per_hour))
        add(Reading("pool_ready_seconds", (name,), auto.ready_s))
    if views.runner is not None:
        out += _runner(views.runner)
    for h in views.hosts:
        host = (h.provider, h.name)
        add(Reading("host_calls_in_flight", host, h.calls_in_flight))
        add(Reading("host_cpu_percent", host, h.cpu_percent))
        add(Reading("host_memory_percent", host, h.memory_percent))
        add(Reading("host_vms", host, h.vms))
        add(Reading("host_up", host, _flag(h.up)))
        add(Reading("host_down", host, _flag(h.down)))
        add(Reading("host_maintenance", host, _flag(h.maintenance)))
    if views.scheduling is not None:
        out += _scheduling(views.scheduling)
    for reason, count in sorted((views.rejections or {}).items()):
        add(Reading("placement_rejections", (reason,), count))
    if views.monitoring is not None:
        out += _monitoring(views.monitoring)
    if views.provider_failures is not None:
        out += _provider_failures(views.provider_failures)
    return out


def _provider_failures(f: ProviderFailures) -> list[Reading]:
    out = [Reading("provider_failures", (provider, operation, cause), n)
           for provider, ops in f.failures.items() for operation, causes in ops.items() for cause, n in causes.items()]
    out += [Reading("provider_sessions_renewed", (provider,), n) for provider, n in f.sessions_renewed.items()]
    return out


def _runner(r: RunnerStatus) -> list[Reading]:
    q = r.queue
    out = [Reading("runner_queued", (cls,), n) for cls, n in q.queued_by_class.items()]
    out += [Reading("runner_queue_limit", (), q.queue_limit), Reading("runner_calls_in_flight", (), q.calls_in_flight),
            Reading("runner_calls_waiting", (), q.calls_waiting), Reading("runner_calls", (), q.calls),
            Reading("runner_vms_sent", (), q.vms_sent), Reading("runner_hosts_avoided", (), len(q.hosts_avoided)),
            Reading("runner_breakers_opened", (), q.breakers_opened),
            Reading("runner_breakers_closed", (), q.breakers_closed),
            Reading("ha_restarts", (), r.ha_restarts), Reading("ha_restart_failures", (), r.ha_failures)]
    outcomes = {"created": q.created, "restarted": q.restarted, "rerun": q.reruns, "failed": q.failed,
                "permanent_failure": q.permanent_failures, "unplaced": q.unplaced, "cancelled": q.cancelled,
                "refused": q.refused}
    out += [Reading("runner_works", (outcome,), n) for outcome, n in outcomes.items()]
    return out


def _scheduling(s: SchedulingStatus) -> list[Reading]:
    out = []
    for provider, p in s.providers.items():
        out += [Reading("placement_placed", (provider,), p.placed),
                Reading("placement_unplaced", (provider,), p.unplaced),
                Reading("placement_reserved", (provider,), p.reserved)]
    m = s.migrations
    out.append(Reading("migrations_in_flight", (), m.in_flight))
    c = m.counts
    outcomes = {"done": c.done, "failed": c.failed, "not_needed": c.not_needed, "dropped": c.dropped,
                "rebalanced": c.rebalanced, "unsupported": c.unsupported}
    out += [Reading("migrations", (outcome,), n) for outcome, n in outcomes.items()]
    return out


def _monitoring(m: MonitoringStatus) -> list[Reading]:
    out = []
    for name, p in m.providers.items():
        provider = (name,)
        out += [Reading("provider_connected", provider, _flag(p.connected)),
                Reading("provider_connect_attempts", provider, p.attempts)]
        if p.feed is not None:
            f = p.feed
            out += [Reading("provider_feed_errors", provider, f.feed_errors),
                    Reading("provider_resnapshots", provider, f.resnapshots),
                    Reading("provider_inventory_repairs", provider, f.repairs),
                    Reading("provider_vms", provider, f.vms),
                    Reading("provider_hosts_down", provider, len(f.hosts_down))]
            if f.lag_s is not None:
                out.append(Reading("provider_feed_lag_seconds", provider, f.lag_s))
    out += [Reading("reconciles", (), m.reconciles), Reading("reconcile_repairs", (), m.store_repairs),
            Reading("vanished", (), m.vanished), Reading("orphans_destroyed", (), m.orphans_destroyed),
            Reading("destroy_failures", ("retrying",), m.destroy_failures.retrying),
            Reading("destroy_failures", ("held",), m.destroy_failures.held),
            Reading("events_published", (), m.events.published),
            Reading("event_overflows", (), sum(s.overflows for s in m.events.subscribers.values())),
            Reading("store_available", (), _flag(m.store.available)),
            Reading("store_outages", (), m.store.outages),
            Reading("store_steps_refused", (), m.store.writes_refused)]
    return out


def manager_readings(managers: Mapping[str, Mapping[str, Any]]) -> list[Reading]:
    """The live managers of a site as the registry publishes them (``state``, ``score``,
    ``pools``); a field that is missing or of the wrong type is left out."""
    out: list[Reading] = []
    for name in sorted(managers):
        info = managers[name]
        state, score, pools = info.get("state"), info.get("score"), info.get("pools")
        if isinstance(state, str):
            out.append(Reading("manager_state", (name, state), 1.0))
        if isinstance(pools, list):
            out.append(Reading("manager_pools", (name,), len(pools)))
        if isinstance(score, int | float) and not isinstance(score, bool):
            out.append(Reading("manager_score", (name,), float(score)))
    return out
