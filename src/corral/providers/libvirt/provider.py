"""The libvirt provider: KVM hosts without a vCenter, one libvirt connection per host.

:class:`LibvirtProvider` composes the parts: a :class:`HostConnection` per host
(``connection.py``: threads, keepalive, reconnects; events arrive through ``events.py``), the
copy of what runs on the hosts (``cache.py``, kept by lifecycle events; a full list of a host
is read only when its connection opens and when the inventory asks for a snapshot, at start
and at each reconcile), the create pass (``cloning.py``) and the other calls (``operations.py``),
both run on the host's worker threads. The change feed (``wait_for_updates``) answers from the
copy, without a call. Host figures come from ``getInfo`` and ``getCapabilities`` at each full
read, and from ``getCPUStats`` / ``getMemoryStats`` every ``host_stats_interval`` seconds
(libvirt has no events for them).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import libvirt

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import (
    Cause,
    CreateResult,
    HostUnavailable,
    InventoryUpdate,
    Provider,
    ProviderError,
    VmNotFound,
)
from corral.providers.changefeed import ChangeFeed
from corral.providers.libvirt import operations
from corral.providers.libvirt.cache import Domain, DomainCache, HostFigures, Pending
from corral.providers.libvirt.cloning import Lookups, Made, Template, create_all, read_template
from corral.providers.libvirt.connection import DomainEvent, HostConnection, LibvirtFault, Opener
from corral.providers.libvirt.hostfigures import cpu_busy, parse_capabilities
from corral.providers.libvirt.settings import LibvirtPool, LibvirtSettings
from corral.providers.probe import ReadyCheck, tcp_reachable

__all__ = ["LibvirtProvider"]

log = logging.getLogger("corral.providers.libvirt")

Probe = Callable[[str, int, float], Awaitable[bool]]

DEFAULT_READY = ReadyCheck()  # :config:'s readiness check when the caller gives none
TEST_DRIVER_CANNOT_MIGRATE = "libvirt's test driver cannot migrate domains"


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
        self.opener = opener
        self.calls: Counter[str] = Counter()  # libvirt calls by name
        self.cannot_migrate: str | None = None
        self.hosts = self._connections()
        self.cache = DomainCache(self.hosts, self._is_up)
        self.templates: dict[tuple[str, str], Template] = {}  # (host, template) -> template, per connection
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stats_task: asyncio.Task[None] | None = None
        self._connected = False

    def _connections(self) -> dict[str, HostConnection]:
        """A connection per host (a closed one cannot open again: each connect gets new ones)."""
        s = self.settings
        return {host.host_name: HostConnection(
            host.host_name, host.uri, concurrency=s.concurrency, call_timeout=s.call_timeout,
            keepalive=(s.keepalive_interval, s.keepalive_count), backoff=(s.reconnect_min, s.reconnect_max),
            calls=self.calls, on_event=self._on_event, on_down=self._on_down, on_up=self._on_up, opener=self.opener)
            for host in s.hosts}

    def _is_up(self, host: str) -> bool:
        return self.hosts[host].up

    @property
    def changes(self) -> ChangeFeed:
        """The change feed's log (the cache's)."""
        return self.cache.changes

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
            self.hosts = self._connections()
            detail = "; ".join(str(exc) for exc in failures.values())
            raise ProviderError(f"libvirt provider {self.name!r}: no host could be reached ({detail})",
                                cause=Cause.UNREACHABLE)
        for name, exc in failures.items():
            if not isinstance(exc, ProviderError):
                raise exc
            log.warning("libvirt host unreachable at start; retrying", extra={"provider": self.name,
                                                                             "provider_host": name, "error": str(exc)})
            conn = self.hosts[name]
            if conn.up:  # opened, but its first read failed: open it again, as after any loss
                conn.lost(str(exc))
            else:
                conn.start_reopening(str(exc))
            self.cache.changes.touch("host", name)
        self._connected = True
        self._stats_task = asyncio.get_running_loop().create_task(self._read_stats(), name=f"libvirt-stats-{self.name}")

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
        await asyncio.gather(*(conn.close() for conn in self.hosts.values()))
        self.hosts = self._connections()
        self.cache.changes.wake_all()

    def _spawn(self, coro: Awaitable[Any], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- reading hosts ---------------------------------------------------------------------

    async def _read_host(self, conn: HostConnection) -> None:
        """Everything on one host: its figures and a full list of its domains."""
        host = conn.name
        if conn.driver.lower() == "test":
            self.cannot_migrate = TEST_DRIVER_CANNOT_MIGRATE
        known = set(self.cache.known)  # a copy: the loop changes the cache while the thread reads
        since = self.cache.changes.version
        read = await conn.call("read", host, lambda c: operations.read_host(c, known))
        figures = self.cache.figures.setdefault(host, HostFigures())
        info = read.info
        figures.model, figures.memory_mb, figures.cores, figures.mhz = str(info[0]), int(info[1]), int(info[2]), \
            int(info[3])
        try:
            figures.cpu = parse_capabilities(read.capabilities)
        except ValueError as exc:
            log.warning("libvirt host capabilities unreadable", extra={"provider_host": host, "error": str(exc)})
        self.cache.apply_list(host, read.domains, since)
        await self._read_use(conn)

    async def _read_use(self, conn: HostConnection) -> None:
        figures = self.cache.figures.setdefault(conn.name, HostFigures())
        want_memory = figures.memory_stats_supported
        use = await conn.call("read host use", conn.name, lambda c: operations.read_use(c, conn.name, want_memory))
        before = (figures.cpu_stats is None, figures.busy, figures.memory_stats)
        figures.busy = cpu_busy(figures.cpu_stats, use.cpu)
        figures.cpu_stats, figures.memory_stats, figures.memory_stats_supported = \
            dict(use.cpu), use.memory, use.memory_supported
        if before != (False, figures.busy, figures.memory_stats):  # a reading that changes nothing is no update
            self.cache.changes.touch("host", conn.name)

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
        self.cache.changes.touch("host", host)  # reported down; its VMs stay as they were until it answers again

    def _on_up(self, host: str) -> None:
        self.templates = {key: t for key, t in self.templates.items() if key[0] != host}
        self._spawn(self._reread(host), f"libvirt-reread-{host}")

    async def _reread(self, host: str) -> None:
        try:
            await self._read_host(self.hosts[host])
        except ProviderError as exc:
            log.warning("libvirt host not read after reconnecting", extra={"provider_host": host, "error": str(exc)})
            self.cache.changes.touch("host", host)  # up again all the same, as the feed must say

    # -- events ----------------------------------------------------------------------------

    def _on_event(self, event: DomainEvent) -> None:
        conn = self.hosts.get(event.host)
        if conn is None or event.generation != conn.generation or not self._connected:
            return  # an event of a connection since replaced
        if self.cache.on_event(event):
            self._spawn(self._refresh(conn, event.name), f"libvirt-refresh-{event.name}")

    async def _refresh(self, conn: HostConnection, name: str) -> None:
        """Read one domain a host reported and corral did not know."""
        try:
            listed = await conn.call("read", name, lambda c: operations.read_domain(c, name), vm=name)
        except ProviderError:
            return  # gone again already, or the host is away: the next full list settles it
        self.cache.apply_one(conn.name, listed)

    # -- reads -----------------------------------------------------------------------------

    async def list_hosts(self) -> list[HostInfo]:
        for conn in list(self.hosts.values()):
            if conn.up:
                try:
                    await self._read_use(conn)
                except ProviderError:
                    pass  # reported as it stands; a lost connection is marked down by the call
        return [self.cache.host_view(host) for host in self.hosts]

    async def list_vms(self) -> list[ProviderVm]:
        """A full list of every host that answers (and corral's copy for those that do not)."""
        await self._read_all()
        return self.cache.vms()

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
            raise ProviderError(f"libvirt provider {self.name!r} is not connected", cause=Cause.SESSION)
        if version is None:
            await self._read_all()
        update = self.cache.update_since(version)
        if update is None:
            await self.cache.changes.wait_past(self.cache.changes.version, timeout)
            update = self.cache.update_since(version)
        return update or InventoryUpdate(version=self.cache.changes.version)

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
        """The template as ``conn``'s host has it, read once per connection."""
        key = (conn.name, template)
        found = self.templates.get(key)
        if found is not None:
            return found
        try:
            xml_text = await asyncio.to_thread(Path(template).read_text) if template.startswith("/") else None
            found = await conn.call("read template", template, lambda c: read_template(c, template, xml_text),
                                    vm=template)
        except OSError as exc:
            raise ProviderError(f"libvirt provider {self.name!r}: template file {template!r} unreadable: "
                                f"{exc.strerror}", retryable=False, cause=Cause.NOT_FOUND) from None
        except ValueError as exc:
            raise ProviderError(f"libvirt template {template!r} on host {conn.name!r}: {exc}",
                                retryable=False, cause=Cause.REFUSED) from None
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
            refused = await self._refusal(conn, spec, templates, {s.name for s in todo})
            if refused is not None:
                results[spec.name] = refused
            else:
                todo.append(spec)
        if todo:
            results.update(await self._create(conn, todo, templates))
        return [results[spec.name] for spec in specs]

    async def _create(self, conn: HostConnection, todo: list[VmSpec],
                      templates: dict[str, Template]) -> dict[str, CreateResult]:
        """One pass over the host's connection. It may take ``call_timeout`` per VM; a pass that
        takes longer is reported failed (not retryable: it may still make them) and is seen to its
        end, whose VMs then reach the inventory like any other."""
        host, now, pending = conn.name, time.time(), self.cache.pending
        for spec in todo:
            pending[spec.name] = Pending(host, spec, now)
        future = conn.submit(lambda c: create_all(Lookups(c), host, todo, templates, self.pools, now))

        def finish(done: asyncio.Future[list[Made]]) -> dict[str, CreateResult]:
            for spec in todo:
                pending.pop(spec.name, None)
            if done.cancelled() or done.exception() is not None:
                return {}
            out = {}
            for spec, (result, uuid, xml) in zip(todo, done.result(), strict=True):
                out[spec.name] = result
                if result.ok and uuid is not None and xml is not None:
                    self.cache.created(host, spec, uuid, xml)
                elif not result.ok:
                    self.cache.undone(host, spec.name)
            return out

        budget = self.settings.call_timeout * len(todo)
        try:
            async with asyncio.timeout(budget):
                await asyncio.shield(future)
        except TimeoutError:
            future.add_done_callback(finish)
            why = f"libvirt host {host!r}: the create call took longer than {budget:g} s; it goes on"
            return {spec.name: CreateResult(spec.name, False, why, retryable=False, cause=Cause.TIMEOUT)
                    for spec in todo}
        except libvirt.libvirtError as exc:  # the pass itself failed (a create's own faults are results)
            finish(future)
            raise conn.fault(exc, "create", f"{len(todo)} VMs", conn.generation) from None
        return finish(future)

    async def _refusal(self, conn: HostConnection, spec: VmSpec, templates: dict[str, Template],
                       batch: set[str]) -> CreateResult | None:
        """Why ``spec`` cannot be created (a taken name, a template the host lacks); None: it can.
        Reads the template into ``templates``."""
        if spec.name in self.cache.domains or spec.name in self.cache.pending or spec.name in batch:
            return CreateResult(spec.name, False, f"libvirt host {conn.name!r}: a domain named {spec.name!r} "
                                "already exists", retryable=False, cause=Cause.REFUSED)
        if spec.template in templates:
            return None
        try:
            templates[spec.template] = await self._template(conn, spec.template)
        except VmNotFound:
            return CreateResult(spec.name, False, f"libvirt host {conn.name!r} has no template {spec.template!r}",
                                retryable=False, cause=Cause.NOT_FOUND)
        except HostUnavailable:
            raise
        except ProviderError as exc:
            return CreateResult(spec.name, False, str(exc), retryable=exc.retryable, cause=exc.cause)
        return None

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        """Define each VM again on ``host`` from the definition corral keeps, and start it (its
        disks are on storage both hosts see), when the host it was on is down."""
        conn = self.hosts.get(host)
        if conn is None or not conn.up:
            raise HostUnavailable(f"libvirt host {host!r} is not connected")
        results: list[CreateResult] = []
        for name in names:
            domain = self.cache.domains.get(name)
            refused = self._start_refusal(name, domain)
            if refused is not None or domain is None or domain.xml is None:
                results.append(refused or CreateResult(name, False, f"VM {name!r} does not exist", retryable=False,
                                                       cause=Cause.NOT_FOUND))
                continue
            xml = domain.xml
            try:
                uuid = await conn.call("start", name, lambda c, xml=xml: operations.define_and_start(c, xml), vm=name)
            except ProviderError as exc:
                results.append(CreateResult(name, False, str(exc), retryable=exc.retryable, cause=exc.cause))
                continue
            self.cache.started_on(name, host, uuid)
            results.append(CreateResult(name, True))
        return results

    def _start_refusal(self, name: str, domain: Domain | None) -> CreateResult | None:
        if domain is None:
            return CreateResult(name, False, f"VM {name!r} does not exist", retryable=False, cause=Cause.NOT_FOUND)
        if domain.active and self.hosts[domain.host].up:
            return CreateResult(name, False, f"VM {name!r} still runs on host {domain.host!r}, which is up",
                                retryable=False, cause=Cause.REFUSED)
        if domain.xml is None:
            return CreateResult(name, False, f"VM {name!r}: corral has no definition of it to start it elsewhere",
                                retryable=False, cause=Cause.REFUSED)
        return None

    # -- one VM ----------------------------------------------------------------------------

    def _where(self, name: str) -> HostConnection:
        domain = self.cache.domains.get(name)
        if domain is None:
            raise VmNotFound(name)
        return self.hosts[domain.host]

    async def destroy_vm(self, name: str) -> None:
        """Power off, undefine (snapshots, managed save and NVRAM included) and delete the disks
        that are the VM's own (volumes named after it). A VM corral no longer knows (its
        domain went, perhaps by a destroy that failed after the undefine) has its volumes looked
        for on every host that answers, then is not found."""
        if name not in self.cache.domains:
            await self._sweep(name)
            raise VmNotFound(name)
        conn = self._where(name)
        try:
            await conn.call("destroy", name, lambda c: operations.destroy(c, name, conn.name), vm=name)
        except VmNotFound:
            self.cache.forget(name)
            raise
        self.cache.forget(name)

    async def _sweep(self, name: str) -> None:
        """Delete the volumes named after ``name`` on every host that answers."""
        for conn in [c for c in self.hosts.values() if c.up]:
            try:
                deleted = await conn.call("delete volumes", name,
                                          lambda c, host=conn.name: operations.delete_own_volumes(c, name, host))
            except ProviderError as exc:
                log.info("volumes of a VM gone not looked for", extra={"provider_host": conn.name, "vm": name,
                                                                       "error": str(exc)})
                continue
            if deleted:
                log.info("deleted the volumes of a VM gone", extra={"provider_host": conn.name, "vm": name,
                                                                    "volumes": deleted})

    async def power_on(self, name: str) -> None:
        await self._where(name).call("power on", name, lambda c: c.lookupByName(name).create(), vm=name)
        self.cache.set_active(name, True)

    async def power_off(self, name: str) -> None:
        await self._where(name).call("power off", name, lambda c: c.lookupByName(name).destroy(), vm=name)
        self.cache.set_active(name, False)

    async def migrate_vm(self, name: str, host: str) -> None:
        """Live migration (``migrateToURI3``, peer to peer) to ``host``; disks on shared storage."""
        source = self._where(name)
        if self.cannot_migrate:
            raise ProviderError(f"cannot migrate {name!r}: {self.cannot_migrate}", retryable=False,
                                cause=Cause.REFUSED)
        target = self.hosts.get(host)
        if target is None:
            raise HostUnavailable(f"libvirt provider {self.name!r} has no host {host!r}")
        uri = target.uri
        await source.call("migrate", name, lambda c: operations.migrate(c, name, uri), vm=name)
        self.cache.moved(name, host)

    async def vm_ready(self, name: str) -> bool:
        """Running and accepting TCP connections on the readiness port, at its name (with its
        pool's domain) or at the address libvirt reports (``guest_ip``)."""
        domain = self.cache.domains.get(name)
        if domain is None:
            if name in self.cache.pending:
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
        try:
            domain.ip = await self.hosts[domain.host].call(
                "read address", domain.name, lambda c: operations.guest_address(c, domain.name), vm=domain.name)
        except VmNotFound:
            return None
        if domain.ip:
            self.cache.touch_vm(domain.name)
        return domain.ip

    async def add_disk(self, name: str, size_gb: int) -> None:
        """A new empty qcow2 volume beside the VM's first disk, attached live where the driver
        can, else added to the definition (it is there from the next boot)."""
        conn = self._where(name)
        default_pool = self.settings.storage_pool
        xml = await conn.call("add disk", name,
                              lambda c: operations.add_disk(c, name, conn.name, size_gb, default_pool), vm=name)
        self.cache.redefined(name, xml)

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        await self._where(name).call("snapshot", name, lambda c: operations.snapshot(c, name, snapshot), vm=name)

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        conn = self._where(name)
        try:
            active = await conn.call("revert", f"{name}/{snapshot}", lambda c: operations.revert(c, name, snapshot),
                                     vm=name)
        except LibvirtFault as exc:
            if exc.fault.kind == "no_snapshot":
                raise ProviderError(f"VM {name!r} has no snapshot {snapshot!r}", retryable=False,
                                    cause=Cause.NOT_FOUND) from None
            raise
        self.cache.set_active(name, active)
