"""The settings of a libvirt provider (``provider_class: libvirt``): every key is corral's own.

A provider entry names its hosts as libvirt URIs: ``qemu+ssh://root@kvm1/system`` or
``qemu+tls://kvm1/system`` for real KVM hosts, ``test:///abs/path/host1.xml`` for libvirt's
test driver. A host's name (what placement, the status page and the VM records call it) is
given with ``name``, else taken from the URI: its host part, or for a URI without one (the
test driver, ``qemu:///system``) the file name without its suffix or the path.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from corral.domain.names import pool_domain
from corral.domain.settings_model import SettingsModel

__all__ = ["LibvirtHost", "LibvirtPool", "LibvirtSettings", "host_name_of", "libvirt_pools"]


def host_name_of(uri: str) -> str:
    """The name a host gets from its URI when the entry gives none (see the module docstring)."""
    parts = urlsplit(uri)
    if parts.hostname:
        return parts.hostname
    path = PurePosixPath(parts.path)
    return path.stem or parts.scheme.split("+")[0] or uri


class LibvirtHost(BaseModel):
    """One KVM host: its libvirt URI and, optionally, the name corral calls it."""

    model_config = ConfigDict(extra="forbid")

    # it may name the account (root@…), which is nobody's business: marked secret, it is not
    # shown by the API or in errors (a host is named by its `name`, or its position)
    uri: str = Field(min_length=1, max_length=1000, json_schema_extra={"secret": True},
                     description="the host's libvirt URI, e.g. `qemu+ssh://root@kvm1.example.net/system`; never "
                     "shown")
    name: str | None = Field(None, min_length=1, max_length=255, description="what corral calls the host; none: "
                             "the URI's host part (or the file name of a `test:///` URI)")

    @field_validator("uri")
    @classmethod
    def _has_scheme(cls, uri: str) -> str:
        if "://" not in uri:
            raise ValueError("is not a libvirt URI (such as qemu+ssh://host/system)")
        return uri

    @property
    def host_name(self) -> str:
        return self.name or host_name_of(self.uri)


class LibvirtSettings(SettingsModel):
    """A set of KVM hosts reached over libvirt, as one ``:providers:`` entry describes it."""

    model_config = ConfigDict(extra="forbid")
    corral_only = True

    provider_class: str | None = None
    hosts: list[LibvirtHost] = Field(min_length=1, max_length=1000, description="the hosts: each a libvirt URI, "
                                     "or a mapping with `uri` and `name`")
    concurrency: int = Field(4, ge=1, le=64, description="libvirt calls in flight at once on one host's connection")
    call_timeout: float = Field(120, gt=0, description="seconds one libvirt call may take before corral gives up "
                                "on it (the call is not interrupted; its answer is dropped)")
    keepalive_interval: int = Field(5, ge=1, le=600, description="seconds between libvirt keepalive messages on a "
                                    "remote connection")
    keepalive_count: int = Field(3, ge=1, le=100, description="keepalive messages without an answer after which "
                                 "libvirt closes the connection (and corral reconnects)")
    reconnect_min: float = Field(0.5, gt=0, description="seconds before the first attempt to reopen a lost "
                                 "connection; doubled at each failure")
    reconnect_max: float = Field(30, gt=0, description="the longest wait between attempts to reopen a connection")
    host_stats_interval: float = Field(20, gt=0, le=3600, description="seconds between readings of each host's "
                                       "CPU and memory use (libvirt sends no events for them)")
    storage_pool: str | None = Field(None, min_length=1, description="the libvirt storage pool new disks go to; "
                                     "none: the template's volume's pool (a pool's `datastore` overrides it)")
    create_linked_clones: bool | None = Field(None, description="as in `:config:`, for these hosts: a clone's disk "
                                              "is a qcow2 overlay on the template's volume instead of a full copy")
    ready_check_address: Literal["name", "guest_ip"] | None = Field(
        None, description="what readiness connects to: the VM's `name` with the pool's domain appended, or the "
        "`guest_ip` libvirt reports (DHCP lease, else the guest agent); none: `:config:`'s")
    ready_check_port: int | None = Field(None, ge=1, le=65535, description="the TCP port readiness connects to, "
                                         "for these hosts; none: `:config:`'s")
    ready_check_timeout: float | None = Field(None, gt=0, description="seconds one readiness probe may take, for "
                                              "these hosts; none: `:config:`'s")

    @field_validator("hosts", mode="before")
    @classmethod
    def _uris(cls, hosts: Any) -> Any:
        if isinstance(hosts, list):
            return [{"uri": h} if isinstance(h, str) else h for h in hosts]
        return hosts

    @model_validator(mode="after")
    def _distinct(self) -> LibvirtSettings:
        seen: dict[str, int] = {}
        for number, host in enumerate(self.hosts, 1):
            if host.host_name in seen:  # named by position: a URI may carry a user name
                raise ValueError(f"hosts {seen[host.host_name]} and {number} are both called {host.host_name!r}; "
                                 "give one of them a `name`")
            seen[host.host_name] = number
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max is below reconnect_min")
        return self


@dataclass(frozen=True, slots=True)
class LibvirtPool:
    """What the libvirt provider needs to know about one pool to clone its VMs.

    ``template`` is the name of a domain defined on every host the pool may use, or the
    absolute path of a domain XML file (whose disks name volumes present on each host).
    """

    name: str
    template: str
    linked_clone: bool = False
    storage_pool: str | None = None  # none: the template volume's pool
    domain: str | None = None


def libvirt_pools(pools: Sequence[Mapping[str, Any]], provider: LibvirtSettings, *,
                  create_linked_clones: bool | None, global_domain: str | None,
                  dns_domains: Mapping[str, str | None] | None = None) -> dict[str, LibvirtPool]:
    """The pools' libvirt keys with the provider's and ``:config:``'s defaults filled in: a pool's
    ``create_linked_clone`` over the provider's ``create_linked_clones`` over ``:config:``'s;
    its ``datastore`` (a storage pool) over the provider's ``storage_pool``."""
    default_linked = provider.create_linked_clones
    if default_linked is None:
        default_linked = create_linked_clones
    out = {}
    for pool in pools:
        own_linked = pool.get("create_linked_clone")
        linked = own_linked if own_linked is not None else default_linked
        out[pool["name"]] = LibvirtPool(
            name=pool["name"],
            template=pool["template"],
            linked_clone=bool(linked),
            storage_pool=pool.get("datastore") or provider.storage_pool,
            domain=pool_domain(pool.get("domain"), pool.get("dns_plugin"), dns_domains or {}, global_domain),
        )
    return out
