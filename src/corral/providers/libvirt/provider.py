"""The libvirt provider: KVM hosts without a vCenter, one libvirt connection per host.

:class:`LibvirtProvider` holds a :class:`~corral.providers.libvirt.connection.HostConnection`
per host and an in-memory copy of what runs on them (:class:`Domains`), kept by libvirt's
domain lifecycle events: a full list of a host is read only when its connection opens and
when the inventory asks for a fresh snapshot (at start and at each reconcile). The change feed
(``wait_for_updates``) answers from that copy, without a call. Host figures come from
``getInfo`` and ``getCapabilities`` once per connection, and from ``getCPUStats`` /
``getMemoryStats`` every ``host_stats_interval`` seconds (libvirt has no events for them).

A create for one host is one pass over that host's connection, in one worker thread: for each
VM, the template's disks are cloned (``createXMLFrom``, or a qcow2 overlay with linked clones),
the template's XML gets the new name, disks and corral's metadata (``domxml.py``), and the
domain is defined and started. The domain's own metadata names its pool, so a restarted corral
knows its VMs again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import libvirt

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import CreateResult, HostUnavailable, InventoryUpdate, Provider, ProviderError, VmNotFound
from corral.providers.changefeed import ChangeFeed
from corral.providers.libvirt.connection import DomainEvent, HostConnection, LibvirtFault, Opener
from corral.providers.libvirt.domxml import (
    DiskSource,
    DomainFacts,
    clone_domain,
    disk_device_xml,
    new_volume_xml,
    next_disk_target,
    parse_domain,
    parse_volume,
    volume_clone_xml,
    volume_name_for,
    volume_overlay_xml,
    with_disk,
)
from corral.providers.libvirt.errors import Fault, classify
from corral.providers.libvirt.hostfigures import HostCpu, cpu_busy, describe_cpu, memory_used_mb, parse_capabilities
from corral.providers.libvirt.settings import LibvirtPool, LibvirtSettings
from corral.providers.probe import ReadyCheck, tcp_reachable

__all__ = ["LibvirtProvider"]

log = logging.getLogger("corral.providers.libvirt")

Probe = Callable[[str, int, float], Awaitable[bool]]

#: domain states (virDomainState) in which the domain runs, for corral: powered on
_ACTIVE_STATES = frozenset({libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_BLOCKED, libvirt.VIR_DOMAIN_PAUSED,
                            libvirt.VIR_DOMAIN_SHUTDOWN, libvirt.VIR_DOMAIN_PMSUSPENDED})
_ON_EVENTS = frozenset({libvirt.VIR_DOMAIN_EVENT_STARTED, libvirt.VIR_DOMAIN_EVENT_RESUMED})
_OFF_EVENTS = frozenset({libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_CRASHED})
_ARRIVALS = frozenset({libvirt.VIR_DOMAIN_EVENT_DEFINED, libvirt.VIR_DOMAIN_EVENT_STARTED})
_UNDEFINE = libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
DEFAULT_READY = ReadyCheck()  # :config:'s readiness check when the caller gives none
TEST_DRIVER_CANNOT_MIGRATE = "libvirt's test driver cannot migrate domains"


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
class Template:
    """A template as one host has it: its XML, what it asks for, and its disks' volumes."""

    xml: str
    facts: DomainFacts
    volumes: dict[str, tuple[str, Any]] = field(default_factory=dict)  # target -> (storage pool, volume facts)


class Lookups:
    """One create call's storage pools and template volumes, each looked up once."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self._pools: dict[str, Any] = {}
        self._volumes: dict[tuple[str, str], Any] = {}

    def pool(self, name: str) -> Any:
        if name not in self._pools:
            self._pools[name] = self.conn.storagePoolLookupByName(name)
        return self._pools[name]

    def volume(self, pool: str, name: str) -> Any:
        if (pool, name) not in self._volumes:
            self._volumes[pool, name] = self.pool(pool).storageVolLookupByName(name)
        return self._volumes[pool, name]


@dataclass(slots=True)
class Pending:
    """A VM being created, known before its first event arrives."""

    host: str
    spec: VmSpec
    created_at: float


class LibvirtProvider(Provider):
    """KVM hosts over libvirt as a corral provider. ``docs/configuration.md`` says what it reads.

    ``pools`` are the libvirt keys of the pools that use it (template, linked clones, storage
    pool, domain); ``ready`` is the readiness check (``:config:``'s, overridden by the
    provider's own keys); ``probe`` makes it; ``opener`` opens a URI (``libvirt.open``).
    """

    bulk_calls = True  # a create for one host is one pass over its connection, however many VMs
    probes_readiness = True  # running is not enough: vm_ready connects to the guest

    def __init__(self, name: str, settings: LibvirtSettings, pools: dict[str, LibvirtPool] | None = None, *,
                 ready: ReadyCheck = DEFAULT_READY, probe: Probe = tcp_reachable,
                 opener: Opener = libvirt.open) -> None:
        self.name = name
        self.settings = settings
        self.pools = pools or {}
        self.ready = ready
        self.probe = probe
        self.calls: Counter[str] = Counter()  # libvirt calls by name
        self.changes = ChangeFeed()
        self.cannot_migrate: str | None = None
        self.domains: dict[str, Domain] = {}  # corral's domains by name
        self.others: dict[str, dict[str, Domain]] = {}  # every other domain (templates …), by host and name
        self.known: dict[str, DomainFacts] = {}  # facts by UUID: a domain's XML is read once
        self.figures: dict[str, HostFigures] = {}
        self.templates: dict[tuple[str, str], Template] = {}
        self.pending: dict[str, Pending] = {}
        self.hosts = {
            host.host_name: HostConnection(
                host.host_name, host.uri, concurrency=settings.concurrency, call_timeout=settings.call_timeout,
                keepalive=(settings.keepalive_interval, settings.keepalive_count),
                backoff=(settings.reconnect_min, settings.reconnect_max), calls=self.calls,
                on_event=self._on_event, on_down=self._on_down, on_up=self._on_up, opener=opener)
            for host in settings.hosts
        }
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats_task: asyncio.Task[None] | None = None
        self._connected = False

    # -- session ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open every host's connection and read it; hosts that cannot be reached yet are
        reported down and tried again in the background. Raises when no host answers."""
        if self._connected:
            return
        results = await asyncio.gather(*(self._open(conn) for conn in self.hosts.values()), return_exceptions=True)
        failures = {name: r for name, r in zip(self.hosts, results, strict=True) if isinstance(r, BaseException)}
        if len(failures) == len(self.hosts):
            for conn in self.hosts.values():
                await conn.close()
            self._recreate_connections()
            detail = "; ".join(str(exc) for exc in failures.values())
            raise ProviderError(f"libvirt provider {self.name!r}: no host could be reached ({detail})")
        for name, exc in failures.items():
            if not isinstance(exc, ProviderError):
                raise exc
            log.warning("libvirt host unreachable at start; retrying", extra={"provider": self.name,
                                                                             "provider_host": name, "error": str(exc)})
            self.hosts[name].start_reopening(str(exc))
            self.changes.touch("host", name)
        self._connected = True
        self._stats_task = asyncio.get_running_loop().create_task(self._read_stats(), name=f"libvirt-stats-{self.name}")

    def _recreate_connections(self) -> None:
        """Closed connections cannot open again: a later connect gets fresh ones."""
        self.hosts = {name: HostConnection(
            name, conn.uri, concurrency=self.settings.concurrency, call_timeout=conn.call_timeout,
            keepalive=conn.keepalive, backoff=conn.backoff, calls=self.calls, on_event=self._on_event,
            on_down=self._on_down, on_up=self._on_up, opener=conn.opener) for name, conn in self.hosts.items()}

    async def _open(self, conn: HostConnection) -> None:
        await conn.open()
        await self._read_host(conn)

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        tasks = [t for t in (self._stats_task, *self._tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        for conn in self.hosts.values():
            await conn.close()
        self._recreate_connections()
        self.changes.wake_all()

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reading hosts ---------------------------------------------------------------------

    async def _read_host(self, conn: HostConnection) -> None:
        """Everything on one host: its figures (once per connection) and a full list of domains."""
        host = conn.name
        if conn.driver.lower() == "test":
            self.cannot_migrate = TEST_DRIVER_CANNOT_MIGRATE

        def read(c: Any) -> tuple[list[Any], str, list[tuple[str, str, int, str | None]]]:
            info = c.getInfo()
            caps = c.getCapabilities()
            listed = []
            for dom, stats in c.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0):
                uuid = dom.UUIDString()
                xml = None if uuid in self.known else dom.XMLDesc(0)
                listed.append((dom.name(), uuid, int(stats.get("state.state", 0)), xml))
            return info, caps, listed

        info, caps, listed = await conn.call("read", host, read)
        figures = self.figures.setdefault(host, HostFigures())
        figures.model, figures.memory_mb, figures.cores, figures.mhz = str(info[0]), int(info[1]), int(info[2]), \
            int(info[3])
        try:
            figures.cpu = parse_capabilities(caps)
        except ValueError as exc:
            log.warning("libvirt host capabilities unreadable", extra={"provider_host": host, "error": str(exc)})
        self._apply_list(host, listed)
        await self._read_use(conn)

    def _apply_list(self, host: str, listed: Iterable[tuple[str, str, int, str | None]]) -> None:
        """A full list of one host replaces what corral knew of it."""
        seen: set[str] = set()
        others: dict[str, Domain] = {}
        for name, uuid, state, xml in listed:
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
            domain = Domain(name, host, uuid, facts, state in _ACTIVE_STATES, xml=xml if facts.pool else None)
            if not domain.ours:
                others[name] = domain
                continue
            seen.add(name)
            before = self.domains.get(name)
            if before is not None and before.host != host and self.hosts[before.host].up and \
                    (before.active or not domain.active):
                continue  # a stale copy left on a host it was started away from: the record stays where it runs
            if before is not None:
                domain.xml = domain.xml or before.xml
                domain.ip = before.ip
            if before is None or (before.host, before.active) != (domain.host, domain.active):
                self.domains[name] = domain
                self.changes.touch("vm", name)
        for name in [n for n, d in self.domains.items() if d.host == host and n not in seen]:
            if name not in self.pending:
                del self.domains[name]
                self.changes.touch("vm", name)
        self.others[host] = others
        self.changes.touch("host", host)

    async def _read_use(self, conn: HostConnection) -> None:
        figures = self.figures.setdefault(conn.name, HostFigures())
        want_memory = figures.memory_stats_supported

        def read(c: Any) -> tuple[dict[str, int], dict[str, int] | None, bool]:
            cpu = c.getCPUStats(libvirt.VIR_NODE_CPU_STATS_ALL_CPUS, 0)
            if not want_memory:
                return cpu, None, False
            try:
                return cpu, c.getMemoryStats(libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS, 0), True
            except libvirt.libvirtError as exc:
                if classify(exc.get_error_code() or 0, str(exc), operation="getMemoryStats", subject=conn.name,
                            host=conn.name).kind != "unsupported":
                    raise
                return cpu, None, False

        cpu, memory, supported = await conn.call("read host use", conn.name, read)
        before = (figures.cpu_stats is None, figures.busy, figures.memory_stats)
        figures.busy = cpu_busy(figures.cpu_stats, cpu)
        figures.cpu_stats, figures.memory_stats, figures.memory_stats_supported = dict(cpu), memory, supported
        if before != (False, figures.busy, figures.memory_stats):  # a reading that changes nothing is no update
            self.changes.touch("host", conn.name)

    async def _read_stats(self) -> None:
        """Every ``host_stats_interval``: each host's CPU and memory use (and whether it still answers)."""
        while True:
            await asyncio.sleep(self.settings.host_stats_interval)
            for conn in list(self.hosts.values()):
                if conn.up:
                    try:
                        await self._read_use(conn)
                    except ProviderError as exc:
                        log.info("libvirt host use not read", extra={"provider_host": conn.name, "error": str(exc)})

    def _on_down(self, host: str) -> None:
        self.changes.touch("host", host)  # reported down; its VMs stay as they were until it answers again

    def _on_up(self, host: str) -> None:
        self.templates = {key: t for key, t in self.templates.items() if key[0] != host}
        self._spawn(self._reread(host), f"libvirt-reread-{host}")

    async def _reread(self, host: str) -> None:
        conn = self.hosts.get(host)
        if conn is None:
            return
        try:
            await self._read_host(conn)
        except ProviderError as exc:
            log.warning("libvirt host not read after reconnecting", extra={"provider_host": host, "error": str(exc)})

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, event: DomainEvent) -> None:
        conn = self.hosts.get(event.host)
        if conn is None or event.generation != conn.generation or not self._connected:
            return  # an event of a connection since replaced
        host, name = event.host, event.name
        domain = self.domains.get(name)
        if domain is None or domain.host != host:
            other = self.others.get(host, {}).get(name)
            if other is not None:
                domain = other
            elif event.event in _ARRIVALS:  # new here: being created, moved here, or made by someone else
                domain = self._adopt(event, domain)
            elif domain is None and event.event != libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
                self._spawn(self._refresh(host, name), f"libvirt-refresh-{name}")
                return
            else:
                return  # the old host's word on a VM that has moved on
            if domain is None:
                return
        if event.event == libvirt.VIR_DOMAIN_EVENT_UNDEFINED:
            if domain.ours and self.domains.get(name) is domain:
                del self.domains[name]
                self.changes.touch("vm", name)
            self.others.get(host, {}).pop(name, None)
            self.changes.touch("host", host)
            return
        if event.event in _ON_EVENTS:
            domain.active = True
        elif event.event in _OFF_EVENTS:
            domain.active = False
        if domain.ours:
            self.changes.touch("vm", name)
        self.changes.touch("host", host)

    def _adopt(self, event: DomainEvent, before: Domain | None) -> Domain | None:
        """A domain this provider did not know on that host: one it is creating, one that moved
        here, or one made by someone else (its XML is read, off the loop)."""
        pending = self.pending.get(event.name)
        facts = self.known.get(event.uuid)
        if facts is None and pending is not None and pending.host == event.host:
            spec = pending.spec
            facts = DomainFacts(name=spec.name, uuid=event.uuid, memory_mb=spec.memory_mb, vcpus=spec.cpus, disks=(),
                                has_nvram=False, pool=spec.pool, template=spec.template, created_at=pending.created_at)
        if facts is None:
            self._spawn(self._refresh(event.host, event.name), f"libvirt-refresh-{event.name}")
            return None
        self.known.setdefault(event.uuid, facts)
        domain = Domain(event.name, event.host, event.uuid, facts, active=False,
                        xml=before.xml if before is not None else None)
        if domain.ours:
            self.domains[event.name] = domain  # a VM that moved here replaces its record on the old host
        else:
            self.others.setdefault(event.host, {})[event.name] = domain
        return domain

    async def _refresh(self, host: str, name: str) -> None:
        """Read one domain a host reported and corral did not know."""
        conn = self.hosts.get(host)
        if conn is None:
            return

        def read(c: Any) -> tuple[str, str, int]:
            dom = c.lookupByName(name)
            return dom.UUIDString(), dom.XMLDesc(0), dom.state(0)[0]

        try:
            uuid, xml, state = await conn.call("read", name, read, vm=name)
        except ProviderError:
            return  # gone again already, or the host is away: the next full list settles it
        self._apply_one(host, name, uuid, xml, state)

    def _apply_one(self, host: str, name: str, uuid: str, xml: str, state: int) -> None:
        try:
            facts = self.known.get(uuid) or parse_domain(xml)
        except ValueError:
            return
        self.known[uuid] = facts
        domain = Domain(name, host, uuid, facts, state in _ACTIVE_STATES, xml=xml if facts.pool else None)
        if domain.ours:
            self.domains[name] = domain
            self.changes.touch("vm", name)
        else:
            self.others.setdefault(host, {})[name] = domain
        self.changes.touch("host", host)

    # -- reads -----------------------------------------------------------------------------

    def _host_view(self, host: str) -> HostInfo:
        conn = self.hosts[host]
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
            up=conn.up,
            vm_count=sum(1 for d in (*ours, *others) if d.active),
            id=host,
            cpu_vendor=cpu.vendor if cpu is not None else "",
            cpu_family=cpu.family if cpu is not None else None,
            cpu_flags=cpu.features if cpu is not None else frozenset(),
            memory_allocated_mb=float(allocated),
        )

    async def list_hosts(self) -> list[HostInfo]:
        for conn in list(self.hosts.values()):
            if conn.up:
                try:
                    await self._read_use(conn)
                except ProviderError:
                    pass  # reported as it stands; a lost connection is marked down by the call
        return [self._host_view(host) for host in self.hosts]

    async def list_vms(self) -> list[ProviderVm]:
        """A full list of every host that answers (and corral's copy for those that do not)."""
        await self._read_all()
        return [d.view() for d in self.domains.values()]

    async def _read_all(self) -> None:
        conns = [conn for conn in self.hosts.values() if conn.up]
        results = await asyncio.gather(*(self._read_host(conn) for conn in conns), return_exceptions=True)
        for conn, result in zip(conns, results, strict=True):
            if isinstance(result, ProviderError):
                log.warning("libvirt host not read", extra={"provider_host": conn.name, "error": str(result)})
            elif isinstance(result, BaseException):
                raise result

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        """Answered from corral's copy; a snapshot (``version`` None) reads every host first."""
        if not self._connected:
            raise ProviderError(f"libvirt provider {self.name!r} is not connected")
        if version is None:
            await self._read_all()
        changes = self.changes.since(version)
        if changes is not None and changes.empty:
            await self.changes.wait_past(self.changes.version, timeout)
            changes = self.changes.since(version)
        if changes is None:
            return InventoryUpdate(version=self.changes.version, full=True,
                                   vms=[d.view() for d in self.domains.values()],
                                   hosts=[self._host_view(h) for h in self.hosts])
        views = {name: self.domains.get(name) for name in changes.vms}
        return InventoryUpdate(
            version=self.changes.version,
            vms=[d.view() for d in views.values() if d is not None],
            removed_vms=[name for name, d in views.items() if d is None],
            hosts=[self._host_view(h) for h in changes.hosts if h in self.hosts],
            removed_hosts=[h for h in changes.hosts if h not in self.hosts],
        )

    async def template_info(self, template: str) -> TemplateInfo | None:
        for conn in self.hosts.values():
            if not conn.up:
                continue
            try:
                found = await self._template(conn, template)
            except ProviderError:
                continue
            facts = found.facts
            # a template's <cpu><model> is libvirt's CPU model name, not a word of the host's
            # description the model filter could match: the vendor and features say what it needs
            return TemplateInfo(name=template, cpus=facts.vcpus, memory_mb=facts.memory_mb, cpu_vendor=facts.cpu_vendor,
                                cpu_flags=facts.cpu_flags)
        return None

    async def _template(self, conn: HostConnection, template: str) -> Template:
        """The template as ``conn``'s host has it (read once per connection): a domain of that
        name, or a domain XML file; and the volumes of its disks."""
        key = (conn.name, template)
        found = self.templates.get(key)
        if found is not None:
            return found
        from_file = template.startswith("/")
        xml_text = await asyncio.to_thread(Path(template).read_text) if from_file else None

        def read(c: Any) -> Template:
            xml = xml_text if xml_text is not None else \
                c.lookupByName(template).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            facts = parse_domain(xml)
            volumes: dict[str, tuple[str, Any]] = {}
            for disk in facts.disks:
                if disk.pool and disk.volume:
                    vol = c.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume)
                    pool = disk.pool
                elif disk.path:
                    vol = c.storageVolLookupByPath(disk.path)
                    pool = vol.storagePoolLookupByVolume().name()
                else:
                    continue
                volumes[disk.target] = (pool, parse_volume(vol.XMLDesc(0)))
            return Template(xml, facts, volumes)

        try:
            found = await conn.call("read template", template, read, vm=template)
        except OSError as exc:
            raise ProviderError(f"libvirt provider {self.name!r}: template file {template!r} unreadable: "
                                f"{exc.strerror}", retryable=False) from None
        except ValueError as exc:
            raise ProviderError(f"libvirt template {template!r} on host {conn.name!r}: {exc}",
                                retryable=False) from None
        self.templates[key] = found
        return found

    # -- create ----------------------------------------------------------------------------

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        """Create ``specs`` on ``host`` in one pass over its connection (one worker thread)."""
        conn = self.hosts.get(host)
        if conn is None:
            raise HostUnavailable(f"libvirt provider {self.name!r} has no host {host!r}")
        if not conn.up:
            raise HostUnavailable(f"libvirt host {host!r} is not connected ({conn.error or 'connecting'})")
        results: dict[str, CreateResult] = {}
        todo: list[VmSpec] = []
        templates: dict[str, Template] = {}
        for spec in specs:
            if spec.name in self.domains or spec.name in self.pending or any(s.name == spec.name for s in todo):
                results[spec.name] = CreateResult(spec.name, False, f"libvirt host {host!r}: a domain named "
                                                  f"{spec.name!r} already exists", retryable=False)
                continue
            if spec.template not in templates:
                try:
                    templates[spec.template] = await self._template(conn, spec.template)
                except VmNotFound:
                    results[spec.name] = CreateResult(spec.name, False, f"libvirt host {host!r} has no template "
                                                      f"{spec.template!r}", retryable=False)
                    continue
                except HostUnavailable:
                    raise
                except ProviderError as exc:
                    results[spec.name] = CreateResult(spec.name, False, str(exc), retryable=exc.retryable)
                    continue
            todo.append(spec)
        now = time.time()
        for spec in todo:
            self.pending[spec.name] = Pending(host, spec, now)
        try:
            made = await conn.call("create", f"{len(todo)} VMs", lambda c: self._create_all(
                Lookups(c), conn.name, todo, templates, now)) if todo else []
        finally:
            for spec in todo:
                self.pending.pop(spec.name, None)
        for spec, (result, uuid, xml) in zip(todo, made, strict=True):
            results[spec.name] = result
            if result.ok and uuid is not None and xml is not None:
                self._created(host, spec, uuid, xml)
            elif not result.ok and spec.name in self.domains and self.domains[spec.name].host == host:
                del self.domains[spec.name]  # defined, then undone
                self.changes.touch("vm", spec.name)
        return [results[spec.name] for spec in specs]

    def _created(self, host: str, spec: VmSpec, uuid: str, xml: str) -> None:
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
        self.changes.touch("vm", spec.name)
        self.changes.touch("host", host)

    def _create_all(self, c: Lookups, host: str, specs: list[VmSpec], templates: dict[str, Template],
                    now: float) -> list[tuple[CreateResult, str | None, str | None]]:
        """Every VM of one create call, one after the other on the host's connection; a lost
        connection fails the VMs not yet made (retryably) instead of trying each."""
        out: list[tuple[CreateResult, str | None, str | None]] = []
        lost: str | None = None
        for spec in specs:
            if lost is not None:
                out.append((CreateResult(spec.name, False, lost), None, None))
                continue
            result, fault = self._create_one(c, host, spec, templates[spec.template], now)
            out.append(result)
            if fault is not None and fault.connection_lost:
                lost = fault.message
        return out

    def _create_one(self, c: Lookups, host: str, spec: VmSpec, template: Template,
                    now: float) -> tuple[tuple[CreateResult, str | None, str | None], Fault | None]:
        """One VM, in a worker thread: clone its disks, define it, start it; undone on failure."""
        pool = self.pools.get(spec.pool) or LibvirtPool(spec.pool, spec.template)
        made: list[Any] = []
        dom: Any = None
        stage = "clone disk"
        try:
            disks: dict[str, DiskSource] = {}
            for target, (source_pool, volume) in template.volumes.items():
                target_pool = pool.storage_pool or source_pool
                name = volume_name_for(spec.name, target, volume.name)
                storage = c.pool(target_pool)
                if pool.linked_clone:
                    made.append(storage.createXML(volume_overlay_xml(name, volume.capacity_bytes, volume.path,
                                                                     volume.format), 0))
                    fmt: str | None = "qcow2"
                else:
                    original = c.volume(source_pool, volume.name)
                    made.append(storage.createXMLFrom(volume_clone_xml(name, volume.capacity_bytes, volume.format),
                                                      original, 0))
                    fmt = volume.format
                disks[target] = DiskSource(target=target, pool=target_pool, volume=name, path=None, format=fmt)
            xml = clone_domain(template.xml, name=spec.name, disks=disks, pool=spec.pool, template=spec.template,
                               created_at=now)
            stage = "define"
            dom = c.conn.defineXML(xml)
            stage = "start"
            dom.create()
            return (CreateResult(spec.name, True), dom.UUIDString(), xml), None
        except libvirt.libvirtError as exc:
            fault = classify(exc.get_error_code() or 0, exc.get_error_message() or str(exc),
                             operation=stage, subject=spec.name, host=host)
            if not fault.connection_lost:
                self._undo(dom, made)
            return (CreateResult(spec.name, False, fault.message, retryable=fault.retryable), None, None), fault

    @staticmethod
    def _undo(dom: Any, volumes: list[Any]) -> None:
        """Remove what a failed create made (best effort: the reconcile finds what is left)."""
        if dom is not None:
            try:
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(_UNDEFINE)
            except libvirt.libvirtError:
                pass
        for vol in volumes:
            try:
                vol.delete(0)
            except libvirt.libvirtError:
                pass

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        """Define each VM again on ``host`` from the definition corral keeps, and start it (its
        disks are on storage both hosts see), when the host it was on is down."""
        conn = self.hosts.get(host)
        if conn is None or not conn.up:
            raise HostUnavailable(f"libvirt host {host!r} is not connected")
        results: list[CreateResult] = []
        for name in names:
            domain = self.domains.get(name)
            if domain is None:
                results.append(CreateResult(name, False, f"VM {name!r} does not exist", retryable=False))
                continue
            if domain.active and self.hosts[domain.host].up:
                results.append(CreateResult(name, False, f"VM {name!r} still runs on host {domain.host!r}, which is up",
                                            retryable=False))
                continue
            if domain.xml is None:
                results.append(CreateResult(name, False, f"VM {name!r}: corral has no definition of it to start it "
                                            f"elsewhere", retryable=False))
                continue
            xml = domain.xml

            def define(c: Any, xml: str = xml) -> str:
                dom = c.defineXML(xml)
                dom.create()
                return str(dom.UUIDString())

            try:
                uuid = await conn.call("start", name, define, vm=name)
            except ProviderError as exc:
                results.append(CreateResult(name, False, str(exc), retryable=exc.retryable))
                continue
            self.domains[name] = replace(domain, host=host, uuid=uuid, active=True)
            self.known[uuid] = domain.facts
            self.changes.touch("vm", name)
            self.changes.touch("host", host)
            results.append(CreateResult(name, True))
        return results

    # -- one VM ----------------------------------------------------------------------------

    def _where(self, name: str) -> HostConnection:
        domain = self.domains.get(name)
        if domain is None:
            raise VmNotFound(name)
        return self.hosts[domain.host]

    async def destroy_vm(self, name: str) -> None:
        """Power off, undefine (snapshots, managed save and NVRAM included) and delete the disks
        that are the VM's own (volumes named after it)."""
        conn = self._where(name)

        def destroy(c: Any) -> None:
            dom = c.lookupByName(name)
            facts = parse_domain(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
            if dom.isActive():
                dom.destroy()
            dom.undefineFlags(_UNDEFINE | (libvirt.VIR_DOMAIN_UNDEFINE_NVRAM if facts.has_nvram else 0))
            for disk in facts.disks:
                if disk.pool and disk.volume and disk.volume.startswith(f"{name}-"):
                    try:
                        c.storagePoolLookupByName(disk.pool).storageVolLookupByName(disk.volume).delete(0)
                    except libvirt.libvirtError as exc:
                        if classify(exc.get_error_code() or 0, str(exc), operation="delete", subject=disk.volume,
                                    host=conn.name).kind != "not_found":
                            raise

        await conn.call("destroy", name, destroy, vm=name)
        domain = self.domains.pop(name, None)
        self.changes.touch("vm", name)
        if domain is not None:
            self.changes.touch("host", domain.host)

    async def power_on(self, name: str) -> None:
        await self._where(name).call("power on", name, lambda c: c.lookupByName(name).create(), vm=name)
        self._set_active(name, True)

    async def power_off(self, name: str) -> None:
        await self._where(name).call("power off", name, lambda c: c.lookupByName(name).destroy(), vm=name)
        self._set_active(name, False)

    def _set_active(self, name: str, active: bool) -> None:
        domain = self.domains.get(name)
        if domain is not None and domain.active != active:
            domain.active = active
            self.changes.touch("vm", name)
            self.changes.touch("host", domain.host)

    async def migrate_vm(self, name: str, host: str) -> None:
        """Live migration (``migrateToURI3``, peer to peer) to ``host``; disks on shared storage."""
        source = self._where(name)
        if self.cannot_migrate:
            raise ProviderError(f"cannot migrate {name!r}: {self.cannot_migrate}", retryable=False)
        target = self.hosts.get(host)
        if target is None:
            raise HostUnavailable(f"libvirt provider {self.name!r} has no host {host!r}")
        uri = target.uri
        flags = (libvirt.VIR_MIGRATE_LIVE | libvirt.VIR_MIGRATE_PEER2PEER | libvirt.VIR_MIGRATE_PERSIST_DEST
                 | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE)
        await source.call("migrate", name, lambda c: c.lookupByName(name).migrateToURI3(uri, {}, flags), vm=name)
        domain = self.domains.get(name)
        if domain is not None and domain.host != host:
            domain.host = host
            self.changes.touch("vm", name)
            self.changes.touch("host", source.name)
            self.changes.touch("host", host)

    async def vm_ready(self, name: str) -> bool:
        """Running and accepting TCP connections on the readiness port, at its name (with its
        pool's domain) or at the address libvirt reports (``guest_ip``)."""
        domain = self.domains.get(name)
        if domain is None:
            if name in self.pending:
                return False
            raise VmNotFound(name)
        if not domain.active:
            return False
        if self.ready.address == "guest_ip":
            address = domain.ip or await self._address(domain)
            if address is None:
                return False
        else:
            pool = self.pools.get(domain.facts.pool or "")
            address = f"{name}.{pool.domain}" if pool is not None and pool.domain else name
        return await self.probe(address, self.ready.port, self.ready.timeout)

    async def _address(self, domain: Domain) -> str | None:
        """The guest's first IPv4 address: from the DHCP leases, else from the guest agent."""

        def read(c: Any) -> str | None:
            dom = c.lookupByName(domain.name)
            for source in (libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_LEASE,
                           libvirt.VIR_DOMAIN_INTERFACE_ADDRESSES_SRC_AGENT):
                try:
                    interfaces = dom.interfaceAddresses(source, 0) or {}
                except libvirt.libvirtError:
                    continue
                for interface in interfaces.values():
                    for addr in interface.get("addrs") or []:
                        if addr.get("type") == libvirt.VIR_IP_ADDR_TYPE_IPV4 and addr.get("addr"):
                            return str(addr["addr"])
            return None

        try:
            domain.ip = await self.hosts[domain.host].call("read address", domain.name, read, vm=domain.name)
        except VmNotFound:
            return None
        if domain.ip:
            self.changes.touch("vm", domain.name)
        return domain.ip

    async def add_disk(self, name: str, size_gb: int) -> None:
        """A new empty qcow2 volume beside the VM's first disk, attached live where the driver
        can, else added to the definition (it is there from the next boot)."""
        conn = self._where(name)
        default_pool = self.settings.storage_pool

        def add(c: Any) -> None:
            dom = c.lookupByName(name)
            xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            facts = parse_domain(xml)
            storage_name = next((d.pool for d in facts.disks if d.pool), None) or default_pool
            if storage_name is None:
                raise ProviderError(f"VM {name!r}: no storage pool for a new disk (set the provider's "
                                    "storage_pool)", retryable=False)
            target = next_disk_target(xml)
            volume = f"{name}-{target}.qcow2"
            vol = c.storagePoolLookupByName(storage_name).createXML(new_volume_xml(volume, size_gb * 1024**3), 0)
            source = DiskSource(target=target, pool=storage_name, volume=volume, path=None, format="qcow2")
            try:
                flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
                try:
                    dom.attachDeviceFlags(disk_device_xml(target, source), flags)
                except libvirt.libvirtError as exc:
                    if classify(exc.get_error_code() or 0, str(exc), operation="attach", subject=name,
                                host=conn.name).kind != "unsupported":
                        raise
                    c.defineXML(with_disk(xml, target, source))
            except BaseException:
                try:
                    vol.delete(0)
                except libvirt.libvirtError:
                    pass
                raise

        await conn.call("add disk", name, add, vm=name)

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        from xml.sax.saxutils import escape

        xml = f"<domainsnapshot><name>{escape(snapshot)}</name></domainsnapshot>"
        await self._where(name).call("snapshot", name, lambda c: c.lookupByName(name).snapshotCreateXML(xml, 0),
                                     vm=name)

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        def revert(c: Any) -> bool:
            dom = c.lookupByName(name)
            dom.revertToSnapshot(dom.snapshotLookupByName(snapshot, 0), 0)
            return bool(dom.isActive())

        conn = self._where(name)
        try:
            active = await conn.call("revert", f"{name}/{snapshot}", revert, vm=name)
        except LibvirtFault as exc:
            if exc.fault.kind == "no_snapshot":
                raise ProviderError(f"VM {name!r} has no snapshot {snapshot!r}", retryable=False) from None
            raise
        self._set_active(name, active)
