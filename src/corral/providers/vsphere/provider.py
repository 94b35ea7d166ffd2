"""The vSphere provider: pyvmomi on one shared session, inventory and tasks by change feed."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timezone
from typing import Any

from pyVmomi import vim, vmodl

from corral.domain.models import VmSpec
from corral.pools.readiness import tcp_reachable
from corral.providers.base import (
    CreateResult,
    HostInfo,
    HostUnavailable,
    InventoryUpdate,
    ProviderError,
    ProviderVm,
    TemplateInfo,
    VmNotFound,
)
from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.feed import Feed
from corral.providers.vsphere.linked import TemplateSnapshots, clone_plan, snapshot_template
from corral.providers.vsphere.objects import Obj, moid
from corral.providers.vsphere.scope import Scope
from corral.providers.vsphere.session import Session, fault_message
from corral.providers.vsphere.settings import ReadyCheck, VspherePool, VsphereSettings, resolve_ready_check
from corral.providers.vsphere.tasks import TaskOutcome

log = logging.getLogger("corral.providers.vsphere")

Probe = Callable[[str, int, float], Awaitable[bool]]
NOT_RETRYABLE = (vim.fault.DuplicateName, vim.fault.InvalidName, vmodl.fault.InvalidArgument, vim.fault.NotFound)


class VsphereProvider:
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
        ready: ReadyCheck = ReadyCheck(),
        probe: Probe = tcp_reachable,
    ) -> None:
        self.name = name
        self.settings = settings
        self.pools = pools or {}
        self.create_folders = settings.create_folders if settings.create_folders is not None else create_folders
        self.create_template_delta_disks = settings.create_template_delta_disks \
            if settings.create_template_delta_disks is not None else create_template_delta_disks
        self._snapshots = TemplateSnapshots()  # snapshots made on templates for linked clones
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
        self._counters: dict[str, int] | None = None  # performance counter keys by dotted name
        self._folder_lock = asyncio.Lock()
        # folders this provider made, by (parent moid, name), until the feed reports them
        self._made_folders: dict[tuple[str, str], Obj] = {}
        self._warned: set[str] = set()
        self._noticed = False  # the ignored settings were logged
        self._connected = False

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
                                    f"{self.settings.call_timeout:g} s ({self.feed.error or 'no answer'})") from None
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
            raise ProviderError(f"vSphere provider {self.name!r}: the inventory view is not ready")

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

        objects = await self._call("RetrievePropertiesEx", read)
        snapshot = ObjectCache(self._pool_of_folder, self.cache.scope)
        snapshot.known_pools = self.cache.known_pools  # the VMs this provider cloned are its own
        snapshot.replace(objects, set())
        return snapshot

    async def template_info(self, template: str) -> TemplateInfo | None:
        obj = self._template(template)
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
        """Answered from the feed's copy of the inventory: no call to the vCenter."""
        if not self._connected:
            raise ProviderError(f"vSphere provider {self.name!r} is not connected")
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
            self._counters = await self._call("RetrieveProperties", lambda: {
                f"{c.groupInfo.key}.{c.nameInfo.key}.{c.rollupType}": c.key for c in manager.perfCounter})
        known = self._counters
        missing = [c for c in counters if c not in known]
        if missing:
            raise ProviderError(f"unknown performance counters: {', '.join(missing)}", retryable=False)
        by_key = {known[c]: c for c in counters}
        ids = [vim.PerformanceManager.MetricId(counterId=known[c], instance="") for c in counters]
        hosts = {moid(o.ref): o for o in self.cache.objects.values() if o.kind == "HostSystem"}
        specs = [vim.PerformanceManager.QuerySpec(entity=o.ref, metricId=ids, maxSample=1, intervalId=20)
                 for o in hosts.values()]
        result = await self._call("QueryPerf", lambda: manager.QueryPerf(querySpec=specs)) if specs else []
        out: dict[str, dict[str, float]] = {}
        for entity in result or []:
            name = hosts[moid(entity.entity)].props.get("name", moid(entity.entity))
            values = out.setdefault(name, {})
            for series in entity.value or []:
                if series.value:
                    values[by_key[series.id.counterId]] = float(series.value[-1])
        return out

    # -- create ----------------------------------------------------------------------------

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        """Clone each VM on ``host`` (one CloneVM_Task per VM, run side by side)."""
        target = self._host(host)
        return list(await asyncio.gather(*(self._clone(target, spec) for spec in specs)))

    async def _clone(self, target: Obj, spec: VmSpec) -> CreateResult:
        pool = self.pools.get(spec.pool) or VspherePool(name=spec.pool, template=spec.template, folder=spec.folder,
                                                        linked_clone=False)
        cloned = False
        try:
            if self.cache.vm_obj(spec.name) is not None or spec.name in self.cache.made:
                return CreateResult(spec.name, ok=False, error=f"a VM named {spec.name!r} already exists",
                                    retryable=False)
            await self._snapshots.idle()  # a template being snapshotted is a VM for a moment
            template = self._template(pool.template)
            if template is None:
                return CreateResult(spec.name, ok=False, retryable=False,
                                    error=f"template {pool.template!r} not found in vSphere provider {self.name!r}")
            folder = await self._folder(pool.folder or spec.folder)
            base = await self._linked_base(pool, template, target)
            clone_spec = self._clone_spec(target, pool, spec, template, base)
            self.cache.known_pools[spec.name] = spec.pool  # the clone is this provider's as it enters
            outcome = await self._task("CloneVM_Task", lambda: template.ref.CloneVM_Task(
                folder=folder, name=spec.name, spec=clone_spec))
            if not outcome.ok:
                self.cache.known_pools.pop(spec.name, None)
                retryable = not isinstance(outcome.fault, NOT_RETRYABLE)
                return CreateResult(spec.name, ok=False, error=f"clone failed: {outcome.error}", retryable=retryable)
            vm, cloned = outcome.result, True
            self.cache.remember(spec.name, vm, spec.pool)
            await self._settle(vm, target, clone_spec.config.annotation)
            return CreateResult(spec.name, ok=True)
        except ProviderError as exc:
            if not cloned:
                self.cache.known_pools.pop(spec.name, None)
            return CreateResult(spec.name, ok=False, error=str(exc), retryable=exc.retryable)

    async def _linked_base(self, pool: VspherePool, template: Obj, target: Obj) -> Any:
        """The snapshot a linked clone of ``template`` is made from; None for a full clone."""
        key = moid(template.ref)
        current = getattr(template.props.get("snapshot"), "currentSnapshot", None) or self._snapshots.made(key)
        plan = clone_plan(pool.linked_clone, current is not None, self.create_template_delta_disks,
                          self._snapshots.failed(key))
        if plan == "linked":
            return current
        if plan == "snapshot":
            return await self._snapshots.make(key, lambda: self._snapshot_template(pool.template, template, target))
        if plan == "full_warn" and pool.template not in self._warned:
            self._warned.add(pool.template)
            log.warning("linked clones asked for but the template has no snapshot; making full clones "
                        "(create_template_delta_disks would make one)",
                        extra={"provider": self.name, "template": pool.template})
        return None

    async def _snapshot_template(self, path: str, template: Obj, target: Obj) -> Any:
        """Snapshot a template for linked clones (once: see linked.py); logs a failure."""
        host = self.cache.objects.get(getattr(template.props.get("runtime.host"), "_moId", ""))
        host = host if host is not None and host.kind == "HostSystem" else target  # where it is registered
        try:
            snapshot = await snapshot_template(template.ref, self._resource_pool(host), host.ref,
                                               self._call, self._task)
        except ProviderError as exc:
            log.warning("cannot snapshot the template for linked clones; making full clones",
                        extra={"provider": self.name, "template": path, "error": str(exc)})
            raise
        log.info("snapshot made for linked clones", extra={"provider": self.name, "template": path})
        key = moid(template.ref)
        # until the feed shows a template again, a clone would find none
        await self._until(lambda: bool(getattr(self.cache.objects.get(key), "props", {}).get("config.template")))
        return snapshot

    def _clone_spec(self, target: Obj, pool: VspherePool, spec: VmSpec, template: Obj, base: Any = None) -> Any:
        """The CloneSpec; ``base`` is the snapshot of a linked clone (default: the template's current one)."""
        location = vim.vm.RelocateSpec(host=target.ref, pool=self._resource_pool(target))
        if pool.datastore:
            location.datastore = self._named("Datastore", pool.datastore, "datastore").ref
        snapshot = None
        if pool.linked_clone:
            snapshot = base if base is not None else getattr(template.props.get("snapshot"), "currentSnapshot", None)
            if snapshot is not None:
                location.diskMoveType = "createNewChildDiskBacking"
        notes = {
            "name": spec.name,
            "pool": spec.pool,
            "created_by": self.settings.username,
            "base_template": pool.template,
            "creation_timestamp": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        }
        extra = {"guestinfo.hostname": spec.name, **pool.extra_config}
        config = vim.vm.ConfigSpec(
            annotation=json.dumps(notes),
            extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in extra.items()],
        )
        return vim.vm.CloneSpec(location=location, config=config, powerOn=True, template=False, snapshot=snapshot)

    async def _settle(self, vm: Any, target: Obj, notes: str) -> None:
        """Make sure a fresh clone is what was asked for: on the host, powered on, annotated.

        vCenter honours all three in the clone call itself, and then this is one read. An
        endpoint that placed the VM elsewhere (DRS, or vcsim, which ignores the host and the
        annotation of a clone spec) gets the missing steps as calls of their own.
        """
        paths = ["runtime.host", "runtime.powerState", "config.annotation"]

        def read() -> dict[str, Any]:
            spec = vmodl.query.PropertyCollector
            found = self.session.content.propertyCollector.RetrievePropertiesEx(
                specSet=[spec.FilterSpec(objectSet=[spec.ObjectSpec(obj=vm, skip=False)],
                                         propSet=[spec.PropertySpec(type=vim.VirtualMachine, pathSet=paths)])],
                options=spec.RetrieveOptions())
            return {p.name: p.val for o in (found.objects if found else []) for p in o.propSet or []}

        props = await self._call("RetrievePropertiesEx", read)
        if getattr(props.get("runtime.host"), "_moId", None) != moid(target.ref):
            await self._relocate(vm, target)
        if props.get("config.annotation") != notes:
            outcome = await self._task("ReconfigVM_Task",
                                       lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation=notes)))
            if not outcome.ok:
                raise ProviderError(f"cannot annotate the clone: {outcome.error}")
        if props.get("runtime.powerState") != "poweredOn":
            await self._power(vm, on=True)

    # -- HA restarts -----------------------------------------------------------------------

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        target = self._host(host)
        return list(await asyncio.gather(*(self._start(target, name) for name in names)))

    async def _start(self, target: Obj, name: str) -> CreateResult:
        obj = self.cache.vm_obj(name)
        if obj is None:
            return CreateResult(name, ok=False, error=f"VM {name!r} not found", retryable=False)
        vm = self.cache.vm(name)
        current = self.cache.host(vm.host) if vm is not None and vm.host else None
        if vm is not None and vm.powered_on and current is not None and current.up:
            return CreateResult(name, ok=False, retryable=False,
                                error=f"VM {name!r} is still running on {vm.host}, which is up")
        try:
            await self._relocate(obj.ref, target, name)
            await self._power(obj.ref, on=True, name=name)
        except ProviderError as exc:
            return CreateResult(name, ok=False, error=str(exc), retryable=exc.retryable)
        return CreateResult(name, ok=True)

    # -- changes to one VM -----------------------------------------------------------------

    async def destroy_vm(self, name: str) -> None:
        """Power off and delete; a VM vCenter no longer has (whoever deleted it) is VmNotFound."""
        try:
            vm = self._vm(name)
            await self._power(vm, on=False, name=name)
            outcome = await self._task("Destroy_Task", vm.Destroy_Task, about=(name, vm))
            self._raise(outcome, name, "destroy")
        except VmNotFound:
            self.cache.forget(name)
            raise
        self.cache.forget(name)
        await self._until(lambda: name not in self.cache.vm_ids)

    async def power_on(self, name: str) -> None:
        await self._power(self._vm(name), on=True, name=name)
        await self._until(lambda: (v := self.cache.vm(name)) is not None and v.powered_on)

    async def power_off(self, name: str) -> None:
        await self._power(self._vm(name), on=False, name=name)
        await self._until(lambda: (v := self.cache.vm(name)) is not None and not v.powered_on)

    async def migrate_vm(self, name: str, host: str) -> None:
        vm = self._vm(name)
        await self._relocate(vm, self._host(host), name)
        await self._until(lambda: (v := self.cache.vm(name)) is not None and v.host == host)

    async def add_disk(self, name: str, size_gb: int) -> None:
        vm = self._vm(name)
        devices = await self._call("RetrieveProperties", lambda: vm.config.hardware.device, about=(name, vm))
        controllers = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)] or \
                      [d for d in devices if isinstance(d, vim.vm.device.VirtualController)
                       and not isinstance(d, (vim.vm.device.VirtualIDEController, vim.vm.device.VirtualPCIController,
                                              vim.vm.device.VirtualPS2Controller, vim.vm.device.VirtualSIOController))]
        if not controllers:
            raise ProviderError(f"VM {name!r} has no disk controller to attach a disk to", retryable=False)
        controller = controllers[0]
        used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
        unit = next(u for u in range(16) if u not in used and u != 7)  # 7 is the SCSI controller itself
        disk = vim.vm.device.VirtualDisk(
            key=-1, controllerKey=controller.key, unitNumber=unit, capacityInKB=size_gb * 1024 * 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True,
                                                                  fileName=""),
        )
        change = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        outcome = await self._task("ReconfigVM_Task",
                                   lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])),
                                   about=(name, vm))
        self._raise(outcome, name, "add a disk to")

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        vm = self._vm(name)
        outcome = await self._task("CreateSnapshot_Task", lambda: vm.CreateSnapshot_Task(
            name=snapshot, description="taken by corral", memory=True, quiesce=False), about=(name, vm))
        self._raise(outcome, name, "snapshot")

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        vm = self._vm(name)
        info = await self._call("RetrieveProperties", lambda: vm.snapshot, about=(name, vm))
        found = _find_snapshot(info.rootSnapshotList if info is not None else [], snapshot)
        if found is None:
            raise ProviderError(f"VM {name!r} has no snapshot named {snapshot!r}", retryable=False)
        outcome = await self._task("RevertToSnapshot_Task", found.RevertToSnapshot_Task)
        self._raise(outcome, name, "revert")

    # -- folders ---------------------------------------------------------------------------

    async def _folder(self, path: str | None) -> Any:
        """The VM folder at ``path`` below the datacenter's VM folder, created if allowed."""
        root = self._vm_root()
        if not path or not path.strip("/"):
            return root.ref
        async with self._folder_lock:
            current = root
            for part in path.strip("/").split("/"):
                child = self._child_folder(current, part)
                if child is None:
                    if not self.create_folders:
                        raise ProviderError(f"folder {path!r} not found in vSphere provider {self.name!r} "
                                            "(create_folders would create it)", retryable=False)
                    parent = current.ref
                    index = self.session.content.searchIndex
                    made = await self._call("CreateFolder", lambda: create_folder(parent, part, index))
                    child = Obj("Folder", made, {"name": part})
                    self._made_folders[(moid(current.ref), part)] = child  # no wait for the feed
                current = child
            return current.ref

    async def purge_unconfigured_folders(self) -> list[str]:
        """Destroy the folders (and their VMs) beside the pools' folders that no pool uses.

        vmpooler's ``purge_unconfigured_resources``: for every parent of a configured pool
        folder, each child folder that is neither a pool's folder nor in the allowlist is
        destroyed. Returns the paths destroyed.
        """
        configured = {p.folder.strip("/") for p in self.pools.values() if p.folder}
        allow = set(self.settings.allowlist)
        parents = {path.rpartition("/")[0] for path in configured}
        doomed = []
        for key, obj in list(self.cache.objects.items()):
            if obj.kind != "Folder":
                continue
            path = self.cache.folder_path(key)
            if not path or path in configured or path.rpartition("/")[0] not in parents:
                continue
            if path in allow or obj.props.get("name") in allow:
                continue
            doomed.append((path, obj))
        for path, obj in doomed:
            log.warning("purging unconfigured folder", extra={"provider": self.name, "folder": path})
            outcome = await self._task("Destroy_Task", obj.ref.Destroy_Task)
            if not outcome.ok:
                raise ProviderError(f"cannot purge folder {path!r}: {outcome.error}")
        return [path for path, _ in doomed]

    def _child_folder(self, parent: Obj, name: str) -> Obj | None:
        key = (moid(parent.ref), name)
        found = next((obj for obj in self.cache.child(key[0], name) if obj.kind == "Folder"), None)
        if found is not None:
            self._made_folders.pop(key, None)
            return found
        return self._made_folders.get(key)

    def _vm_root(self) -> Obj:
        wanted = self.settings.datacenter
        for obj in self.cache.named("Datacenter", wanted) if wanted else self.cache.of_kind("Datacenter"):
            if "vmFolder" in obj.props:
                folder = self.cache.objects.get(moid(obj.props["vmFolder"]))
                if folder is not None:
                    return folder
        raise ProviderError(f"vSphere provider {self.name!r}: no datacenter found", retryable=False)

    # -- lookups ---------------------------------------------------------------------------

    def _template(self, path: str) -> Obj | None:
        """A template by its path below the VM folder, or by its name when that is unique."""
        path = path.strip("/")
        folder, _, name = path.rpartition("/")
        for obj in self.cache.named("VirtualMachine", name):
            if obj.props.get("config.template") and \
                    self.cache.folder_path(getattr(obj.props.get("parent"), "_moId", None)) == folder:
                return obj
        by_name = [obj for obj in self.cache.named("VirtualMachine", path) if obj.props.get("config.template")]
        return by_name[0] if len(by_name) == 1 else None

    def _host(self, name: str) -> Obj:
        obj = self.cache.host_obj(name)
        if obj is None:
            raise HostUnavailable(f"host {name!r} is unknown to vSphere provider {self.name!r}")
        info = self.cache.host(name)
        if info is not None and (not info.up or info.maintenance):
            raise HostUnavailable(f"host {name!r} is {'in maintenance' if info.up else 'not connected'}")
        return obj

    def _resource_pool(self, host: Obj) -> Any:
        parent = self.cache.objects.get(getattr(host.props.get("parent"), "_moId", ""))
        if parent is None or parent.props.get("resourcePool") is None:
            raise ProviderError(f"host {host.props.get('name')!r} has no resource pool")
        return parent.props["resourcePool"]

    def _named(self, kind: str, name: str, what: str) -> Obj:
        for obj in self.cache.named(kind, name):
            return obj
        raise ProviderError(f"{what} {name!r} not found in vSphere provider {self.name!r}", retryable=False)

    def _vm(self, name: str) -> Any:
        """The VM's reference: the feed's, or the clone's until the feed reports it; else VmNotFound."""
        obj = self.cache.vm_obj(name)
        if obj is not None:
            return obj.ref
        made = self.cache.made.get(name)
        if made is not None:
            return made
        raise VmNotFound(name)

    # -- calls and tasks -------------------------------------------------------------------

    async def _call(self, label: str, fn: Callable[[], Any], *, about: tuple[str, Any] | None = None) -> Any:
        """One call on the session; ``about`` is the (name, reference) of the VM it works on,
        whose disappearance is :class:`VmNotFound` rather than a failure of the call."""
        try:
            return await self.session.call(label, fn)
        except vmodl.fault.ManagedObjectNotFound as exc:
            if about is not None and _is_gone(exc, about[1]):
                raise VmNotFound(about[0]) from exc
            raise ProviderError(f"{label}: the object is gone ({fault_message(exc)})", retryable=False) from exc
        except vmodl.MethodFault as exc:
            raise ProviderError(f"{label} failed: {fault_message(exc)}",
                                retryable=not isinstance(exc, NOT_RETRYABLE)) from exc
        except OSError as exc:
            raise ProviderError(f"{label}: vCenter unreachable ({type(exc).__name__})") from exc

    async def _task(self, label: str, start: Callable[[], Any], *,
                    about: tuple[str, Any] | None = None) -> TaskOutcome:
        """Start a vCenter task and wait for the feed to report it finished. With ``about``, a
        task that ends because its VM no longer exists is :class:`VmNotFound`."""
        task = await self._call(label, start, about=about)
        outcome = await self.feed.wait_task(task, self.settings.task_timeout)
        if about is not None and not outcome.ok and _is_gone(outcome.fault, about[1]):
            raise VmNotFound(about[0])
        return outcome

    async def _relocate(self, vm: Any, target: Obj, name: str | None = None) -> None:
        spec = vim.vm.RelocateSpec(host=target.ref, pool=self._resource_pool(target))
        about = (name, vm) if name is not None else None
        outcome = await self._task("RelocateVM_Task", lambda: vm.RelocateVM_Task(spec=spec), about=about)
        if not outcome.ok:
            raise ProviderError(f"moving VM to {target.props.get('name')} failed: {outcome.error}")

    async def _power(self, vm: Any, *, on: bool, name: str | None = None) -> None:
        label = "PowerOnVM_Task" if on else "PowerOffVM_Task"
        about = (name, vm) if name is not None else None
        try:
            outcome = await self._task(label, vm.PowerOnVM_Task if on else vm.PowerOffVM_Task, about=about)
        except ProviderError as exc:
            if isinstance(exc.__cause__, vim.fault.InvalidPowerState):
                return  # already in that state
            raise
        if not outcome.ok and not isinstance(outcome.fault, vim.fault.InvalidPowerState):
            raise ProviderError(f"{'power on' if on else 'power off'} failed: {outcome.error}")

    def _raise(self, outcome: TaskOutcome, name: str, verb: str) -> None:
        if outcome.ok:
            return
        if isinstance(outcome.fault, vmodl.fault.ManagedObjectNotFound):
            raise VmNotFound(name)
        raise ProviderError(f"cannot {verb} VM {name!r}: {outcome.error}",
                            retryable=not isinstance(outcome.fault, NOT_RETRYABLE))

    async def _until(self, seen: Callable[[], bool]) -> None:
        """Wait (briefly) until the feed's copy shows a change this provider just made."""
        deadline = asyncio.get_running_loop().time() + self.settings.feed_max_wait + 5
        while not seen():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return  # the change will arrive later; callers do not depend on it
            await self.changes.wait_past(self.changes.version, min(left, 0.5))


def _is_gone(fault: Any, ref: Any) -> bool:
    """Whether ``fault`` says that the object ``ref`` refers to no longer exists."""
    return isinstance(fault, vmodl.fault.ManagedObjectNotFound) and \
        getattr(getattr(fault, "obj", None), "_moId", None) == getattr(ref, "_moId", "")


def create_folder(parent: Any, name: str, search_index: Any) -> Any:
    """The folder ``name`` in ``parent``, made now or found when it exists already.

    It exists when someone else made it meanwhile, or when the feed has not yet reported one
    made by an earlier call. The fault's ``object`` is not used: vCenter names the existing
    entity there, but vcsim names the parent folder, which would put clones one level too high.
    """
    try:
        return parent.CreateFolder(name)
    except vim.fault.DuplicateName:
        found = search_index.FindChild(entity=parent, name=name)
        if not isinstance(found, vim.Folder):
            raise ProviderError(f"cannot make folder {name!r}: something else has that name", retryable=False) from None
        return found


def _find_snapshot(tree: list[Any], name: str) -> Any:
    for node in tree or []:
        if node.name == name:
            return node.snapshot
        found = _find_snapshot(node.childSnapshotList, name)
        if found is not None:
            return found
    return None
