"""The vSphere provider: pyvmomi on one shared session, inventory and tasks by change feed.

:class:`VsphereProvider` composes the parts: the session (``session.py``), the change feed and
its local copy (``feed.py``, ``cache.py``), the calls and their faults (``calls.py``,
``faults.py``), lookups in the copy (``lookups.py``), folders (``folders.py``), the clone path
(``cloning.py``) and the operations on existing VMs (``operations.py``). It answers the reads
(inventory, readiness, metrics) itself.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from pyVmomi import vim, vmodl

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import Cause, CreateResult, InventoryUpdate, Provider, ProviderError, VmNotFound
from corral.providers.changefeed import ChangeFeed
from corral.providers.probe import ReadyCheck, resolve_ready_check, tcp_reachable
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.calls import Calls
from corral.providers.vsphere.cloning import Cloner
from corral.providers.vsphere.feed import Feed
from corral.providers.vsphere.folders import Folders
from corral.providers.vsphere.lookups import Lookups
from corral.providers.vsphere.objects import Obj, moid
from corral.providers.vsphere.operations import VmOperations
from corral.providers.vsphere.scope import Scope
from corral.providers.vsphere.session import Session
from corral.providers.vsphere.settings import VspherePool, VsphereSettings

log = logging.getLogger("corral.providers.vsphere")

Probe = Callable[[str, int, float], Awaitable[bool]]
DEFAULT_READY = ReadyCheck()  # :config:'s readiness check when the caller gives none


class VsphereProvider(Provider):
    """A vCenter as a corral provider. ``docs/architecture.md`` says how it works and
    ``docs/configuration.md`` what it reads.

    ``pools`` are the vSphere keys of the pools that use this provider (template path,
    folder, datastore, linked clones, domain). ``create_folders``,
    ``create_template_delta_disks`` and ``purge`` are ``:config:``'s defaults of the provider
    keys of those names, and ``ready`` is ``:config:``'s readiness check, each of whose
    ``ready_check_*`` keys the provider's own overrides. ``probe`` makes the check (a TCP
    connect by default).
    """

    bulk_calls = False  # vSphere clones, starts and moves one VM per call
    probes_readiness = True  # the guest being up is not enough: vm_ready connects to it

    def __init__(
        self,
        name: str,
        settings: VsphereSettings,
        pools: dict[str, VspherePool] | None = None,
        *,
        create_folders: bool = False,
        create_template_delta_disks: bool = False,
        purge: bool = False,
        ready: ReadyCheck = DEFAULT_READY,
        probe: Probe = tcp_reachable,
    ) -> None:
        self.name = name
        self.settings = settings
        self.pools = pools or {}
        self.create_folders = settings.create_folders if settings.create_folders is not None else create_folders
        self.create_template_delta_disks = settings.create_template_delta_disks \
            if settings.create_template_delta_disks is not None else create_template_delta_disks
        self.purge = settings.purge or purge
        self.ready = resolve_ready_check(ready, port=settings.ready_check_port, timeout=settings.ready_check_timeout,
                                         address=settings.ready_check_address)
        self.probe = probe
        self.session = Session(name, settings)
        self.changes = ChangeFeed()
        folders: dict[str, list[str]] = {}
        for pool in self.pools.values():
            if pool.folder:
                folders.setdefault(pool.folder.strip("/"), []).append(pool.name)
        self._pool_by_folder = {path: names[0] for path, names in folders.items() if len(names) == 1}
        # on a vCenter shared with other providers, only this provider's VMs are reported
        self.cache = ObjectCache(self._pool_of_folder, Scope.of(self.pools.values()))
        self.feed = Feed(self.session, self.cache, self.changes, settings.datacenter)
        # the calls and tasks every part makes (not ``calls``, which counts calls on the simulator)
        self.vcenter = Calls(self.session, self.feed, self.changes, task_timeout=settings.task_timeout,
                             feed_max_wait=settings.feed_max_wait)
        self.lookups = Lookups(name, self.cache, settings.datacenter)
        self.folders = Folders(name, self.cache, self.lookups, self.vcenter, self.session, create=self.create_folders)
        self.operations = VmOperations(self.cache, self.lookups, self.vcenter)
        self.cloner = Cloner(name, settings.username, self.cache, self.lookups, self.folders, self.operations,
                             self.vcenter, self.session, delta_disks=self.create_template_delta_disks)
        self._counters: dict[str, int] | None = None  # performance counter keys by dotted name
        self._noticed = False  # the ignored settings were logged
        self._connected = False
        self._drops_told = 0  # the feed's failed rounds wait_for_updates has reported

    @property
    def sessions_renewed(self) -> int:  # type: ignore[override]
        """Sessions renewed so far (the session's re-logins, by a call or by the feed)."""
        return self.session.relogins

    def _pool_of_folder(self, path: str) -> str | None:
        """The pool whose folder ``path`` is, when exactly one pool uses it."""
        return self._pool_by_folder.get(path)

    # -- session ---------------------------------------------------------------------------

    async def connect(self) -> None:
        if self._connected:
            return
        if not self._noticed:  # said once, not at every attempt of a provider that cannot be reached
            self._noticed = True
            for notice in self.settings.ignored():
                log.warning("vSphere setting ignored", extra={"provider": self.name, "detail": notice})
        await self.session.connect()
        self.feed.start()
        try:
            try:
                async with asyncio.timeout(self.settings.call_timeout):
                    await self.feed.ready.wait()
            except TimeoutError:
                raise ProviderError(f"vSphere provider {self.name!r}: no inventory within "
                                    f"{self.settings.call_timeout:g} s ({self.feed.error or 'no answer'})",
                                    cause=Cause.TIMEOUT) from None
            if self.feed.fatal is not None:
                raise self.feed.fatal
        except BaseException:
            await self.feed.stop()
            await self.session.close()
            raise
        self._connected = True
        if self.purge:
            purged = await self.purge_unconfigured_folders()
            if purged:
                log.warning("purged unconfigured folders", extra={"provider": self.name, "folders": purged})

    async def close(self) -> None:
        if not self._connected:
            return
        self._connected = False
        await self.feed.stop()
        await self.session.close()
        self.changes.wake_all()

    # -- reads -----------------------------------------------------------------------------

    async def list_vms(self) -> list[ProviderVm]:
        """A full read of every VM (one RetrievePropertiesEx); the feed is the fast path."""
        return (await self._full_read()).vms()

    async def list_hosts(self) -> list[HostInfo]:
        return (await self._full_read()).hosts()

    async def _full_read(self) -> ObjectCache:
        if not self.feed.views:
            raise ProviderError(f"vSphere provider {self.name!r}: the inventory view is not ready", cause=Cause.FEED)

        def read() -> dict[str, Obj]:
            spec = self.feed.filter_spec()
            collector = self.session.content.propertyCollector
            options = vmodl.query.PropertyCollector.RetrieveOptions(maxObjects=1000)
            result = collector.RetrievePropertiesEx(specSet=[spec], options=options)
            objects: dict[str, Obj] = {}
            while result is not None:
                for item in result.objects or []:
                    obj = Obj.of(item.obj)
                    obj.props = {p.name: p.val for p in item.propSet or []}
                    objects[moid(item.obj)] = obj
                if not result.token:
                    break
                result = collector.ContinueRetrievePropertiesEx(token=result.token)
            return objects

        objects = await self.vcenter.call("RetrievePropertiesEx", read)
        snapshot = ObjectCache(self._pool_of_folder, self.cache.scope)
        snapshot.known_pools = dict(self.cache.known_pools)  # the VMs this provider cloned are its own (a copy:
        # the snapshot forgets the names it lacks, and a clone under way is not in it yet)
        snapshot.replace(objects, set())
        return snapshot

    async def template_info(self, template: str) -> TemplateInfo | None:
        obj = self.lookups.template(template)
        if obj is None:
            return None
        return TemplateInfo(name=template, cpus=int(obj.props.get("summary.config.numCpu") or 1),
                            memory_mb=int(obj.props.get("summary.config.memorySizeMB") or 1024))

    async def vm_ready(self, name: str) -> bool:
        """Powered on and accepting TCP connections on the readiness port (vmpooler's rule).

        The address is the VM's name with its pool's domain appended, or the guest IP that
        VMware Tools report when ``ready_check_address`` is ``guest_ip``.
        """
        vm = self.cache.vm(name)
        if vm is None:
            if name not in self.cache.made:
                raise VmNotFound(name)
            return False
        if not vm.powered_on:
            return False
        if self.ready.address == "guest_ip":
            if not vm.ip:
                return False
            address = vm.ip
        else:
            pool = self.pools.get(vm.pool or "")
            address = f"{name}.{pool.domain}" if pool is not None and pool.domain else name
        return await self.probe(address, self.ready.port, self.ready.timeout)

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        """Answered from the feed's copy of the inventory: no call to the vCenter.

        When the feed's loops lost their connection or session since the last answer, the next
        read of changes says so once (a :class:`ProviderError` with cause ``feed``, counted like
        any failure) and the caller asks again; the loops resume on their own meanwhile. A read
        of the whole inventory (``version`` None) is answered as usual. While the session is
        lost and logging in again is refused, every read says so (cause ``session``): the copy
        is not kept current then.
        """
        if not self._connected:
            raise ProviderError(f"vSphere provider {self.name!r} is not connected", cause=Cause.SESSION)
        refused = self.feed.refused or self.feed.tasks.refused
        if refused is not None:
            raise ProviderError(f"vSphere provider {self.name!r}: the change feed is paused: the session was lost "
                                f"and logging in again was refused ({refused}); it is tried again",
                                cause=Cause.SESSION)
        drops = self.feed.drops + self.feed.tasks.drops
        if version is not None and drops > self._drops_told:  # said (and counted) once
            lost, self._drops_told = drops - self._drops_told, drops
            raise ProviderError(f"vSphere provider {self.name!r}: the change feed lost its connection or session "
                                f"({lost}x); it resumes on its own", cause=Cause.FEED)
        changes = self.changes.since(version)
        if changes is not None and changes.empty:
            await self.changes.wait_past(self.changes.version, timeout)
            changes = self.changes.since(version)
        if changes is None:
            return InventoryUpdate(version=self.changes.version, full=True, vms=self.cache.vms(),
                                   hosts=self.cache.hosts())
        views = {name: self.cache.vm(name) for name in changes.vms}  # None: gone, or not ours now
        return InventoryUpdate(
            version=self.changes.version,
            vms=[vm for vm in views.values() if vm is not None],
            removed_vms=[name for name, vm in views.items() if vm is None],
            hosts=[host for host in map(self.cache.host, changes.hosts) if host is not None],
            removed_hosts=[name for name in changes.hosts if name not in self.cache.host_ids],
        )

    async def host_metrics(self, counters: list[str]) -> dict[str, dict[str, float]]:
        """The latest real-time value of each performance counter ("cpu.ready.summation" …)
        for every host, in one ``QueryPerf`` call. Unknown counters are an error naming them."""
        manager = self.session.content.perfManager
        if self._counters is None:  # the vCenter's counter list (hundreds) is read once
            self._counters = await self.vcenter.call("RetrieveProperties", lambda: {
                f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": c.key for c in manager.perfCounter})
        known = self._counters
        missing = [c for c in counters if c not in known]
        if missing:
            raise ProviderError(f"unknown performance counters: {', '.join(missing)}", retryable=False)
        by_key = {known[c]: c for c in counters}
        ids = [vim.PerformanceManager.MetricId(counterId=known[c], instance="") for c in counters]
        hosts = {moid(o.ref): o for o in self.cache.of_kind("HostSystem")}
        specs = [vim.PerformanceManager.QuerySpec(entity=o.ref, metricId=ids, maxSample=1, intervalId=20)
                 for o in hosts.values()]
        result = await self.vcenter.call("QueryPerf", lambda: manager.QueryPerf(querySpec=specs)) if specs else []
        out: dict[str, dict[str, float]] = {}
        for entity in result or []:
            name = hosts[moid(entity.entity)].props.get("name", moid(entity.entity))
            values = out.setdefault(name, {})
            for series in entity.value or []:
                if series.value:
                    values[by_key[series.id.counterId]] = float(series.value[-1])
        return out

    # -- create and HA restarts ------------------------------------------------------------

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        """Clone each VM on ``host`` (one CloneVM_Task per VM, run side by side)."""
        target = self.lookups.host(host)
        return list(await asyncio.gather(*(self._clone(target, spec) for spec in specs)))

    async def _clone(self, target: Obj, spec: VmSpec) -> CreateResult:
        pool = self.pools.get(spec.pool) or VspherePool(name=spec.pool, template=spec.template, folder=spec.folder,
                                                        linked_clone=False)
        return await self.cloner.clone(target, spec, pool)

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        return await self.operations.start(host, names)

    # -- changes to one VM -----------------------------------------------------------------

    async def destroy_vm(self, name: str) -> None:
        """Power off and delete; a VM vCenter no longer has (whoever deleted it) is VmNotFound."""
        await self.operations.destroy(name)

    async def power_on(self, name: str) -> None:
        await self.operations.power_on(name)

    async def power_off(self, name: str) -> None:
        await self.operations.power_off(name)

    async def migrate_vm(self, name: str, host: str) -> None:
        await self.operations.migrate(name, host)

    async def add_disk(self, name: str, size_gb: int) -> None:
        await self.operations.add_disk(name, size_gb)

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        await self.operations.create_snapshot(name, snapshot)

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        await self.operations.revert_snapshot(name, snapshot)

    # -- folders ---------------------------------------------------------------------------

    async def purge_unconfigured_folders(self) -> list[str]:
        """Destroy the folders (and their VMs) beside the pools' folders that no pool uses.

        vmpooler's ``purge_unconfigured_resources``: for every parent of a configured pool
        folder, each child folder that is neither a pool's folder nor in the allowlist is
        destroyed. Returns the paths destroyed.
        """
        configured = {p.folder.strip("/") for p in self.pools.values() if p.folder}
        return await self.folders.purge_unconfigured(configured, self.settings.allowlist)
