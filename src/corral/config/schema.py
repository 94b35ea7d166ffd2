"""One typed model of the configuration: vmpooler's ``vmpooler.yaml`` plus corral's own keys.

vmpooler files are read as they are: Ruby-symbol keys (``:config:``, ``:pools:``) and plain
keys alike, vmpooler's units and defaults. corral's own keys live beside them: ``:store:`` for
the state store, ``:monitoring:`` for the live inventory, ``:scheduling:`` for placement,
``:runner:`` for the queue that creates and restarts VMs, ``provider_class: sim`` for the
simulator, and a few settings under ``:config:``. The sections other than pools and providers
are in :mod:`corral.config.schema_sections`, ``:auth:`` in :mod:`corral.auth.settings`.

:func:`corral.config.load.load_config` reads a file into :class:`Config`.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, Field, field_validator, model_validator

from corral.auth.settings import AuthSettings
from corral.config.dns import DnsConfigs, DomainName
from corral.config.errors import checked_by
from corral.config.providers import default_provider, raw_provider_class
from corral.config.schema_sections import (
    ApiConfig,
    GlobalSettings,
    GraphiteConfig,
    HaConfig,
    MonitoringSettings,
    PrometheusConfig,
    RateLimits,
    RedisSettings,
    RunnerConfig,
    SchedulingSettings,
    Section,
    StatsdConfig,
    StoreSettings,
)
from corral.domain.limits import MAX_LIFETIME_HOURS
from corral.domain.models import Pool
from corral.domain.names import pool_domain, pool_name_problem
from corral.providers.registry import find_class


class ProviderSettings(Section):
    """One entry of ``:providers:``; the class-specific keys are checked by the provider."""

    provider_class: str | None = Field(
        None, description="the entry's kind: `sim` (the simulator; `dummy`, vmpooler's test provider, is read as "
        "`sim`), `vsphere` or `libvirt`; none: the entry's name")


#: A pool name or alias, as the API accepts it (see :mod:`corral.domain.names`).
PoolName = Annotated[str, checked_by(pool_name_problem)]


class PoolSettings(Section):
    """One entry of ``:pools:``."""

    known_unused = frozenset(
        {
            "timeout_notification", "check_loop_delay_min", "check_loop_delay_max",
            "check_loop_delay_decay", "check_hostname_for_mismatch",
        }
    )

    corral_keys = frozenset({"domain", "anti_affinity", "ha", "priority", "min_size", "max_size", "target_wait",
                             "scale_down_after", "demand_window"})
    not_acted_on = frozenset({"datacenter"})

    name: PoolName = Field(description="the pool's name")
    template: str = Field(min_length=1, description="what VMs are cloned from; for vSphere, the template's path "
                          "below the datacenter's VM folder (e.g. `Templates/debian-12`), or its bare name when that "
                          "is unique; for libvirt, a shut-off domain defined on every host, or the absolute path "
                          "of a domain XML file")
    size: int = Field(ge=0, description="ready + pending VMs to keep")
    alias: list[PoolName] = Field(default_factory=list, description="other names the pool can be requested by (a "
                                  "string or a list)")
    provider: str | None = Field(None, description="the `:providers:` entry that manages the pool; none: the only "
                                 "provider, else `vsphere`")
    timeout: float | None = Field(None, gt=0, description="minutes a VM may stay pending, for this pool; none: "
                                  "`:config: timeout`")
    ready_ttl: float | None = Field(None, gt=0, description="minutes a VM may stay ready, for this pool; none: "
                                    "`:config: ready_ttl`")
    vm_lifetime: float | None = Field(None, gt=0, le=MAX_LIFETIME_HOURS, description="hours a checked-out VM lives, "
                                      "for this pool; none: `:config: vm_lifetime`")
    folder: str | None = Field(None, description="provider folder for the pool's VMs (vSphere: a path below the "
                               "datacenter's VM folder, e.g. `Pooled VMs/debian-12`)")
    clone_target: str | None = Field(None, description="cluster or host to clone into; none: `:config: "
                                     "clone_target`")
    domain: DomainName | None = Field(None, description="the domain of this pool's hostnames, ahead of its DNS "
                                      "config's (see `:dns_configs:`)")
    dns_plugin: str | None = Field(None, description="the `:dns_configs:` entry whose `domain` the pool's VMs get "
                                   "(vmpooler 3); none: the only entry there is. A name that is not there is an "
                                   "error naming it")
    anti_affinity: bool | int | None = Field(
        None, description="`true` places at most one of the pool's VMs on a host, a number `N` (≥ 1) at most `N`; "
        "`false` or none: no limit"
    )
    # read by the vSphere provider (and the libvirt one: datastore, create_linked_clone)
    datastore: str | None = Field(None, description="vSphere: the datastore clones are placed on (an unknown name "
                                  "fails the clone, naming it); libvirt: the storage pool of the clones' disks; "
                                  "none: the template's")
    datacenter: str | None = Field(None, description="vSphere: accepted; corral manages the provider's "
                                   "`datacenter`")
    create_linked_clone: bool | None = Field(None, description="linked clones for this pool (vSphere: of the "
                                             "template's snapshot; libvirt: qcow2 overlays on the template's "
                                             "volumes); none: the provider's or `:config:`'s "
                                             "`create_linked_clones`")
    snapshot_mainMem_ioBlockPages: str | int | None = Field(None, description="vSphere: set as the clones' "
                                                            "`mainMem.ioBlockPages` extraConfig")
    snapshot_mainMem_iowait: str | int | None = Field(None, description="vSphere: set as the clones' "
                                                      "`mainMem.iowait` extraConfig")
    ha: bool = Field(False, description="when a host goes down, the pool's checked-out VMs on it are restarted on "
                     "another host at the runner's top priority (their disks must be on shared storage)")
    priority: int = Field(0, description="within a class of the runner's work (see `:runner:`), VMs of pools with a "
                          "higher number go first; equal numbers go first come, first served")

    min_size: int | None = Field(None, ge=0, description="autosizing: the fewest VMs the pool keeps; with "
                                 "`max_size`, turns autosizing on (`size` is then the starting size). See "
                                 "[Autosizing](#autosizing)")
    max_size: int | None = Field(None, ge=1, description="autosizing: the most VMs the pool keeps; turns autosizing on "
                                 "(`min_size` none: 0)")
    target_wait: float | None = Field(None, gt=0, lt=1, description="autosizing: how rarely a checkout may find "
                                      "the pool empty, as a chance above 0 and below 1; none: 0.01")
    scale_down_after: float | None = Field(None, ge=0, description="autosizing: seconds after the last rise of the "
                                           "size before it may fall; none: 900")
    demand_window: float | None = Field(None, gt=0, description="autosizing: seconds over which the rate of "
                                        "checkouts is remembered (it decays over this window); none: 600")

    @model_validator(mode="after")
    def _autosizing_keys(self) -> PoolSettings:
        if self.max_size is None:
            given = [k for k in ("min_size", "target_wait", "scale_down_after", "demand_window")
                     if getattr(self, k) is not None]
            if given:
                raise ValueError(f"{', '.join(given)} without max_size: autosizing needs max_size (the most VMs "
                                 "the pool may keep)")
        elif (self.min_size or 0) > self.max_size:
            raise ValueError(f"min_size ({self.min_size}) is above max_size ({self.max_size})")
        return self

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


class Config(Section):
    """The whole configuration file."""

    known_unused = frozenset({"graphs", "tracing", "vsphere"})

    config: GlobalSettings = Field(default_factory=GlobalSettings)
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    pools: list[PoolSettings] = Field(default_factory=list)
    store: StoreSettings = Field(default_factory=StoreSettings)
    redis: RedisSettings | None = None
    ha: HaConfig = Field(default_factory=HaConfig)
    auth: AuthSettings | None = None
    tagfilter: dict[str, str] = Field(
        default_factory=dict, description="tag name → regular expression: when the tag is set, its value is "
        "replaced by what the pattern's groups capture, if it matches")
    rate_limits: RateLimits = Field(default_factory=RateLimits)
    api: ApiConfig = Field(default_factory=ApiConfig, description="what one process's HTTP server lets its "
                           "clients hold: connections, idle keep-alives, slow bodies, event streams")
    monitoring: MonitoringSettings = Field(default_factory=MonitoringSettings)
    scheduling: SchedulingSettings = Field(default_factory=SchedulingSettings)
    runner: RunnerConfig = Field(default_factory=RunnerConfig)
    dns_configs: DnsConfigs = Field(default_factory=dict)
    prometheus: PrometheusConfig = Field(default_factory=PrometheusConfig,
                                         description="the Prometheus exposition's names and path")
    statsd: StatsdConfig | None = Field(None, description="a statsd server to send metrics to")
    graphite: GraphiteConfig | None = Field(None, description="a graphite server to push metrics to")

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
        """The class of provider ``name`` (see :mod:`corral.providers.registry`)."""
        return raw_provider_class(name, {"provider_class": self.providers[name].provider_class})

    def provider_settings(self, name: str) -> BaseModel:
        """The settings of provider ``name`` (its keys beside ``provider_class``), read by its
        class's model; ValueError when its class has none (a planned class) or they are invalid."""
        cls = find_class(self.provider_class(name))
        if cls is None:
            raise ValueError(f"providers.{name}: the {self.provider_class(name)!r} provider has no settings model")
        entry = self.providers[name]
        return cls.settings_of({"provider_class": entry.provider_class, **(entry.model_extra or {})})

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
                    size=min(max(p.size, p.min_size or 0), p.max_size) if p.max_size is not None else p.size,
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
                    **autosizing(p),
                )
            )
        return pools


def autosizing(p: PoolSettings) -> dict[str, Any]:
    """A pool's autosizing fields for :class:`Pool` (none when it keeps its fixed ``size``, which
    is otherwise its starting size, clamped into ``min_size`` … ``max_size``)."""
    if p.max_size is None:
        return {}
    return {"min_size": p.min_size or 0, "max_size": p.max_size,
            "target_wait": p.target_wait if p.target_wait is not None else 0.01,
            "scale_down_after_s": p.scale_down_after if p.scale_down_after is not None else 900.0,
            "demand_window_s": p.demand_window if p.demand_window is not None else 600.0}


def max_per_host(anti_affinity: bool | int | None) -> int | None:
    """A pool's ``anti_affinity`` as a count: at most this many of its VMs per host; None: any."""
    if anti_affinity is None or anti_affinity is False:
        return None
    return 1 if anti_affinity is True else int(anti_affinity)
