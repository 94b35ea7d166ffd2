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

__all__ = ["SCHEDULING_FACTORS", "SCHEDULING_POLICIES", "ApiConfig", "GlobalSettings", "GraphiteConfig", "HaConfig",
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

    corral_keys = frozenset({"check_interval", "ready_check_port", "ready_check_timeout", "ready_check_address",
                             "data_ttl"})

    site_name: str = Field("vmpooler", description="the name of the deployment")
    task_limit: int = Field(
        10, ge=1, description="provider calls that create or start VMs in flight at once, across all pools and "
        "providers. A call carries one VM, or, where the provider has a bulk call (the simulator), every VM sent "
        "to one host together")
    timeout: float = Field(15, gt=0, description="minutes a VM may stay pending before it is failed, destroyed "
                           "and replaced")
    ready_ttl: float | None = Field(60, gt=0, description="minutes a VM may stay ready before it is recycled")
    vm_lifetime: float = Field(24, gt=0, le=MAX_LIFETIME_HOURS,
                               description="hours a checked-out VM lives before it is destroyed")
    prefix: str = Field("", description="prefix of every new VM's hostname (include a separator)")
    domain: DomainName | None = Field(
        None, description="vmpooler 2's domain: appended to the hostnames of pools that get none from their own "
        "`domain` or a DNS config (see `:dns_configs:`); vmpooler 3 refuses this key, corral still reads it")
    # placement, as vmpooler's vSphere provider reads these keys
    migration_limit: int = Field(
        0, ge=0, description="migrations at checkout in flight at once: when above 0, a VM being checked out is "
        "moved to a less loaded compatible host if its own is busier; `0` turns migration at checkout off"
    )
    utilization_limit: float = Field(
        90, gt=0, le=100, description="percent of CPU or memory a host may reach with a new VM; a host that would "
        "go over is not chosen (see `:scheduling:`)"
    )
    clone_target: str | None = Field(None, description="the cluster every pool clones into unless it names its "
                                     "own `clone_target`")
    max_tries: int = Field(3, ge=1, description="attempts to create one VM (or HA-restart one), each on a host it "
                           "has not tried; an error the provider calls permanent (unknown template, bad spec) is "
                           "not retried")
    # vmpooler's circuit breaker keys; corral keeps one breaker per host
    circuit_breaker_enabled: bool = Field(
        True, description="per-host circuit breakers: a host on which `circuit_breaker_failure_threshold` VMs in a "
        "row failed gets no new VMs for `circuit_breaker_timeout` seconds (vmpooler keeps one breaker per "
        "provider; corral keeps one per host)")
    circuit_breaker_failure_threshold: int = Field(
        5, ge=1, description="VMs failed in a row (a failed whole call counts once) that open a host's breaker"
    )
    circuit_breaker_timeout: float = Field(30, gt=0, description="seconds an open breaker keeps new VMs off its "
                                           "host; then the host is tried again (half-open)")
    circuit_breaker_half_open_attempts: int = Field(3, ge=1, description="successes on a half-open host that close "
                                                    "its breaker; one failure opens it again")
    # vmpooler's vSphere keys, defaults for every vSphere provider
    create_folders: bool = Field(False, description="vSphere: create a pool's `folder` (every missing level) when "
                                 "it does not exist; otherwise a missing folder fails the clone with an error "
                                 "naming it")
    create_linked_clones: bool = Field(
        True, description="vSphere: clone as linked clones of the template's current snapshot (a template "
        "without a snapshot gets full clones, with one warning, unless `create_template_delta_disks` is on); "
        "libvirt: a clone's disks are qcow2 overlays on the template's volumes instead of full copies; a "
        "pool's `create_linked_clone` or the provider's `create_linked_clones` overrides it")
    create_template_delta_disks: bool = Field(
        False, description="vSphere: when linked clones are asked for and the template has no snapshot, snapshot "
        "the template once (named `corral linked clones`) and make every clone of it a linked clone of that "
        "snapshot; clones that start meanwhile wait for it. A snapshot that cannot be made is logged once with "
        "the reason, and that template's clones are full clones until corral restarts. The provider's "
        "`create_template_delta_disks` overrides it"
    )
    purge_unconfigured_resources: bool = Field(
        False, description="vSphere: at start, destroy every folder (with its VMs) beside a pool folder that no "
        "pool uses and that is not in the provider's `resources_allowlist`")
    purge_unconfigured_folders: bool = Field(False, description="vmpooler's older name of "
                                             "`purge_unconfigured_resources`")
    # corral's own keys
    check_interval: float = Field(
        5.0, gt=0, description="seconds between safety-net sweeps (timers, destroy retries, readiness of VMs the "
        "change feed said nothing about); a failed destroy is tried again after one interval, then after twice "
        "the last wait up to an hour, and not at all after a permanent error until a restart or `DELETE /vm/<h>`")
    ready_check_port: int = Field(22, ge=1, le=65535, description="TCP port probed to decide a VM on a real "
                                  "provider (vSphere, libvirt) is reachable; a provider's own key overrides it")
    ready_check_timeout: float = Field(5.0, gt=0, description="seconds one reachability probe may take; a "
                                       "provider's own key overrides it")
    ready_check_address: Literal["name", "guest_ip"] = Field(
        "name", description="what readiness connects to on a real provider: `name`, the VM's name with its pool's "
        "domain appended (vmpooler's rule), or `guest_ip`, the address the provider reports (vSphere: VMware "
        "Tools; libvirt: the DHCP lease, else the guest agent); a provider's own key overrides it"
    )
    data_ttl: float = Field(
        168, ge=0, description="hours a destroyed VM's record, task timings, tag records and ended on-demand "
        "requests are kept as history. When it is not given, vmpooler's `:redis: data_ttl` is used; when both "
        "are given and differ, this one is used and a warning names both")
    # the API
    vm_lifetime_auth: float | None = Field(None, gt=0, le=MAX_LIFETIME_HOURS,
                                           description="hours a VM lives when it is checked out (or built on "
                                           "demand) with a valid token")
    max_lifetime_upper_limit: float | None = Field(
        None, gt=0, le=MAX_LIFETIME_HOURS, description="hours: `PUT /vm/<h>` may not set a `lifetime` above this "
        "(400); without it the hard cap of 87,600 hours (ten years) applies")
    allowed_tags: list[str] | None = Field(None, description="the only tag names `PUT /vm/<h>` accepts; none: any")
    experimental_features: bool = Field(
        False, description="enables `POST/DELETE /config/poolsize`, `/config/pooltemplate`, "
        "`POST /config/clonetarget` and `POST /poolreset` (405 otherwise)")
    backend_weight: dict[str, float] = Field(
        default_factory=dict, description="clone target → weight (> 0): when every pool behind a requested alias "
        "has a weighted `clone_target`, VMs are picked from them in proportion to the weights (otherwise at "
        "random)")
    max_ondemand_instances_per_request: int = Field(
        10, ge=1, description="VMs of one pool a single on-demand request may ask for (403 above)")
    ondemand_request_ttl: float = Field(5, gt=0, description="minutes an on-demand request may take; after that "
                                        "it has failed and its VMs are destroyed")
    ondemand_clone_limit: int = Field(10, ge=1, description="on-demand VMs queued or being created at once; more "
                                      "wait for their turn")
    rate_limiting_enabled: bool = Field(False, description="turns on per-client request limits (see "
                                        "`:rate_limits:`)")
    request_logger: bool = Field(False, description="log one line per API request (method, path, status, "
                                 "duration; never headers or bodies)")

    @field_validator("backend_weight")
    @classmethod
    def _weights_positive(cls, value: dict[str, float]) -> dict[str, float]:
        bad = [k for k, w in value.items() if w <= 0]
        if bad:
            raise ValueError(f"weights must be > 0 (see {', '.join(map(repr, bad))})")
        return value


class StoreSettings(Section):
    """corral's ``:store:`` section: the embedded sqlite file, or Redis (``:redis:`` says where)."""

    corral_only = True

    type: Literal["sqlite", "redis"] = Field(
        "sqlite", description="the store kind: `sqlite` (the embedded default: one file, for one corral process or "
        "several on one machine) or `redis` (one Redis server shared by several corral processes; `:redis:` says "
        "where)")
    path: str = Field("var/corral.db", description="the sqlite file, relative to the working directory; its folder "
                      "is created (type `sqlite`)")
    lock_wait: float = Field(2.0, gt=0, le=60, description="seconds a write waits for the sqlite file's lock while "
                             "another process holds it (type `sqlite`); the store is called on the API's event loop, "
                             "so this bounds how long a request can be held up. A lock held longer makes the store "
                             "unavailable: the API answers 503 naming the store, the pool manager pauses its writes, "
                             "and both resume by themselves once the lock is released")
    site: str = Field("default", min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$",
                      description="the name of this corral deployment in Redis (type `redis`): every key it writes "
                      "starts with `corral:<site>:`, so several deployments (or a vmpooler) can share one Redis")


class HaConfig(Section):
    """corral's ``:ha:`` section: how the managers of a site on one Redis share its pools (see
    docs/operations.md). Only read with ``:store: type: redis``."""

    corral_only = True

    lease_ttl: float = Field(5, gt=0, le=300, description="seconds a pool's lease lives in Redis without renewal; "
                             "another manager takes the pool within about twice this after its manager dies")
    renew_every: float = Field(1, gt=0, description="seconds between two renewals (and decisions) of a manager; "
                               "below `lease_ttl × safety`")
    safety: float = Field(0.6, gt=0, lt=1, description="the share of `lease_ttl` a manager keeps acting on a pool "
                          "after the moment it asked for its last renewal: a manager that cannot renew stops "
                          "acting before the lease can expire")
    manager_id: str | None = Field(None, min_length=1, max_length=200,
                                   description="this process's name among the site's managers (none: "
                                   "`host:pid`); must differ between processes")
    score_threshold: int = Field(50, ge=0, le=100, description="a manager scoring below this takes pools only when "
                                 "no manager scores this much. The score falls to 0 when the manager cannot reach "
                                 "Redis; provider health and error rates are not fed into it yet, so today every "
                                 "manager that reaches Redis scores 100")

    @model_validator(mode="after")
    def _renewal_fits(self) -> HaConfig:
        if self.renew_every >= self.lease_ttl * self.safety:
            raise ValueError(f"renew_every ({self.renew_every} s) must be below lease_ttl × safety "
                             f"({self.lease_ttl * self.safety:.2f} s), or a healthy manager would stop "
                             "acting between two renewals")
        return self


class MonitoringSettings(Section):
    """corral's ``:monitoring:`` section: the live inventory, its events and the safety nets."""

    corral_only = True

    host_down_grace: float = Field(60, ge=0, description="seconds a host must stay unresponsive (or unreported) "
                                   "before it is declared down; its ready and pending VMs are then replaced. A host "
                                   "back within the grace changes nothing")
    reconcile_interval: float = Field(300, gt=0, description="seconds between full drift repairs (the inventory "
                                      "against a fresh snapshot, the store against the inventory); what they repair "
                                      "is counted in `/status` under `monitoring.reconcile` and is expected to stay 0")
    over_utilized_percent: float = Field(80, gt=0, le=100, description="CPU or memory use (percent) at which a host "
                                         "raises `host.overutilized`; it raises it again only after dropping 5 "
                                         "points below")
    feed_timeout: float = Field(30, gt=0, le=600, description="seconds one long poll of a change feed may wait for "
                                "a change")
    subscriber_queue: int = Field(10_000, ge=10, description="events one subscriber (the pool manager, each "
                                  "event-stream client) may have waiting; beyond that its queue is emptied and it "
                                  "resyncs")
    event_history: int = Field(1_000, ge=0, description="recent events kept for event-stream clients that reconnect "
                               "with `Last-Event-ID`")
    event_stream_keepalive: float = Field(15, gt=0, description="seconds between keep-alive comments on an idle "
                                          "event stream")


class RunnerConfig(Section):
    """corral's ``:runner:`` section: how VM creates and HA restarts are queued and sent."""

    corral_only = True

    aggregation_window: float = Field(
        0.1, ge=0, le=10, description="seconds a VM waits for others to be placed and sent with it"
    )
    batch_size: int = Field(1000, ge=1, description="VMs taken at once; when this many wait, they go without "
                            "waiting out the window")
    host_task_limit: int = Field(4, ge=1, description="provider calls in flight at once on one host")
    queue_limit: int = Field(10_000, ge=1, description="VMs waiting at most; an on-demand request that does not fit "
                             "is refused with 503 and the reason. HA restarts and reruns are always taken")
    refill_share: float = Field(
        0.5, gt=0, le=1, description="share of `queue_limit` pool refills may fill; the rest is kept for on-demand "
        "requests"
    )
    retry_delay: float = Field(1.0, ge=0, description="seconds before the first rerun of a failed VM; doubled for "
                               "each later one")
    retry_delay_max: float = Field(60, ge=0, description="longest wait between two tries, in seconds")
    refill_order: Literal["need", "arrival"] = Field(
        "need", description="order of pool refills waiting to be created: `need` serves the pool nearest to running "
        "dry first (fewest ready and pending VMs against the checkouts expected while one VM is made), `arrival` "
        "first come, first served. Pool `priority` orders pools before either"
    )


#: The weights ``:scheduling: weights`` may set, and the policies ``policy`` may name: the scheduler's.
SCHEDULING_FACTORS: tuple[str, ...] = tuple(WEIGHTS)
SCHEDULING_POLICIES: tuple[str, ...] = tuple(POLICIES)


def _one_of(names: tuple[str, ...]) -> str:
    return f"{', '.join(map(repr, names[:-1]))} or {names[-1]!r}" if len(names) > 1 else repr(names[0])


class SchedulingSettings(Section):
    """corral's ``:scheduling:`` section: how new VMs are placed on hosts, and rebalancing."""

    corral_only = True

    policy: str = Field(
        "even",
        description="`even`: spread CPU use (factor 2) and memory use (factor 1) over the hosts; `pack`: power "
        "saving, fill the busiest host that still fits; `count`: even the number of VMs per host (vmpooler "
        "before least-used placement)",
    )
    weights: dict[str, float] = Field(
        default_factory=dict, description="explicit factors (≥ 0) that replace the policy's, by name: `cpu`, "
        "`memory`, `count`, `pack`; e.g. `{cpu: 1, memory: 1}`"
    )
    memory_overcommit: float = Field(1.0, gt=0, description="memory configured for a host's VMs (powered on or off) "
                                     "may reach its memory times this")
    vcpu_load: float = Field(
        0.25, gt=0, le=1, description="share of one core's MHz each vCPU of a new VM is expected to use; a "
        "placement counts that much CPU on its host"
    )
    reservation_timeout: float = Field(
        600, gt=0, description="seconds a placement keeps holding its CPU and memory on the host if the VM never "
        "shows up in the inventory (or its CPU, if the host's figures never change after it showed up)"
    )
    rebalance: bool = Field(False, description="move VMs off hosts that stay busy")
    rebalance_threshold: float = Field(80, gt=0, le=100, description="percent of CPU or memory above which a host "
                                       "is too busy")
    rebalance_sustain: float = Field(120, ge=0, description="seconds a host must stay over the threshold before VMs "
                                     "are moved off it")
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
    """One kind of request's limit: ``limit`` requests per ``period`` seconds per client."""

    limit: int = Field(ge=1, description="requests a client may make per period")
    period: float = Field(gt=0, description="seconds of one window, counted from a client's first request")


class RateLimits(Section):
    """``:rate_limits:``: requests per period, per client (token or IP), by kind of request."""

    global_per_ip: RateLimit = Field(default_factory=lambda: RateLimit(limit=100, period=60),
                                     description="requests without a token, per client address")
    authenticated: RateLimit = Field(default_factory=lambda: RateLimit(limit=500, period=60),
                                     description="requests that carry a token, other than the two kinds below")
    vm_creation: RateLimit = Field(default_factory=lambda: RateLimit(limit=20, period=60),
                                   description="POST requests on `/vm` paths (checkouts, disks, snapshots)")
    vm_deletion: RateLimit = Field(default_factory=lambda: RateLimit(limit=50, period=60),
                                   description="DELETE requests on `/vm` paths")


class ApiConfig(Section):
    """corral's ``:api:`` section: what one process's HTTP server lets its clients hold."""

    corral_only = True

    max_connections: int = Field(
        4096, ge=2, le=1_000_000, description="connections (and requests in progress) one process holds at once; "
        "with this many open, a request is answered 503 at once, so a flood of clients is refused rather than left "
        "waiting. Event streams count, so keep it above `max_event_streams`. The process raises its own open-files "
        "limit to fit it where the hard limit allows, and logs a warning naming both figures where it does not")
    keepalive_timeout: float = Field(
        5, gt=0, le=3600, description="seconds an idle keep-alive connection stays open waiting for its next "
        "request; behind a load balancer, set it above the balancer's own idle timeout")
    body_timeout: float = Field(
        10, gt=0, le=3600, description="seconds a client may take to send a request's body, from the end of its "
        "headers; a slower one is answered 408 and its connection closed")
    max_event_streams: int = Field(
        2000, ge=1, le=1_000_000, description="event streams (`GET /api/v3/events`) one process serves at once; "
        "one more is answered 503 naming this key")

    @model_validator(mode="after")
    def _streams_fit(self) -> ApiConfig:
        if self.max_event_streams >= self.max_connections:
            raise ValueError(f"max_event_streams ({self.max_event_streams}) must be below max_connections "
                             f"({self.max_connections}), or open event streams would leave no connection for "
                             "checkouts")
        return self


class RedisSettings(Section):
    known_unused = frozenset(
        {"username", "redis_connection_pool_size", "redis_connection_pool_timeout", "reconnect_attempts",
         "connection_pool_size", "connection_pool_timeout"}
    )
    server: str = Field("localhost", description="the Redis host")
    port: int | None = Field(None, ge=1, le=65535, description="its port; none: 6379")
    password: SecretStr | None = Field(
        None, description="the password Redis asks for (`requirepass`); it goes to the Redis client only and is "
        "never logged, shown by `/config`, `/full_config` or `corral config check`, nor put in an error")
    data_ttl: float = Field(168, ge=0, description="hours of history; read even with the sqlite store; see "
                            "`:config: data_ttl`")



# -- metrics ---------------------------------------------------------------------------------------
#: A dotted path prefix for statsd and graphite: words of letters, digits, ``_`` and ``-``.
DOTTED_PREFIX = r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$"
#: Paths the exposition may not take: the API's and the dashboard's.
#: (tests/api/test_metrics.py holds this list to the app's routes)
RESERVED_PATHS = ("/api", "/vm", "/token", "/status", "/summary", "/poolstat", "/totalrunning", "/healthcheck",
                  "/config", "/full_config", "/poolreset", "/ondemandvm", "/events", "/dashboard", "/openapi.json")


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
