"""vmpooler 3's ``:dns_configs:`` and the one rule for which domain a pool's VMs get.

vmpooler 3 moved the domain out of ``:config:`` into DNS plugins: each entry of
``:dns_configs:`` names its plugin (``dns_class``: ``dynamic-dns``, ``gcp`` …) and its
``domain``, and a pool names its entry with ``dns_plugin``. corral manages no DNS records (it
behaves as ``dynamic-dns``); it reads each entry's ``domain`` and accepts the plugin's other
keys without showing them (they may be credentials: see :mod:`corral.config.safe`, whose
allow-list shows only the keys declared here).

:func:`corral.domain.names.pool_domain` is the only place that decides a pool's domain; the pool
manager (through ``Config.domain_pools``) and the vSphere provider (through ``vsphere_pools``)
both use it.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from corral.config.errors import checked_by
from corral.domain.settings_model import SettingsModel

__all__ = ["DnsConfig", "DnsConfigs", "DomainName", "check_dns_plugins", "dns_warnings"]

_LABEL_RE = re.compile(r"^[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?$")
DOMAIN_RULE = "must be a domain name: labels of letters, digits, '-' or '_' joined by dots (like example.com)"


def domain_problem(value: str) -> str | None:
    """Why ``value`` is not a domain name that can follow a VM's name (None: it is one)."""
    if len(value) > 253 or not all(_LABEL_RE.match(label) for label in value.split(".")):
        return DOMAIN_RULE
    return None


#: ``example.com``: what is appended to a VM's name to make its FQDN.
DomainName = Annotated[str, checked_by(domain_problem)]


class DnsConfig(SettingsModel):
    """One entry of ``:dns_configs:``: a DNS plugin's settings. Keys other than these two
    belong to the plugin; they are kept, never shown, never warned about."""

    not_acted_on = frozenset({"dns_class"})

    dns_class: str | None = Field(None, description="the plugin: `dynamic-dns`, `gcp` … (accepted; corral manages "
                                  "no records); none: the entry's name")
    domain: DomainName | None = Field(None, description="the domain of the VMs of pools using this entry, such as "
                                      "`example.com`")


def _entries(value: Any) -> Any:
    """An empty section or entry (``:dns_configs:`` with nothing under it) is an empty mapping."""
    if value is None:
        return {}
    if isinstance(value, dict):
        return {name: {} if entry is None else entry for name, entry in value.items()}
    return value


#: The ``:dns_configs:`` section: entry name -> settings.
DnsConfigs = Annotated[dict[str, DnsConfig], BeforeValidator(_entries)]


def check_dns_plugins(dns_configs: Any, pools: list[Any]) -> list[str]:
    """Each pool's ``dns_plugin`` must name an entry of ``:dns_configs:`` (the raw sections)."""
    names = list(dns_configs) if isinstance(dns_configs, dict) else []
    problems = []
    for i, pool in enumerate(pools):
        plugin = pool.get("dns_plugin") if isinstance(pool, dict) else None
        if isinstance(plugin, str) and plugin not in names:  # another type is the model's error
            known = ", ".join(names) or "none configured"
            problems.append(f"pools[{i}].dns_plugin: no dns config named {plugin!r} (dns_configs: {known})")
    return problems


def dns_warnings(plugins: list[str | None], domains: list[str | None], dns_names: Collection[str]) -> list[str]:
    """A pool that names no ``dns_plugin`` where several entries leave it without a domain.

    ``plugins`` and ``domains`` are the pools' ``dns_plugin`` and resolved domain, in order."""
    if len(dns_names) < 2:
        return []
    return [f"pools[{i}].dns_plugin: not given, and :dns_configs: has {len(dns_names)} entries "
            f"({', '.join(dns_names)}), none of them the default; the pool's VMs get no domain"
            for i, (plugin, domain) in enumerate(zip(plugins, domains, strict=True))
            if plugin is None and domain is None]
