"""The sections of the configuration beside its pools and providers: ``:config:``, ``:store:``,
``:monitoring:``, ``:runner:``, ``:scheduling:``, ``:rate_limits:``, ``:redis:``, and the metrics'
``:prometheus:``, ``:statsd:`` and ``:graphite:``.

vmpooler's units (``timeout`` and ``ready_ttl`` in minutes, ``vm_lifetime`` in hours) and
defaults are kept; see :mod:`corral.config.schema` for the whole file.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from corral.config.dns import DomainName
from corral.domain.limits import MAX_LIFETIME_HOURS
from corral.domain.settings_model import SettingsModel
from corral.scheduling.weights import POLICIES, WEIGHTS

__all__ = ["SCHEDULING_FACTORS", "SCHEDULING_POLICIES", "GlobalSettings", "GraphiteConfig", "HaConfig",
           "MonitoringSettings", "PrometheusConfig", "RateLimit", "RateLimits", "RedisSettings", "RunnerConfig",
           "SchedulingSettings", "Section", "StatsdConfig", "StoreSettings"]


class Section(SettingsModel):
    """Base of every section: unknown keys are kept; :mod:`corral.config.keys` judges them."""


class GlobalSettings(Section):
    """The ``:config:`` section."""

    known_unused = frozenset(
        {
            "logfile", "vm_checktime",
            "retry_factor", "check_loop_delay_min", "check_loop_delay_max",
            "check_loop_delay_decay", "usage_stats",
            "extra_config",
            "manage_host_selection",
            "host_selection_max_age", "timeout_notification",
            "max_vm_retries",
            "adaptive_timeout_enabled", "connection_pool_timeout_min",
            "connection_pool_timeout_max", "connection_pool_timeout_initial",
            "connection_pool_monitor_enabled", "connection_pool_monitor_interval",
            "check_ready_vm_hostname_for_mismatch", "purge_enabled", "purge_dry_run", "purge_interval",
            "max_pending_age", "max_ready_age", "max_completed_age", "max_orphaned_age",
            "health_check_enabled", "health_check_interval", "health_thresholds",
            "dlq_enabled", "dlq_ttl", "dlq_max_entries",
        }
    )

    site_name: str = "vmpooler"
    task_limit: int = Field(10, ge=1)
    timeout: float = Field(15, gt=0, description="minutes a VM may stay pending")
    ready_ttl: float | None = Field(60, gt=0, description="minutes a VM may stay ready")
    vm_lifetime: float = Field(24, gt=0, le=MAX_LIFETIME_HOURS, description="hours a checked-out VM lives")
    prefix: str = ""
    domain: DomainName | None = Field(None, description="vmpooler 2: the domain of pools that get none otherwise")
    # placement, as vmpooler's vSphere provider reads these keys
    migration_limit: int = Field(
        0, ge=0, description="migrations at checkout in flight at once; 0 turns migration at checkout off"
    )
    utilization_limit: float = Field(
        90, gt=0, le=100, description="percent of CPU or memory a host may reach with a new VM"
    )
    clone_target: str | None = Field(None, description="the cluster every pool clones into unless it names one")
    max_tries: int = Field(3, ge=1, description="attempts to create (or HA-restart) one VM, each on another host")
    # vmpooler's circuit breaker keys; corral keeps one breaker per host
    circuit_breaker_enabled: bool = True
    circuit_breaker_failure_threshold: int = Field(
        5, ge=1, description="VMs failed in a row that open a host's breaker"
    )
    circuit_breaker_timeout: float = Field(30, gt=0, description="seconds an open breaker keeps new VMs off its host")
    circuit_breaker_half_open_attempts: int = Field(3, ge=1, description="successes that close a half-open breaker")
    # vmpooler's vSphere keys, defaults for every vSphere provider
    create_folders: bool = Field(False, description="create a pool's folder when it is missing")
    create_linked_clones: bool = Field(True, description="linked clones of the template's snapshot")
    create_template_delta_disks: bool = Field(
        False, description="snapshot a template that has none, once, so that its clones can be linked"
    )
    purge_unconfigured_resources: bool = Field(False, description="destroy folders beside pool folders no pool uses")
    purge_unconfigured_folders: bool = Field(False, description="the older name of purge_unconfigured_resources")
    # corral's own keys
    check_interval: float = Field(5.0, gt=0, description="seconds between safety-net sweeps")
    ready_check_port: int = Field(22, ge=1, le=65535)
    ready_check_timeout: float = Field(5.0, gt=0)
    ready_check_address: Literal["name", "guest_ip"] = Field(
        "name", description="vSphere: readiness connects to the VM's name (domain appended) or its guest IP"
    )
    data_ttl: float = Field(168, ge=0, description="hours destroyed VMs are kept as history")
    # the API
    vm_lifetime_auth: float | None = Field(None, gt=0, le=MAX_LIFETIME_HOURS,
                                           description="hours; lifetime of a VM checked out with a token")
    max_lifetime_upper_limit: float | None = Field(None, gt=0, le=MAX_LIFETIME_HOURS,
                                                   description="hours a lifetime may be extended to")
    allowed_tags: list[str] | None = None
    experimental_features: bool = False
    backend_weight: dict[str, float] = Field(default_factory=dict)
    max_ondemand_instances_per_request: int = Field(10, ge=1)
    ondemand_request_ttl: float = Field(5, gt=0, description="minutes an on-demand request may take")
    ondemand_clone_limit: int = Field(10, ge=1)
    rate_limiting_enabled: bool = False
    request_logger: bool = False

    @field_validator("backend_weight")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if w <= 0]
        if bad:
            raise ValueError(f"weights must be > 0 (see {', '.join(map(repr, bad))})")
        return value


class StoreSettings(Section):
    """corral's ``:store:`` section: the embedded sqlite file, or Redis (``:redis:`` says where)."""

    type: Literal["sqlite", "redis"] = Field("sqlite", description="sqlite (one file) or redis (shared)")
    path: str = Field("var/corral.db", description="the sqlite file (type sqlite)")
    site: str = Field("default", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="the Redis key prefix corral:<site>: (type redis); one per corral deployment")


class HaConfig(Section):
    """corral's ``:ha:`` section: how the managers of a site on one Redis share its pools (see
    docs/operations.md). Only read with ``:store: type: redis``."""

    lease_ttl: float = Field(5, gt=0, le=300, description="seconds a pool's lease lives in Redis without renewal")
    renew_every: float = Field(1, gt=0, description="seconds between two renewals (and decisions) of a manager")
    safety: float = Field(0.6, gt=0, lt=1, description="share of lease_ttl a manager acts after its last renewal")
    manager_id: str | None = Field(None, min_length=1, max_length=200,
                                   description="this process's name among the managers (default: host:pid)")
    score_threshold: int = Field(50, ge=0, le=100, description="managers scoring lower take pools only "
                                                               "when none scores this")

    @model_validator(mode="after")
    def _renewal_fits(self) -> HaConfig:
        if self.renew_every >= self.lease_ttl * self.safety:
            raise ValueError(f"renew_every ({self.renew_every} s) must be below lease_ttl × safety "
                             f"({self.lease_ttl * self.safety:.2f} s), or a healthy manager would stop "
                             "acting between two renewals")
        return self


class MonitoringSettings(Section):
    """corral's ``:monitoring:`` section: the live inventory, its events and the safety nets."""

    host_down_grace: float = Field(60, ge=0, description="seconds a host must stay unresponsive before it is down")
    reconcile_interval: float = Field(300, gt=0, description="seconds between full drift repairs")
    over_utilized_percent: float = Field(80, gt=0, le=100, description="CPU or memory use that raises an event")
    feed_timeout: float = Field(30, gt=0, le=600, description="seconds one change-feed long poll may wait")
    subscriber_queue: int = Field(10_000, ge=10, description="events one subscriber may hold before it resyncs")
    event_history: int = Field(1_000, ge=0, description="events kept for event-stream clients that reconnect")
    event_stream_keepalive: float = Field(15, gt=0, description="seconds between keep-alive comments on /events")


class RunnerConfig(Section):
    """corral's ``:runner:`` section: how VM creates and HA restarts are queued and sent."""

    aggregation_window: float = Field(
        0.1, ge=0, le=10, description="seconds works wait for others to be placed and sent together"
    )
    batch_size: int = Field(1000, ge=1, description="works taken at once; a full batch does not wait out the window")
    host_task_limit: int = Field(4, ge=1, description="provider calls in flight at once on one host")
    queue_limit: int = Field(10_000, ge=1, description="VMs waiting to be created or started at most")
    refill_share: float = Field(
        0.5, gt=0, le=1, description="share of the queue pool refills may fill; the rest is kept for requests"
    )
    retry_delay: float = Field(1.0, ge=0, description="seconds before the first rerun of a failed VM; doubled after")
    retry_delay_max: float = Field(60, ge=0, description="longest wait between two tries")


#: The weights ``:scheduling: weights`` may set, and the policies ``policy`` may name: the scheduler's.
SCHEDULING_FACTORS: tuple[str, ...] = tuple(WEIGHTS)
SCHEDULING_POLICIES: tuple[str, ...] = tuple(POLICIES)


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(map(repr, names[:-1]))} or {names[-1]!r}" if len(names) > 1 else repr(names[0])


class SchedulingSettings(Section):
    """corral's ``:scheduling:`` section: how new VMs are placed on hosts, and rebalancing."""

    policy: str = Field(
        "even",
        description="even: spread CPU (factor 2) and memory (factor 1); pack: fill the busiest host "
        "that still fits; count: spread the number of VMs",
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="factors overriding the policy's: cpu, memory, count, pack"
    )
    memory_overcommit: float = Field(1.0, gt=0, description="VM memory may reach host memory times this")
    vcpu_load: float = Field(
        0.25, gt=0, le=1, description="share of one core's MHz a new VM's vCPU is expected to use"
    )
    reservation_timeout: float = Field(
        600, gt=0, description="seconds a placement holds CPU and memory if the VM never shows up"
    )
    rebalance: bool = False
    rebalance_threshold: float = Field(80, gt=0, le=100, description="percent CPU or memory that calls for a move")
    rebalance_sustain: float = Field(120, ge=0, description="seconds a host stays over the threshold before acting")
    rebalance_interval: float = Field(60, gt=0, description="seconds between rebalancing rounds")

    @field_validator("policy", mode="before")
    @classmethod
    def _known_policy(cls, value: Any) -> Any:
        if not (isinstance(value, str) and value in SCHEDULING_POLICIES):
            raise ValueError(f"must be {_one_of(SCHEDULING_POLICIES)}")
        return value

    @field_validator("weights")
    @classmethod
    def _known_non_negative_factors(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in value if k not in SCHEDULING_FACTORS]
        if unknown:
            raise ValueError(
                f"unknown factor{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} "
                f"(factors: {', '.join(SCHEDULING_FACTORS)})"
            )
        negative = [k for k, w in value.items() if w < 0]
        if negative:
            raise ValueError(f"factors must be >= 0 (see {', '.join(map(repr, negative))})")
        return value


class RateLimit(Section):
    limit: int = Field(ge=1)
    period: float = Field(gt=0, description="seconds")


class RateLimits(Section):
    """``:rate_limits:``: requests per period, per client (token or IP), by kind of request."""

    global_per_ip: RateLimit = Field(default_factory=lambda: RateLimit(limit=100, period=60))
    authenticated: RateLimit = Field(default_factory=lambda: RateLimit(limit=500, period=60))
    vm_creation: RateLimit = Field(default_factory=lambda: RateLimit(limit=20, period=60))
    vm_deletion: RateLimit = Field(default_factory=lambda: RateLimit(limit=50, period=60))


class RedisSettings(Section):
    known_unused = frozenset(
        {"username", "redis_connection_pool_size", "redis_connection_pool_timeout", "reconnect_attempts",
         "connection_pool_size", "connection_pool_timeout"}
    )
    server: str = "localhost"
    port: int | None = Field(None, ge=1, le=65535, description="default 6379")
    password: SecretStr | None = None
    data_ttl: float = Field(168, ge=0, description="hours of history; see Config.history_ttl_hours")



# -- metrics ---------------------------------------------------------------------------------------
#: A dotted path prefix for statsd and graphite: words of letters, digits, ``_`` and ``-``.
DOTTED_PREFIX = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
#: Paths the exposition may not take: the API's and the dashboard's.
RESERVED_PATHS = ("/api", "/vm", "/token", "/status", "/summary", "/poolstat", "/totalrunning", "/healthcheck",
                  "/config", "/ondemandvm", "/dashboard", "/openapi.json")


class PrometheusConfig(Section):
    """vmpooler's ``:prometheus:`` section. corral always serves the exposition (at
    ``prometheus_endpoint`` and at ``/metrics``); this section names and labels it."""

    prefix: str = Field("vmpooler", min_length=1, max_length=200,
                        description="the value of the vmpooler_instance label on vmpooler's metrics")
    prometheus_prefix: str = Field("vmpooler", min_length=1, max_length=100, pattern=r"^[A-Za-z_:][A-Za-z0-9_:]*$",
                                   description="the name prefix of vmpooler's metrics (corral's own start "
                                               "with corral_)")
    prometheus_endpoint: str = Field("/prometheus", max_length=200, pattern=r"^/[A-Za-z0-9_./-]+$",
                                     description="the path the exposition is served at, besides /metrics")

    @field_validator("prefix")
    @classmethod
    def _printable(cls, value: str) -> str:
        if not value.isprintable():
            raise ValueError("must be printable text (no control characters)")
        return value

    @field_validator("prometheus_endpoint")
    @classmethod
    def _not_the_apis(cls, value: str) -> str:
        path = value.rstrip("/") or "/"
        taken = [p for p in RESERVED_PATHS if path == p or path.startswith(p + "/")]
        if taken or ".." in path.split("/"):
            raise ValueError("this path is the API's or the dashboard's; choose another (default /prometheus)")
        return path


class PushConfig(Section):
    """What ``:statsd:`` and ``:graphite:`` share."""

    corral_keys: ClassVar[frozenset[str]] = frozenset({"interval", "timeout"})  # vmpooler has neither

    server: str = Field(min_length=1, max_length=253, description="the host name or address of the server")
    prefix: str = Field("vmpooler", max_length=200, pattern=DOTTED_PREFIX,
                        description="the first part of every metric path")
    interval: float = Field(10, ge=1, le=3600, description="corral's own: seconds between two pushes of every "
                                                           "gauge (graphite: of everything)")
    timeout: float = Field(2, gt=0, le=60, description="corral's own: seconds a name lookup, a connection or "
                                                       "a push may take")


    @field_validator("server")
    @classmethod
    def _a_host(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9_.:-]+", value):
            raise ValueError("must be a host name or an address (not a URL; the port is a key of its own)")
        return value


class StatsdConfig(PushConfig):
    """vmpooler's ``:statsd:`` section: counts and times sent over UDP as they happen, gauges
    every ``interval``."""

    port: int = Field(8125, ge=1, le=65535, description="the UDP port of the statsd server")


class GraphiteConfig(PushConfig):
    """vmpooler's ``:graphite:`` section: every metric pushed over TCP every ``interval``, in
    graphite's plaintext protocol."""

    port: int = Field(2003, ge=1, le=65535, description="the TCP port of graphite's plaintext listener")
