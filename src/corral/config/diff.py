"""What changed between two checked configurations, for a reload without a restart.

:func:`diff_configs` is pure: two :class:`~corral.config.schema.Config` in, a :class:`ConfigDiff`
out. Pools are compared field by field (every key of the pool model, whatever it is, and the
values each pool takes from ``:config:`` and ``:dns_configs:``), so a key added to the model
reloads with no change here. What a running corral cannot take in without a restart is named in
``restart`` (``section`` or ``section.key``), never silently dropped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.config.schema import Config
from corral.config.settings import scheduler_settings
from corral.domain.models import Pool

__all__ = ["LIVE_GLOBAL_KEYS", "LIVE_SECTIONS", "PROVIDER_POOL_KEYS", "ConfigDiff", "diff_configs"]

#: ``:config:`` keys a reload takes in: those the pools take their defaults from, the scheduler's
#: utilisation limit, the checkout's backend weights and what the API reads on every request.
LIVE_GLOBAL_KEYS = frozenset({"timeout", "ready_ttl", "vm_lifetime", "clone_target", "domain", "utilization_limit",
                              "backend_weight", "experimental_features"})
#: Sections a reload takes in as a whole (``:pools:`` and ``:providers:`` are compared entry by
#: entry; ``:scheduling:`` key by key).
LIVE_SECTIONS = frozenset({"config", "pools", "providers", "auth", "scheduling", "dns_configs", "tagfilter"})
#: ``:scheduling:`` keys the placer takes in at once (the rebalancer's need a restart).
LIVE_SCHEDULING_KEYS = frozenset({"policy", "weights", "memory_overcommit", "vcpu_load", "reservation_timeout"})
#: Pool keys a provider that reads its pools (vSphere, libvirt) was built with: a change of one
#: (or a pool of the provider added or removed) reconnects that provider.
PROVIDER_POOL_KEYS = ("folder", "datastore", "create_linked_clone", "snapshot_mainMem_ioBlockPages",
                      "snapshot_mainMem_iowait", "domain", "dns_plugin")


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    """What a reload changes. Pools and providers by name; ``pools_changed`` names each pool's keys
    that changed, ``providers_changed`` each provider's (``pools`` when only the pool keys it was
    built with changed); ``pools_of_providers`` are the providers whose pool keys changed (a
    provider that reads them is rebuilt); ``restart`` the keys a running corral cannot take in."""

    pools_added: tuple[str, ...] = ()
    pools_removed: tuple[str, ...] = ()
    pools_changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    providers_added: tuple[str, ...] = ()
    providers_changed: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    pools_of_providers: tuple[str, ...] = ()
    scheduling: tuple[str, ...] = ()
    auth: bool = False
    other: tuple[str, ...] = ()  # other keys taken in as they are read (``config.experimental_features`` …)
    restart: tuple[str, ...] = ()

    @property
    def empty(self) -> bool:
        """Nothing changed at all."""
        return not (self.pools_added or self.pools_removed or self.pools_changed or self.providers_added
                    or self.providers_changed or self.pools_of_providers or self.scheduling or self.auth
                    or self.other or self.restart)

    def as_dict(self) -> dict[str, Any]:
        """The diff as plain JSON values (key names only: never a value, so never a secret)."""
        out = asdict(self)
        out["pools_changed"] = {k: list(v) for k, v in self.pools_changed.items()}
        out["providers_changed"] = {k: list(v) for k, v in self.providers_changed.items()}
        out["restart_needed"] = out.pop("restart")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in out.items()}


def changed_keys(old: Mapping[str, Any], new: Mapping[str, Any]) -> tuple[str, ...]:
    """The keys whose values differ (present in one only, or unequal), sorted."""
    return tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))


def _dump(model: Any) -> dict[str, Any]:
    return dict(model.model_dump()) if model is not None else {}


def _pool_changes(old: Config, new: Config) -> dict[str, tuple[str, ...]]:
    """Per pool in both: the keys of the pool model that differ, and the fields of the running
    pool (:class:`~corral.domain.models.Pool`) that differ through ``:config:`` or DNS."""
    before = {p.name: p for p in old.pools}
    after = {p.name: p for p in new.pools}
    ran_before, ran_after = _running(old.domain_pools()), _running(new.domain_pools())
    out: dict[str, tuple[str, ...]] = {}
    for name in before.keys() & after.keys():
        keys = set(changed_keys(before[name].model_dump(), after[name].model_dump()))
        keys |= set(changed_keys(ran_before[name], ran_after[name]))
        if keys:
            out[name] = tuple(sorted(keys))
    return dict(sorted(out.items()))


def _running(pools: Iterable[Pool]) -> dict[str, dict[str, Any]]:
    return {p.name: asdict(p) for p in pools}


def _provider_pools(config: Config) -> dict[str, dict[str, dict[str, Any]]]:
    """Per provider, its pools' keys a provider may have been built with."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    domains = config.dns_domains
    for pool in config.pools:
        keys = {k: getattr(pool, k) for k in PROVIDER_POOL_KEYS}
        keys["dns"] = domains.get(pool.dns_plugin) if pool.dns_plugin else None
        out.setdefault(config.pool_provider(pool), {})[pool.name] = keys
    return out


def _restart_keys(old: Config, new: Config) -> tuple[str, ...]:
    found: list[str] = []
    for section in changed_keys(_dump(old), _dump(new)):
        if section not in LIVE_SECTIONS:
            found.append(section)
    found += [f"config.{k}" for k in changed_keys(_dump(old.config), _dump(new.config)) if k not in LIVE_GLOBAL_KEYS]
    found += [f"scheduling.{k}" for k in changed_keys(_dump(old.scheduling), _dump(new.scheduling))
              if k not in LIVE_SCHEDULING_KEYS]
    gone = sorted(old.providers.keys() - new.providers.keys())
    found += [f"providers.{name} (removed)" for name in gone]
    return tuple(found)


def diff_configs(old: Config, new: Config) -> ConfigDiff:
    """What changes from the running configuration ``old`` to the file's ``new``."""
    before = [p.name for p in old.pools]
    after = [p.name for p in new.pools]
    used_before = {old.pool_provider(p) for p in old.pools}
    used_after = {new.pool_provider(p) for p in new.pools}
    kept = used_before & used_after
    providers_changed = {}
    for name in sorted(kept):
        keys = changed_keys(_dump(old.providers.get(name)), _dump(new.providers.get(name)))
        if keys:
            providers_changed[name] = keys
    pools_before, pools_after = _provider_pools(old), _provider_pools(new)
    pools_of = tuple(sorted(name for name in kept if pools_before.get(name) != pools_after.get(name)))
    scheduling = tuple(k for k in changed_keys(_dump(old.scheduling), _dump(new.scheduling))
                       if k in LIVE_SCHEDULING_KEYS)
    if scheduler_settings(old) != scheduler_settings(new) and not scheduling:
        scheduling = ("config.utilization_limit",)
    other = tuple(f"config.{k}" for k in changed_keys(_dump(old.config), _dump(new.config))
                  if k in {"experimental_features", "backend_weight"})
    other += tuple(k for k in ("tagfilter",) if getattr(old, k) != getattr(new, k))
    return ConfigDiff(
        pools_added=tuple(p for p in after if p not in before),
        pools_removed=tuple(p for p in before if p not in after),
        pools_changed=_pool_changes(old, new),
        providers_added=tuple(sorted(used_after - used_before)),
        providers_changed=providers_changed,
        pools_of_providers=pools_of,
        scheduling=scheduling,
        auth=_dump(old.auth) != _dump(new.auth),
        other=other,
        restart=_restart_keys(old, new),
    )
