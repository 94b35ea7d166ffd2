"""The settings of a vSphere provider: vmpooler's ``:providers: :vsphere:`` keys and corral's own.

vmpooler's keys are read as they are (``server``, ``username``, ``password``, ``insecure``,
``datacenter``, ``purge_unconfigured_resources`` …). ``connection_pool_size`` and
``connection_pool_timeout`` size vmpooler's pool of sessions; corral opens one session per
vCenter, so they are accepted and ignored with a notice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import ConfigDict, Field, SecretStr

from corral.domain.names import pool_domain
from corral.domain.settings_model import SettingsModel

#: vmpooler keys that corral accepts and ignores, each with the reason logged once at start.
IGNORED_KEYS = {
    "connection_pool_size": "corral keeps one session per vCenter and bounds its calls with `concurrency`",
    "connection_pool_timeout": "corral keeps one session per vCenter and bounds its calls with `concurrency`",
    "skip_dns_check_before_creating_vm": "corral does not check DNS before creating a VM",
}


class VsphereSettings(SettingsModel):
    """One vSphere endpoint (a vCenter) as ``:providers:`` describes it."""

    model_config = ConfigDict(extra="forbid")
    corral_keys = frozenset({"port", "protocol", "concurrency", "call_timeout", "keepalive_interval",
                             "feed_max_wait", "task_timeout", "ready_check_address", "ready_check_port",
                             "ready_check_timeout"})
    not_acted_on = frozenset(IGNORED_KEYS)

    provider_class: str | None = None
    server: str = Field(min_length=1, description="the vCenter's host name")
    # the account is nobody's business either: marked secret, it is not shown by the API or in errors
    username: str = Field(min_length=1, json_schema_extra={"secret": True},
                          description="the account corral logs in with; never shown")
    password: SecretStr = Field(description="its password; it never appears in logs, errors or API answers")
    insecure: bool = Field(False, description="accept a TLS certificate that does not verify")
    datacenter: str | None = Field(None, description="the datacenter whose hosts, folders and templates corral "
                                   "uses; none: the whole vCenter. An unknown one stops the start with an error "
                                   "naming it")
    # corral's own keys
    port: int | None = Field(None, ge=1, le=65535, description="the endpoint's port; none: 443 for https, 80 for "
                             "http")
    protocol: Literal["https", "http"] = Field("https", description="`http` for a plain-http endpoint (such as "
                                               "vcsim)")
    concurrency: int = Field(10, ge=1, le=100, description="calls to the vCenter in flight at once on the one "
                             "session")
    call_timeout: float = Field(300, gt=0, description="seconds one call may take (the socket timeout)")
    keepalive_interval: float = Field(300, gt=0, description="seconds without a call after which `CurrentTime` "
                                      "keeps the session alive")
    feed_max_wait: int = Field(10, ge=1, le=600, description="seconds one `WaitForUpdatesEx` long poll may wait")
    task_timeout: float = Field(600, gt=0, description="seconds a vCenter task (clone, move, power) may run before "
                                "corral gives up on it")
    # readiness: each key overrides :config:'s of the same name (see resolve_ready_check)
    ready_check_address: Literal["name", "guest_ip"] | None = Field(
        None, description="what readiness connects to: the VM's `name` with the pool's domain appended "
        "(vmpooler's rule), or the `guest_ip` that VMware Tools report; none: `:config:`'s"
    )
    ready_check_port: int | None = Field(None, ge=1, le=65535, description="the TCP port readiness connects to, "
                                         "for this vCenter; none: `:config:`'s")
    ready_check_timeout: float | None = Field(None, gt=0, description="seconds one readiness probe may take, for "
                                              "this vCenter; none: `:config:`'s")
    create_linked_clones: bool | None = Field(None, description="as in `:config:`, for this vCenter; a pool's "
                                              "`create_linked_clone` overrides it")
    create_template_delta_disks: bool | None = Field(None, description="as in `:config:`, for this vCenter")
    create_folders: bool | None = Field(None, description="as in `:config:`, for this vCenter")
    purge_unconfigured_resources: bool | None = Field(None, description="as in `:config:`, for this vCenter")
    purge_unconfigured_folders: bool | None = Field(None, description="vmpooler's older name of "
                                                    "`purge_unconfigured_resources`")
    resources_allowlist: list[str] | None = Field(None, description="folder names or paths that purging leaves "
                                                  "alone")
    folder_whitelist: list[str] | None = Field(None, description="vmpooler's older name of `resources_allowlist`")
    # accepted and ignored (see IGNORED_KEYS)
    connection_pool_size: int | None = Field(None, description="accepted and ignored, with a warning at start: "
                                             "one session per vCenter")
    connection_pool_timeout: float | None = Field(None, description="accepted and ignored, with a warning at start")
    skip_dns_check_before_creating_vm: bool | None = Field(None, description="accepted and ignored, with a warning "
                                                           "at start: corral does not check DNS")

    def ignored(self) -> list[str]:
        """Notices for the keys that were given but are ignored."""
        return [f"{key}: ignored ({why})" for key, why in IGNORED_KEYS.items() if getattr(self, key) is not None]

    @property
    def effective_port(self) -> int:
        return self.port or (443 if self.protocol == "https" else 80)

    @property
    def purge(self) -> bool:
        return bool(self.purge_unconfigured_resources or self.purge_unconfigured_folders)

    @property
    def allowlist(self) -> list[str]:
        return list(self.resources_allowlist or self.folder_whitelist or [])


@dataclass(frozen=True, slots=True)
class VspherePool:
    """What the vSphere provider needs to know about one pool to clone its VMs."""

    name: str
    template: str  # inventory path below the datacenter's VM folder, e.g. Templates/debian-12
    folder: str | None = None  # inventory path below the datacenter's VM folder
    datastore: str | None = None
    linked_clone: bool = True
    domain: str | None = None
    extra_config: dict[str, str] = field(default_factory=dict)


def vsphere_pools(pools: Sequence[Mapping[str, Any]], provider: VsphereSettings, *,
                  create_linked_clones: bool | None, global_domain: str | None,
                  dns_domains: Mapping[str, str | None] | None = None) -> dict[str, VspherePool]:
    """The pools' vSphere keys, with the provider's and ``:config:``'s defaults filled in.

    ``pools`` are the keys of the pools of this provider, defaults filled in (see
    :class:`corral.providers.registry.ProviderContext`); ``create_linked_clones`` and
    ``global_domain`` are ``:config:``'s ``create_linked_clones`` and ``domain``. vmpooler names
    the pool key ``create_linked_clone`` and the provider / global key ``create_linked_clones``.
    ``dns_domains`` are the domains of ``:dns_configs:`` by entry name; a pool's domain is
    :func:`corral.domain.names.pool_domain`'s.
    """
    default_linked = provider.create_linked_clones
    if default_linked is None:
        default_linked = create_linked_clones
    out = {}
    for pool in pools:
        own_linked = pool["create_linked_clone"]
        linked = own_linked if own_linked is not None else default_linked
        extra_config = {
            key: str(value)
            for key, value in (("mainMem.ioBlockPages", pool["snapshot_mainMem_ioBlockPages"]),
                               ("mainMem.iowait", pool["snapshot_mainMem_iowait"]))
            if value is not None
        }
        out[pool["name"]] = VspherePool(
            name=pool["name"],
            template=pool["template"],
            folder=pool["folder"],
            datastore=pool["datastore"],
            linked_clone=bool(linked),
            domain=pool_domain(pool["domain"], pool["dns_plugin"], dns_domains or {}, global_domain),
            extra_config=extra_config,
        )
    return out
