"""The libvirt provider's copy of what runs on its hosts, kept by events and full lists.

:class:`DomainCache` holds every domain the hosts reported (corral's by name, other domains by
host), the figures of each host, and the VMs being created; each change it records touches
the provider's :class:`~corral.providers.changefeed.ChangeFeed`. It makes no call: the provider
reads the hosts and hands it what they said (``apply_list``, ``apply_one``, ``on_event``), and
it answers the change feed and the host views from memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import NamedTuple

import libvirt

from corral.domain.models import HostInfo, ProviderVm, VmSpec
from corral.providers.base import InventoryUpdate
from corral.providers.changefeed import ChangeFeed
from corral.providers.libvirt.connection import DomainEvent
from corral.providers.libvirt.domxml import DomainFacts, parse_domain
from corral.providers.libvirt.hostfigures import HostCpu, describe_cpu, memory_used_mb

__all__ = ["ACTIVE_STATES", "Domain", "DomainCache", "HostFigures", "Listed", "Pending"]

log = logging.getLogger("corral.providers.libvirt")

#: domain states (virDomainState) in which the domain runs, for corral: powered on
ACTIVE_STATES = frozenset({libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED,
                           libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_PMSUSPENDED})
_ON_EVENTS = frozenset({libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED})
_OFF_EVENTS = frozenset({libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED})
_ARRIVALS = frozenset({libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_STARTED})


@dataclass(slots=True)
class Domain:
    """One domain on one host, as corral knows it."""

    name: str
    host: str
    uuid: str
    facts: DomainFacts
    active: bool
    xml: str | None = None  # corral's own domains: the definition, to define it again elsewhere (HA)
    ip: str | None = None

    @property
    def ours(self) -> bool:
        return self.facts.pool is not None

    def view(self) -> ProviderVm:
        return ProviderVm(name=self.name, host=self.host, pool=self.facts.pool, template=self.facts.template,
                          powered_on=self.active, ip=self.ip, guest_ready=self.active,
                          created_at=self.facts.created_at, id=self.uuid)


@dataclass(slots=True)
class HostFigures:
    """What one host is, read once per connection, and its latest use."""

    model: str = ""
    memory_mb: int = 0
    cores: int = 0
    mhz: int = 0
    cpu: HostCpu | None = None
    busy: float = 0.0
    cpu_stats: dict[str, int] | None = None
    memory_stats: dict[str, int] | None = None
    memory_stats_supported: bool = True


@dataclass(slots=True)
class Pending:
    """A VM being created, known before its first event arrives."""

    host: str
    spec: VmSpec
    created_at: float


class Listed(NamedTuple):
    """One domain of a full list: its state, and its XML when corral had not seen it before."""

    name: str
    uuid: str
    state: int
    xml: str | None


class DomainCache:
    """What the hosts reported; ``changes`` records each change. ``is_up`` tells whether a
    host's connection is open (a host view says so)."""

    def __init__(self, hosts: Iterable[str], is_up: Callable[[str], bool]) -> None:
        self.host_names = tuple(hosts)
        self.is_up = is_up
        self.changes = ChangeFeed()
        self.domains: dict[str, Domain] = {}  # corral's domains by name
        self.others: dict[str, dict[str, Domain]] = {}  # every other domain (templates …), by host and name
        self.known: dict[str, DomainFacts] = {}  # facts by UUID: a domain's XML is read once
        self.figures: dict[str, HostFigures] = {}
        self.pending: dict[str, Pending] = {}

    def touch_vm(self, name: str, host: str | None = None) -> None:
        self.changes.touch("vm", name)
        if host is not None:
            self.changes.touch("host", host)

    # -- full reads ------------------------------------------------------------------------

    def apply_list(self, host: str, listed: Iterable[Listed], since: int) -> None:
        """A full list of one host, asked for at version ``since``, replaces what corral knew of
        it; except for the VMs that changed while the list was read (an event, a create or a
        destroy since then is newer than the list), and the VMs being created."""
        changed = self.changes.since(since)
        if changed is None:  # more changed meanwhile than the log holds: the list is only news of new VMs
            fresh: set[str] | None = None
        else:
            fresh = set(changed.vms)
        seen: set[str] = set()
        others: dict[str, Domain] = {}
        for name, uuid, state, xml in listed:
            if (name in fresh) if fresh is not None else (name in self.domains):
                seen.add(name)  # what corral has is newer than the list
                continue
            facts = self.known.get(uuid)
            if facts is None:
                if xml is None:
                    continue
                try:
                    facts = parse_domain(xml)
                except ValueError as exc:
                    log.warning("libvirt domain XML unreadable", extra={"provider_host": host, "vm": name,
                                                                        "error": str(exc)})
                    continue
                self.known[uuid] = facts
            domain = Domain(name, host, uuid, facts, state in ACTIVE_STATES, xml=xml if facts.pool else None)
            if not domain.ours:
                others[name] = domain
                continue
            seen.add(name)
            before = self.domains.get(name)
            if before is not None and before.host != host and self.is_up(before.host) and \
                    (before.active or not domain.active):
                continue  # a stale copy left on a host it was started away from: the record stays where it runs
            if before is not None:
                domain.xml = domain.xml or before.xml
                domain.ip = before.ip
            if before is None or (before.host, before.active) != (domain.host, domain.active):
                self.domains[name] = domain
                self.changes.touch("vm", name)
        for name in [n for n, d in self.domains.items() if d.host == host and n not in seen]:
            if name not in self.pending and fresh is not None and name not in fresh:
                del self.domains[name]
                self.changes.touch("vm", name)
        self.others[host] = others
        self.changes.touch("host", host)

    def apply_one(self, host: str, listed: Listed) -> None:
        """One domain read because an event named a domain corral did not know."""
        name, uuid, state, xml = listed
        try:
            facts = self.known.get(uuid) or parse_domain(xml or "")
        except ValueError:
            return
        self.known[uuid] = facts
        domain = Domain(name, host, uuid, facts, state in ACTIVE_STATES, xml=xml if facts.pool else None)
        if domain.ours:
            self.domains[name] = domain
            self.changes.touch("vm", name)
        else:
            self.others.setdefault(host, {})[name] = domain
        self.changes.touch("host", host)

    # -- events ----------------------------------------------------------------------------

    def on_event(self, event: DomainEvent) -> bool:
        """Apply one lifecycle event; True when it names a domain corral does not know, whose
        XML must be read (``apply_one``)."""
        host, name = event.host, event.name
        domain = self.domains.get(name)
        if domain is None or domain.host != host:
            other = self.others.get(host, {}).get(name)
            if other is not None:
                domain = other
            elif event.event in _ARRIVALS:  # new here: being created, moved here, or made by someone else
                domain = self._adopt(event, domain)
                if domain is None:
                    return True
            elif domain is None and event.event != libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
                return True
            else:
                return False  # the old host's word on a VM that has moved on
        if event.event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
            if domain.ours and self.domains.get(name) is domain:
                del self.domains[name]
                self.known.pop(domain.uuid, None)
                self.changes.touch("vm", name)
            if self.others.get(host, {}).pop(name, None) is not None:
                self.known.pop(domain.uuid, None)
            self.changes.touch("host", host)
            return False
        if event.event in _ON_EVENTS:
            domain.active = True
        elif event.event in _OFF_EVENTS:
            domain.active = False
        if domain.ours:
            self.changes.touch("vm", name)
        self.changes.touch("host", host)
        return False

    def _adopt(self, event: DomainEvent, before: Domain | None) -> Domain | None:
        """A domain corral did not know on that host: one it is creating, or one that moved
        here; None for one made by someone else (its XML must be read)."""
        pending = self.pending.get(event.name)
        facts = self.known.get(event.uuid)
        if facts is None and pending is not None and pending.host == event.host:
            spec = pending.spec
            facts = DomainFacts(name=spec.name, uuid=event.uuid, memory_mb=spec.memory_mb, vcpus=spec.cpus, disks=(),
                                has_nvram=False, pool=spec.pool, template=spec.template, created_at=pending.created_at)
        if facts is None:
            return None
        self.known.setdefault(event.uuid, facts)
        domain = Domain(event.name, event.host, event.uuid, facts, active=False,
                        xml=before.xml if before is not None else None)
        if domain.ours:
            self.domains[event.name] = domain  # a VM that moved here replaces its record on the old host
        else:
            self.others.setdefault(event.host, {})[event.name] = domain
        return domain

    # -- what corral did -------------------------------------------------------------------

    def created(self, host: str, spec: VmSpec, uuid: str, xml: str) -> None:
        """A VM this provider made and started."""
        try:
            facts = parse_domain(xml)
        except ValueError:
            facts = self.known.get(uuid) or DomainFacts(spec.name, uuid, spec.memory_mb, spec.cpus, (), False,
                                                        spec.pool, spec.template)
        self.known[uuid] = facts
        domain = self.domains.get(spec.name)
        if domain is None or domain.host != host:
            domain = Domain(spec.name, host, uuid, facts, active=True)
            self.domains[spec.name] = domain
        domain.facts, domain.xml, domain.active = facts, xml, True
        self.touch_vm(spec.name, host)

    def undone(self, host: str, name: str) -> None:
        """A create that failed after the domain was defined (and was undefined again)."""
        if name in self.domains and self.domains[name].host == host:
            del self.domains[name]
            self.changes.touch("vm", name)

    def started_on(self, name: str, host: str, uuid: str) -> None:
        """An HA restart: the VM was defined again and started on ``host``."""
        domain = self.domains[name]
        self.known[uuid] = domain.facts
        domain.host, domain.uuid, domain.active, domain.ip = host, uuid, True, None
        self.touch_vm(name, host)

    def set_active(self, name: str, active: bool) -> None:
        domain = self.domains.get(name)
        if domain is not None and domain.active != active:
            domain.active = active
            self.touch_vm(name, domain.host)

    def moved(self, name: str, host: str) -> None:
        domain = self.domains.get(name)
        if domain is not None and domain.host != host:
            source, domain.host = domain.host, host
            self.touch_vm(name, host)
            self.changes.touch("host", source)

    def forget(self, name: str) -> None:
        """A VM this provider destroyed, or found gone."""
        domain = self.domains.pop(name, None)
        if domain is not None:
            self.known.pop(domain.uuid, None)
        self.touch_vm(name, domain.host if domain is not None else None)

    def redefined(self, name: str, xml: str) -> None:
        """The VM's definition changed (a disk added): the one kept for an HA restart follows."""
        domain = self.domains.get(name)
        if domain is not None:
            domain.xml = xml

    # -- views -----------------------------------------------------------------------------

    def host_view(self, host: str) -> HostInfo:
        figures = self.figures.get(host) or HostFigures()
        ours = [d for d in self.domains.values() if d.host == host]
        others = list(self.others.get(host, {}).values())
        running_mb = sum(d.facts.memory_mb for d in (*ours, *others) if d.active)
        allocated = sum(d.facts.memory_mb for d in ours) + sum(d.facts.memory_mb for d in others if d.active)
        cpu = figures.cpu
        return HostInfo(
            name=host,
            cpu_model=describe_cpu(cpu, figures.model) if cpu is not None else figures.model,
            cores=figures.cores,
            mhz=figures.mhz,
            memory_mb=figures.memory_mb,
            cpu_used_mhz=figures.busy * figures.cores * figures.mhz,
            memory_used_mb=memory_used_mb(figures.memory_stats, figures.memory_mb, running_mb),
            up=self.is_up(host),
            vm_count=sum(1 for d in (*ours, *others) if d.active),
            id=host,
            cpu_vendor=cpu.vendor if cpu is not None else "",
            cpu_family=cpu.family if cpu is not None else None,
            cpu_flags=cpu.features if cpu is not None else frozenset(),
            memory_allocated_mb=float(allocated),
        )

    def vms(self) -> list[ProviderVm]:
        return [d.view() for d in self.domains.values()]

    def update_since(self, version: int | None) -> InventoryUpdate | None:
        """What changed since ``version``; None when nothing did (the caller waits)."""
        changes = self.changes.since(version)
        if changes is not None and changes.empty:
            return None
        if changes is None:
            return InventoryUpdate(version=self.changes.version, full=True, vms=self.vms(),
                                   hosts=[self.host_view(h) for h in self.host_names])
        views = {name: self.domains.get(name) for name in changes.vms}
        return InventoryUpdate(
            version=self.changes.version,
            vms=[d.view() for d in views.values() if d is not None],
            removed_vms=[name for name, d in views.items() if d is None],
            hosts=[self.host_view(h) for h in changes.hosts if h in self.host_names],
            removed_hosts=[h for h in changes.hosts if h not in self.host_names],
        )
