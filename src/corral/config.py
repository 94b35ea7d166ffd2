"""One typed model of the configuration: vmpooler's ``vmpooler.yaml`` plus corral's own keys.

vmpooler files are read as they are: Ruby-symbol keys (``:config:``, ``:pools:``) and plain
keys alike, vmpooler's units (``timeout`` and ``ready_ttl`` in minutes, ``vm_lifetime`` in
hours) and vmpooler's defaults. corral's own keys live beside them: ``:store:`` for the state
store, ``:monitoring:`` for the live inventory, ``:scheduling:`` for placement, ``:runner:``
for the queue that creates and restarts VMs, ``provider_class: sim`` for the simulator, and a
few settings under ``:config:``.

:func:`load_config` returns the model and a list of warnings; a bad file raises
:class:`ConfigError` carrying every problem found, each naming the key path, the rule and
the value (secrets are never echoed). Keys the model does not declare are judged by
:mod:`corral.config_keys` (an error in corral's own sections, a warning in vmpooler's).
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from corral.config_dns import DnsConfigs, DomainName, check_dns_plugins, dns_warnings, pool_domain
from corral.config_errors import checked_by, format_errors
from corral.config_keys import PROVIDER_RULES, Rule, key_problems, section_index, unknown_key_line
from corral.config_safe import REDACTED, debug_enabled
from corral.config_yaml import describe_yaml_error, read_yaml, spelling_clashes
from corral.domain.limits import MAX_LIFETIME_HOURS
from corral.domain.models import Pool
from corral.domain.names import pool_name_problem

if TYPE_CHECKING:
    from corral.providers.sim import SimSettings
    from corral.providers.vsphere.settings import VsphereSettings

SYMBOL_RE = re.compile(r"^:[A-Za-z_][A-Za-z0-9_]*$")
KNOWN_PROVIDER_CLASSES = ("sim", "dummy", "vsphere", "libvirt")


class ConfigError(Exception):
    """The configuration is invalid; ``problems`` lists every problem found."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Section(BaseModel):
    """Base of every section: unknown keys are kept; :mod:`corral.config_keys` judges them."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)
    # vmpooler keys corral accepts but does not use: kept quiet instead of warned about.
    known_unused: ClassVar[frozenset[str]] = frozenset()


class GlobalSettings(_Section):
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
    circuit_breaker_failure_threshold: int = Field(5, ge=1, description="VMs failed in a row that open a host's breaker")
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


class StoreSettings(_Section):
    """corral's ``:store:`` section."""

    type: Literal["sqlite"] = "sqlite"
    path: str = "var/corral.db"


class MonitoringSettings(_Section):
    """corral's ``:monitoring:`` section: the live inventory, its events and the safety nets."""

    host_down_grace: float = Field(60, ge=0, description="seconds a host must stay unresponsive before it is down")
    reconcile_interval: float = Field(300, gt=0, description="seconds between full drift repairs")
    over_utilized_percent: float = Field(80, gt=0, le=100, description="CPU or memory use that raises an event")
    feed_timeout: float = Field(30, gt=0, le=600, description="seconds one change-feed long poll may wait")
    subscriber_queue: int = Field(10_000, ge=10, description="events one subscriber may hold before it resyncs")
    event_history: int = Field(1_000, ge=0, description="events kept for event-stream clients that reconnect")
    event_stream_keepalive: float = Field(15, gt=0, description="seconds between keep-alive comments on /events")


class RunnerConfig(_Section):
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


SCHEDULING_FACTORS = ("cpu", "memory", "count", "pack")


class SchedulingSettings(_Section):
    """corral's ``:scheduling:`` section: how new VMs are placed on hosts, and rebalancing."""

    policy: Literal["even", "pack", "count"] = Field(
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


class ProviderSettings(_Section):
    """One entry of ``:providers:``; the class-specific keys are checked by the provider."""

    provider_class: str | None = None


#: A pool name or alias, as the API accepts it (see :mod:`corral.domain.names`).
PoolName = Annotated[str, checked_by(pool_name_problem)]


class PoolSettings(_Section):
    """One entry of ``:pools:``."""

    known_unused = frozenset(
        {
            "timeout_notification", "check_loop_delay_min", "check_loop_delay_max",
            "check_loop_delay_decay", "check_hostname_for_mismatch",
        }
    )

    name: PoolName
    template: str = Field(min_length=1)
    size: int = Field(ge=0)
    alias: list[PoolName] = Field(default_factory=list)
    provider: str | None = None
    timeout: float | None = Field(None, gt=0)
    ready_ttl: float | None = Field(None, gt=0)
    vm_lifetime: float | None = Field(None, gt=0, le=MAX_LIFETIME_HOURS)
    folder: str | None = None
    clone_target: str | None = None
    domain: DomainName | None = None
    dns_plugin: str | None = Field(None, description="the :dns_configs: entry whose domain the pool's VMs get")
    anti_affinity: bool | int | None = Field(
        None, description="true: at most one VM of the pool per host; N: at most N; false: no limit"
    )
    # read by the vSphere provider
    datastore: str | None = Field(None, description="vSphere: the datastore clones are placed on")
    datacenter: str | None = Field(None, description="vSphere: accepted; the provider's datacenter is used")
    create_linked_clone: bool | None = Field(None, description="vSphere: linked clones of the template's snapshot")
    snapshot_mainMem_ioBlockPages: str | int | None = None  # vSphere extraConfig mainMem.ioBlockPages
    snapshot_mainMem_iowait: str | int | None = None  # vSphere extraConfig mainMem.iowait
    ha: bool = Field(False, description="restart checked-out VMs on another host when theirs goes down")
    priority: int = Field(0, description="within a class of work, pools with a higher priority go first")

    @field_validator("anti_affinity", mode="before")
    @classmethod
    def _true_false_or_a_count(cls, value: Any) -> Any:
        if value is None or isinstance(value, bool) or (isinstance(value, int) and value >= 1):
            return value
        raise ValueError("must be true, false or a whole number >= 1 (a limit per host)")

    @field_validator("alias", mode="before")
    @classmethod
    def _alias_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [value]
        return [] if value is None else value


class LdapEncryption(_Section):
    method: Literal["simple_tls", "start_tls", "plain"] = "start_tls"
    tls_options: dict[str, Any] = Field(default_factory=dict)


class LdapServiceAccount(_Section):
    user_dn: str = Field(min_length=1)
    password: SecretStr


class LdapSettings(_Section):
    """``:auth: :ldap:``, as vmpooler reads it."""

    host: str = Field(min_length=1)
    port: int = Field(389, ge=1, le=65535)
    base: list[str] = Field(min_length=1)
    user_object: list[str] = Field(min_length=1)
    encryption: LdapEncryption = Field(default_factory=LdapEncryption)
    service_account_hash: LdapServiceAccount | None = None
    timeout: float = Field(10.0, gt=0, description="corral: seconds one LDAP operation may take")

    @field_validator("base", "user_object", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return value.split() if isinstance(value, str) else value


class AuthSettings(_Section):
    """``:auth:``: who may create tokens."""

    provider: Literal["ldap", "dummy", "static"]
    ldap: LdapSettings | None = None
    users: dict[str, SecretStr] = Field(default_factory=dict, description="static: user -> password hash")
    # corral: the login guard in front of every provider
    login_workers: int = Field(1, ge=1, le=64, description="password checks that run at once")
    login_queue: int = Field(8, ge=0, description="logins that may wait for a check; more are refused (503)")
    login_failures: int = Field(5, ge=0, description="failed logins of one user before backoff (429); 0: off")
    login_address_failures: int = Field(
        20, ge=0, description="failed logins from one client address before backoff (429); 0: off"
    )
    login_window: float = Field(900, gt=0, description="seconds without a failure after which failures are forgotten")
    login_backoff: float = Field(2, gt=0, description="seconds of the first backoff; doubled per further failure")
    login_backoff_max: float = Field(300, gt=0, description="seconds the backoff grows to at most")

    @field_validator("login_backoff_max")
    @classmethod
    def _backoff_max_covers_backoff(cls, value: float, info: Any) -> float:  # info: pydantic ValidationInfo
        first = info.data.get("login_backoff")
        if first is not None and value < first:
            raise ValueError(f"login_backoff_max ({value:g}) must be at least login_backoff ({first:g})")
        return value


class RateLimit(_Section):
    limit: int = Field(ge=1)
    period: float = Field(gt=0, description="seconds")


class RateLimits(_Section):
    """``:rate_limits:``: requests per period, per client (token or IP), by kind of request."""

    global_per_ip: RateLimit = Field(default_factory=lambda: RateLimit(limit=100, period=60))
    authenticated: RateLimit = Field(default_factory=lambda: RateLimit(limit=500, period=60))
    vm_creation: RateLimit = Field(default_factory=lambda: RateLimit(limit=20, period=60))
    vm_deletion: RateLimit = Field(default_factory=lambda: RateLimit(limit=50, period=60))


class RedisSettings(_Section):
    known_unused = frozenset(
        {"username", "redis_connection_pool_size", "redis_connection_pool_timeout", "reconnect_attempts",
         "connection_pool_size", "connection_pool_timeout"}
    )
    server: str = "localhost"
    port: int | None = None
    password: SecretStr | None = None
    data_ttl: float = Field(168, ge=0, description="hours of history; see Config.history_ttl_hours")


class Config(_Section):
    """The whole configuration file."""

    known_unused = frozenset({"statsd", "graphite", "graphs", "prometheus", "tracing", "vsphere"})

    config: GlobalSettings = Field(default_factory=GlobalSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    pools: list[PoolSettings] = Field(default_factory=list)
    store: StoreSettings = Field(default_factory=StoreSettings)
    redis: RedisSettings | None = None
    auth: AuthSettings | None = None
    tagfilter: dict[str, str] = Field(default_factory=dict)
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    dns_configs: DnsConfigs = Field(default_factory=dict)

    @field_validator("tagfilter")
    @classmethod
    def _patterns_compile(cls, value: dict[str, str]) -> dict[str, str]:
        for tag, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"{tag}: not a valid regular expression ({exc})") from None
        return value

    # -- derived views -------------------------------------------------------------------
    @property
    def history_ttl_hours(self) -> float:
        """Hours destroyed VMs are kept as history: ``:config: data_ttl`` when given, else
        vmpooler's ``:redis: data_ttl``, else 168."""
        if "data_ttl" not in self.config.model_fields_set and self.redis is not None \
                and "data_ttl" in self.redis.model_fields_set:
            return self.redis.data_ttl
        return self.config.data_ttl

    def provider_class(self, name: str) -> str:
        return raw_provider_class(name, {"provider_class": self.providers[name].provider_class})

    def sim_settings(self, name: str) -> SimSettings:
        """The simulator settings of provider ``name`` (its keys beside ``provider_class``)."""
        from corral.providers.sim import SimSettings

        return SimSettings.model_validate(self.providers[name].model_extra or {})

    def vsphere_settings(self, name: str) -> VsphereSettings:
        """The settings of vSphere provider ``name``."""
        from corral.providers.vsphere.settings import VsphereSettings

        return VsphereSettings.model_validate({"provider_class": self.providers[name].provider_class,
                                               **(self.providers[name].model_extra or {})})

    def pool_provider(self, pool: PoolSettings) -> str:
        return pool.provider or default_provider(self.providers)

    @property
    def dns_domains(self) -> dict[str, str | None]:
        """The domain of each ``:dns_configs:`` entry, by name."""
        return {name: entry.domain for name, entry in self.dns_configs.items()}

    @property
    def default_domain(self) -> str | None:
        """The domain of a pool that sets none and names no ``dns_plugin``."""
        return pool_domain(None, None, self.dns_domains, self.config.domain)

    def domain_pools(self) -> list[Pool]:
        """The pools as the lifecycle code sees them, in seconds."""
        g, dns = self.config, self.dns_domains
        pools = []
        for p in self.pools:
            ready_ttl = p.ready_ttl if p.ready_ttl is not None else g.ready_ttl
            pools.append(
                Pool(
                    name=p.name,
                    template=p.template,
                    size=p.size,
                    provider=self.pool_provider(p),
                    alias=tuple(p.alias),
                    timeout_s=(p.timeout or g.timeout) * 60.0,
                    ready_ttl_s=ready_ttl * 60.0 if ready_ttl is not None else None,
                    lifetime_s=(p.vm_lifetime or g.vm_lifetime) * 3600.0,
                    folder=p.folder,
                    clone_target=p.clone_target or g.clone_target,
                    domain=pool_domain(p.domain, p.dns_plugin, dns, g.domain),
                    max_per_host=max_per_host(p.anti_affinity),
                    ha=p.ha,
                    priority=p.priority,
                )
            )
        return pools


def max_per_host(anti_affinity: bool | int | None) -> int | None:
    """A pool's ``anti_affinity`` as a count: at most this many of its VMs per host; None: any."""
    if anti_affinity is None or anti_affinity is False:
        return None
    return 1 if anti_affinity is True else int(anti_affinity)


# -- loading -------------------------------------------------------------------------------


def normalise(value: Any) -> Any:
    """Turn Ruby-symbol keys and values (``:config``, ``:simple_tls``) into plain strings."""
    if isinstance(value, dict):
        return {_unsymbol(str(k)): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, str) and SYMBOL_RE.match(value):
        return value[1:]
    return value


def _unsymbol(key: str) -> str:
    return key[1:] if key.startswith(":") else key


def load_config(path: str | os.PathLike[str]) -> tuple[Config, list[str]]:
    """Read and check a configuration file; returns the model and its warnings."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read: {exc.strerror or exc}"]) from None
    except UnicodeDecodeError as exc:
        raise ConfigError([f"{p}: not UTF-8 text (byte {exc.start + 1})"]) from None
    try:
        raw = read_yaml(text)
    except yaml.YAMLError as exc:
        raise ConfigError([f"{p}: {describe_yaml_error(exc)}"]) from None
    except RecursionError:
        raise ConfigError([f"{p}: refused: nested too deeply"]) from None
    return parse_config(raw)


def parse_config(raw: Any) -> tuple[Config, list[str]]:
    """Check an already-parsed document (a dict); see :func:`load_config`."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError([f"(top level): must be a mapping of sections, got {type(raw).__name__}"])
    clashes = spelling_clashes(raw)
    if clashes:
        raise ConfigError(clashes)
    data = normalise(raw)
    _adopt_legacy_vsphere(data)
    problems: list[str] = []
    config: Config | None = None
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        problems += format_errors(exc, Config)
    # The cross-checks read the raw document, so they are reported even when a key is bad.
    providers = data["providers"] if isinstance(data.get("providers"), dict) else {}
    pools = data["pools"] if isinstance(data.get("pools"), list) else []
    problems += _check_references(providers, pools) + _check_provider_settings(providers)
    problems += check_dns_plugins(data.get("dns_configs"), pools)
    key_errors, key_warnings = key_problems(data, Config, _provider_key_models(providers))
    problems += key_errors
    if config is not None and config.auth is not None:
        problems += _check_auth(config.auth)
    if problems or config is None:
        raise ConfigError(problems)
    return config, key_warnings + collect_warnings(config)


def _check_auth(auth: AuthSettings) -> list[str]:
    if auth.provider == "dummy" and not debug_enabled(os.environ.get("VMPOOLER_DEBUG")):
        return ["auth.provider: 'dummy' accepts any password that differs from the user name; "
                "it is refused unless the environment variable VMPOOLER_DEBUG is true (1, true, yes or on)"]
    if auth.provider == "ldap" and auth.ldap is None:
        return ["auth.ldap: required key is missing (the ldap provider needs host, base and user_object)"]
    if auth.provider == "static" and not auth.users:
        return ["auth.users: the static provider needs at least one user (user: password hash)"]
    from corral.auth.passwords import check_password_hash

    problems = []
    for user, encoded in auth.users.items():
        try:
            check_password_hash(encoded.get_secret_value())
        except ValueError:
            problems.append(f"auth.users.{user}: not a password hash made by 'corral auth hash-password', "
                            f"got {REDACTED}")
    return problems


def _adopt_legacy_vsphere(data: dict[str, Any]) -> None:
    """vmpooler copies a top-level ``:vsphere:`` section into ``:providers:`` if absent."""
    if data.get("providers") is None:
        data["providers"] = {}
    legacy, providers = data.get("vsphere"), data["providers"]
    if isinstance(legacy, dict) and isinstance(providers, dict) and "vsphere" not in providers:
        providers["vsphere"] = dict(legacy)


def raw_provider_class(name: str, entry: Any) -> str:
    cls = entry.get("provider_class") if isinstance(entry, dict) else None
    cls = str(cls or name)
    return "sim" if cls == "dummy" else cls


def default_provider(providers: dict[str, Any]) -> str:
    """A pool without ``provider``: the only provider there is, else vmpooler's ``vsphere``."""
    return next(iter(providers)) if len(providers) == 1 else "vsphere"


def _check_references(providers: dict[str, Any], pools: list[Any]) -> list[str]:
    problems: list[str] = []
    owner: dict[str, str] = {}
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str):
            continue
        aliases = pool.get("alias") or []
        aliases = [aliases] if isinstance(aliases, str) else aliases if isinstance(aliases, list) else []
        if pool["name"] in owner:
            problems.append(f"pools[{i}].name: pool {pool['name']!r} is defined twice")
        owner.setdefault(pool["name"], pool["name"])
        provider = pool.get("provider") or default_provider(providers)
        if isinstance(provider, str) and provider not in providers:  # another type is the model's error
            known = ", ".join(sorted(providers)) or "none configured"
            problems.append(f"pools[{i}].provider: no provider named {provider!r} (providers: {known})")
    for i, pool in enumerate(pools):
        if not isinstance(pool, dict) or not isinstance(pool.get("name"), str):
            continue
        aliases = pool.get("alias") or []
        aliases = [aliases] if isinstance(aliases, str) else aliases if isinstance(aliases, list) else []
        for label in aliases:
            if isinstance(label, str) and label in owner and label != pool["name"]:
                problems.append(f"pools[{i}].alias: {label!r} is already used by pool {owner[label]!r}")
    for name, entry in providers.items():
        if isinstance(entry, dict) and not isinstance(entry.get("provider_class") or "", str):
            continue  # not a string: the model's error, which does not echo it
        cls = raw_provider_class(name, entry)
        if cls not in ("sim", "vsphere", "libvirt"):
            problems.append(
                f"providers.{name}.provider_class: must be one of "
                f"{', '.join(KNOWN_PROVIDER_CLASSES)}, got {cls!r}"
            )
    return problems


def _check_provider_settings(providers: dict[str, Any]) -> list[str]:
    """Check each simulator's and vSphere endpoint's own keys with its settings model."""
    problems: list[str] = []
    for name, entry in providers.items():
        cls = raw_provider_class(name, entry)
        if cls not in ("sim", "vsphere") or not isinstance(entry, dict):
            continue  # libvirt settings are checked by its provider
        try:
            if cls == "sim":
                from corral.providers.sim import SimSettings

                model: type[BaseModel] = SimSettings
                SimSettings.model_validate({k: v for k, v in entry.items() if k != "provider_class"})
            else:
                from corral.providers.vsphere.settings import VsphereSettings

                model = VsphereSettings
                VsphereSettings.model_validate(entry)
        except ValidationError as exc:
            unknown = unknown_key_line(model, PROVIDER_RULES[cls], section_index(Config)) if cls == "vsphere" else None
            problems += format_errors(exc, model, prefix=("providers", name), unknown=unknown)
    return problems


def _provider_key_models(providers: dict[str, Any]) -> dict[str, tuple[type[BaseModel], Rule]]:
    """The settings model and key rule (see :mod:`corral.config_keys`) of each simulator, dummy
    and vSphere entry; entries of other classes are checked by their providers."""
    models: dict[str, tuple[type[BaseModel], Rule]] = {}
    for name, entry in providers.items():
        cls = entry.get("provider_class") if isinstance(entry, dict) else None
        cls = cls if isinstance(cls, str) and cls else name
        if cls in ("sim", "dummy"):
            from corral.providers.sim import SimSettings

            models[name] = (SimSettings, PROVIDER_RULES[cls])
        elif cls == "vsphere":
            from corral.providers.vsphere.settings import VsphereSettings

            models[name] = (VsphereSettings, PROVIDER_RULES[cls])
    return models


def collect_warnings(config: Config) -> list[str]:
    """Warnings about a valid configuration (those about unknown keys come from
    :func:`corral.config_keys.key_problems`)."""
    domains = [pool.domain for pool in config.domain_pools()]
    return _ttl_warnings(config) + dns_warnings([p.dns_plugin for p in config.pools], domains, list(config.dns_configs))


def _ttl_warnings(config: Config) -> list[str]:
    redis = config.redis
    if redis is None or not {"data_ttl"} <= config.config.model_fields_set & redis.model_fields_set:
        return []
    if config.config.data_ttl == redis.data_ttl:
        return []
    return [f"config.data_ttl ({config.config.data_ttl:g} hours) and redis.data_ttl ({redis.data_ttl:g} hours) "
            "differ; config.data_ttl is used"]
