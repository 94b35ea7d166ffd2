"""The vCenter's inventory by change feed, and task completion through the same feed.

One PropertyCollector of the provider's own holds two filters: one over a ContainerView of
the VMs, hosts, compute resources, resource pools, folders, datastores and datacenters, and
one over the TaskManager's ``recentTask``. One ``WaitForUpdatesEx`` loop (on a thread of its
own: it is a long poll) reads both. The first call (version ``""``) returns every object;
later calls return what entered, changed (with their change ops) or left since the version
string vCenter gave last, or nothing after ``maxWaitSeconds``; a truncated update set is
read on at once. No property is read object by object in steady state.

The loop keeps a local copy of every object's properties (:class:`Inventory`) and records
which VMs and hosts changed in a :class:`~corral.providers.changefeed.ChangeFeed`, so the
provider answers ``wait_for_updates`` from memory. When the session is lost, the loop logs in
again, builds a new collector and reads a fresh snapshot; the snapshot is compared with the
copy kept so far, and only real differences reach the feed: VMs that are still there never
look as if they had disappeared.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import HostInfo, ProviderError, ProviderVm
from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere.hostfigures import HostFigures
from corral.providers.vsphere.index import ObjectIndex
from corral.providers.vsphere.scope import Scope, owns
from corral.providers.vsphere.session import Session, fault_message

log = logging.getLogger("corral.providers.vsphere")

PROPERTIES: dict[type, list[str]] = {
    vim.VirtualMachine: [
        "name", "parent", "runtime.host", "runtime.powerState", "guest.toolsRunningStatus",
        "guest.ipAddress", "config.template", "config.annotation", "config.createDate",
        "summary.config.memorySizeMB", "summary.config.numCpu", "snapshot",
    ],
    vim.HostSystem: [
        "name", "parent", "runtime.connectionState", "runtime.inMaintenanceMode", "summary.hardware",
        "summary.quickStats.overallCpuUsage", "summary.quickStats.overallMemoryUsage", "overallStatus",
        "configIssue", "hardware.cpuFeature",
    ],
    vim.ComputeResource: ["name", "parent", "resourcePool"],
    vim.ResourcePool: ["name", "parent"],
    vim.Folder: ["name", "parent"],
    vim.Datastore: ["name"],
    vim.Datacenter: ["name", "parent", "vmFolder", "hostFolder"],
}
TASK_PROPERTIES = ["info.state", "info.error", "info.result", "info.descriptionId"]
MAX_OBJECT_UPDATES = 1000  # per update set; more arrive as a truncated set
PATH_KINDS = ("Folder", "Datacenter")  # the objects folder paths are made of


@dataclass(slots=True)
class Obj:
    """One managed object as the feed last reported it."""

    kind: str  # "VirtualMachine", "HostSystem", ...
    ref: Any  # the pyvmomi managed object (a reference; never read a property through it)
    props: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, ref: Any) -> Obj:
        """An object with no properties yet, its kind named as vSphere names it."""
        return cls(kind=type(ref).__name__.split(".")[-1], ref=ref)


@dataclass(slots=True)
class TaskOutcome:
    ok: bool
    result: Any = None
    error: str | None = None
    fault: Any = None

    @classmethod
    def of(cls, state: Any, result: Any, fault: Any) -> TaskOutcome | None:
        """A finished task's outcome from its ``info``; None while it still runs."""
        if state not in ("success", "error"):
            return None
        return cls(ok=state == "success", result=result, error=fault_message(fault) if fault else None, fault=fault)


def moid(ref: Any) -> str:
    return ref._moId  # type: ignore[no-any-return]


class Inventory:
    """The local copy of the vCenter's objects, and the VM and host views built from it.

    With a ``scope``, the VM views (``vm``, ``vms`` and the VMs an update touches) are only
    the provider's own VMs (see scope.py); lookups by name and the hosts' sums see every VM.
    """

    def __init__(self, pool_of_folder: Callable[[str], str | None], scope: Scope | None = None, *,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.objects: dict[str, Obj] = {}
        self.figures = HostFigures(clock)  # hosts' stats times and decoded CPUs
        self.vm_ids: dict[str, str] = {}  # VM name -> moid (templates excluded)
        self.host_ids: dict[str, str] = {}  # host name -> moid
        self.on_host: dict[str, set[str]] = {}  # host moid -> moids of its VMs (templates excluded)
        # pools of the VMs this process cloned, for when the annotation has not arrived (or an
        # endpoint does not report changes to it, as vcsim does not)
        self.known_pools: dict[str, str] = {}
        # VMs this process cloned that the feed has not reported yet (name -> reference), for
        # the calls that come in between; dropped at the feed's first report of the VM
        self.made: dict[str, Any] = {}
        self._pool_of_folder = pool_of_folder
        self.index = ObjectIndex()  # every object by kind, name and parent (see index.py)
        self._paths: dict[str, str | None] = {}  # folder moid -> folder_path()
        self.scope = scope

    # -- applying updates ------------------------------------------------------------------

    def apply(self, update: Any, touched: set[tuple[str, str]]) -> None:
        """Apply one ObjectUpdate; add the (kind, name) of each VM and host view it may change."""
        key = moid(update.obj)
        kind = update.kind
        if kind == "leave":
            self.figures.forget(key)
            old = self.objects.pop(key, None)
            if old is not None:
                self._touch_related(old, touched)
                self._unindex(key, old)
                if old.kind == "VirtualMachine":
                    self.forget(old.props.get("name"))
            return
        obj = self.objects.get(key)
        if obj is None or kind == "enter":
            if obj is not None:
                self._unindex(key, obj)
            obj = Obj.of(update.obj)
            self.objects[key] = obj
        else:
            self._unindex(key, obj)
            self._touch_related(obj, touched)  # e.g. the host a VM leaves
            self._touch_below(obj, touched)  # a folder renamed or moved: the VMs below, as they were
        for change in update.changeSet:
            _apply_change(obj.props, change)
        self.figures.update(key, obj.kind, update)
        self._index(key, obj)
        self._touch_related(obj, touched)
        if kind != "enter":
            self._touch_below(obj, touched)

    def replace(self, objects: dict[str, Obj], touched: set[tuple[str, str]]) -> None:
        """Swap in a fresh snapshot; touch what differs from the copy kept so far."""
        previous = self.objects
        differ = [key for key, old in previous.items() if objects.get(key) is None or objects[key].props != old.props]
        for key in differ:
            self._touch_related(previous[key], touched)
            self._touch_below(previous[key], touched)
        self.figures.snapshot(previous, objects)
        self.objects = objects
        self.vm_ids.clear()
        self.host_ids.clear()
        self.on_host.clear()
        self.index.clear()
        self._paths.clear()
        for key, obj in objects.items():
            self._index(key, obj)
        # a VM cloned before this snapshot was read and missing from it is gone
        for name in [*self.made, *self.known_pools]:
            if name not in self.vm_ids:
                self.forget(name)
        for key, new in objects.items():
            old = previous.get(key)
            if old is None or old.props != new.props:
                self._touch_related(new, touched)
            if old is not None and old.props != new.props:
                self._touch_below(new, touched)

    def _index(self, key: str, obj: Obj) -> None:
        name = obj.props.get("name")
        self.index.add(key, obj.kind, name, _ref_id(obj.props.get("parent")))
        if obj.kind in PATH_KINDS:
            self._paths.clear()
        if name is None:
            return
        if obj.kind == "VirtualMachine" and not obj.props.get("config.template"):
            self.vm_ids[name] = key
            self.made.pop(name, None)  # the feed reports it: its record is the reference now
            host = _ref_id(obj.props.get("runtime.host"))
            if host is not None:
                self.on_host.setdefault(host, set()).add(key)
        elif obj.kind == "HostSystem":
            self.host_ids[name] = key

    def _unindex(self, key: str, obj: Obj) -> None:
        name = obj.props.get("name")
        self.index.remove(key, obj.kind, name, _ref_id(obj.props.get("parent")))
        if obj.kind in PATH_KINDS:
            self._paths.clear()
        if obj.kind == "VirtualMachine":
            host = _ref_id(obj.props.get("runtime.host"))
            if host is not None and host in self.on_host:
                self.on_host[host].discard(key)
        if obj.kind == "VirtualMachine" and self.vm_ids.get(name) == key:
            del self.vm_ids[name]
        elif obj.kind == "HostSystem" and self.host_ids.get(name) == key:
            del self.host_ids[name]

    def _touch_related(self, obj: Obj, touched: set[tuple[str, str]]) -> None:
        """A VM change touches the VM and its host (the host's sums); a cluster, its hosts."""
        name = obj.props.get("name")
        if obj.kind == "VirtualMachine":
            if name and not obj.props.get("config.template") and self.mine(obj):
                touched.add(("vm", name))
            host = self.name_of(_ref_id(obj.props.get("runtime.host")))
            if host:
                touched.add(("host", host))
        elif obj.kind == "HostSystem":
            if name:
                touched.add(("host", name))
        elif obj.kind in ("ClusterComputeResource", "ComputeResource"):
            hosts = (self.objects[key] for key in self.index.children(moid(obj.ref)))
            touched.update(("host", o.props["name"]) for o in hosts if o.kind == "HostSystem" and "name" in o.props)

    def _touch_below(self, folder: Obj, touched: set[tuple[str, str]]) -> None:
        """A folder's name or place changed: the provider's VMs below it (their pool may have)."""
        if folder.kind != "Folder":
            return
        below = self.index.children(moid(folder.ref))
        while below:
            obj = self.objects.get(below.pop())
            if obj is None:
                continue
            if obj.kind == "Folder":
                below.extend(self.index.children(moid(obj.ref)))
            elif obj.kind == "VirtualMachine":
                self._touch_related(obj, touched)

    def remember(self, name: str, ref: Any, pool: str) -> None:
        """A VM this process just cloned: its pool, and its reference until the feed reports it."""
        self.known_pools[name] = pool
        if name not in self.vm_ids:
            self.made[name] = ref

    def forget(self, name: str | None) -> None:
        """A VM is gone: drop what this process kept about it."""
        self.made.pop(name or "", None)
        self.known_pools.pop(name or "", None)

    # -- views -----------------------------------------------------------------------------

    def mine(self, obj: Obj) -> bool:
        """Whether a VM is the provider's (every VM when the inventory has no scope)."""
        if self.scope is None:
            return True
        p = obj.props
        # the rule is an "or" of its inputs: the annotation is parsed only when the rest says no
        if owns(self.scope, self.folder_path(_ref_id(p.get("parent"))), None, p.get("name") in self.known_pools):
            return True
        noted = annotation(p.get("config.annotation")).get("pool")
        return isinstance(noted, str) and owns(self.scope, None, noted, False)

    def name_of(self, key: str | None) -> str | None:
        obj = self.objects.get(key) if key else None
        return obj.props.get("name") if obj is not None else None

    def vm_obj(self, name: str) -> Obj | None:
        key = self.vm_ids.get(name)
        return self.objects.get(key) if key else None

    def host_obj(self, name: str) -> Obj | None:
        key = self.host_ids.get(name)
        return self.objects.get(key) if key else None

    def of_kind(self, kind: str) -> list[Obj]:
        return [self.objects[key] for key in self.index.of_kind(kind)]

    def named(self, kind: str, name: str) -> list[Obj]:
        """The objects of ``kind`` named ``name`` (names are unique only among siblings)."""
        return [self.objects[key] for key in self.index.named(kind, name)]

    def children(self, parent: str) -> list[Obj]:
        return [self.objects[key] for key in self.index.children(parent)]

    def child(self, parent: str, name: str) -> list[Obj]:
        """The objects named ``name`` whose parent is ``parent`` (a moid)."""
        return [self.objects[key] for key in self.index.child(parent, name)]

    def folder_path(self, key: str | None) -> str | None:
        """The path of a VM folder below its datacenter's VM folder ("" for that folder itself)."""
        if key is None:
            return None
        if key not in self._paths:  # remembered until a folder or datacenter changes
            self._paths[key] = self._walk_up(key)
        return self._paths[key]

    def _walk_up(self, key: str | None) -> str | None:
        parts: list[str] = []
        while key:
            obj = self.objects.get(key)
            if obj is None:
                return None
            if obj.kind != "Folder":
                return None
            parent = _ref_id(obj.props.get("parent"))
            parent_obj = self.objects.get(parent) if parent else None
            if parent_obj is not None and parent_obj.kind == "Datacenter":
                return "/".join(reversed(parts))
            parts.append(obj.props.get("name", ""))
            key = parent
        return None

    def vm(self, name: str) -> ProviderVm | None:
        """The provider's VM of that name (None for another provider's: see ``vm_obj``)."""
        obj = self.vm_obj(name)
        return self._vm_view(obj) if obj is not None and self.mine(obj) else None

    def vms(self) -> list[ProviderVm]:
        every = (self.objects[key] for key in self.vm_ids.values())
        return [self._vm_view(obj) for obj in every if self.mine(obj)]

    def _vm_view(self, obj: Obj) -> ProviderVm:
        p = obj.props
        notes = annotation(p.get("config.annotation"))
        pool = notes.get("pool")
        if not isinstance(pool, str):
            pool = self.known_pools.get(p["name"])
        if pool is None:
            pool = self._pool_of_folder(self.folder_path(_ref_id(p.get("parent"))) or "")
        created = p.get("config.createDate")
        return ProviderVm(
            name=p["name"],
            host=self.name_of(_ref_id(p.get("runtime.host"))) or "",
            pool=pool,
            template=notes.get("base_template") if isinstance(notes.get("base_template"), str) else None,
            powered_on=p.get("runtime.powerState") == "poweredOn",
            ip=p.get("guest.ipAddress") or None,
            guest_ready=p.get("runtime.powerState") == "poweredOn"
            and p.get("guest.toolsRunningStatus") == "guestToolsRunning",
            created_at=created.timestamp() if created is not None else 0.0,
            id=moid(obj.ref),
        )

    def host(self, name: str) -> HostInfo | None:
        obj = self.host_obj(name)
        return self._host_view(obj) if obj is not None else None

    def hosts(self) -> list[HostInfo]:
        return [self._host_view(self.objects[key]) for key in self.host_ids.values()]

    def _host_view(self, obj: Obj) -> HostInfo:
        p = obj.props
        hw = p.get("summary.hardware")
        me = moid(obj.ref)
        allocated = used = 0.0
        count = 0
        for key in self.on_host.get(me, ()):
            vm = self.objects[key].props
            count += 1
            memory = float(vm.get("summary.config.memorySizeMB") or 0)
            allocated += memory
            if vm.get("runtime.powerState") == "poweredOn":
                used += memory
        cluster = self.objects.get(_ref_id(p.get("parent")) or "")
        model = getattr(hw, "cpuModel", "") or ""
        cpu = self.figures.cpu(me, p["name"], p.get("hardware.cpuFeature"))
        return HostInfo(
            name=p["name"],
            cpu_model=model,
            cores=int(getattr(hw, "numCpuCores", 0) or 0),
            mhz=int(getattr(hw, "cpuMhz", 0) or 0),
            memory_mb=int((getattr(hw, "memorySize", 0) or 0) // (1024 * 1024)),
            cpu_used_mhz=float(p.get("summary.quickStats.overallCpuUsage") or 0),
            # quickStats lag by about 20 s: a VM that just powered on counts with its size at once
            memory_used_mb=max(float(p.get("summary.quickStats.overallMemoryUsage") or 0), used),
            up=p.get("runtime.connectionState") == "connected",
            maintenance=bool(p.get("runtime.inMaintenanceMode")),
            vm_count=count,
            cluster=cluster.props.get("name", "") if cluster is not None and cluster.kind == "ClusterComputeResource" else "",
            id=me,
            cpu_vendor=cpu.vendor or _vendor(model),
            cpu_family=cpu.family,
            cpu_flags=cpu.flags,
            health=str(p.get("overallStatus") or "gray"),
            config_issues=len(p.get("configIssue") or []),
            memory_allocated_mb=allocated,
            stats_at=self.figures.stats_at.get(me),
        )


class Feed:
    """The WaitForUpdatesEx loop: keeps :class:`Inventory` current and resolves task waits."""

    def __init__(self, session: Session, inventory: Inventory, changes: ChangeFeed, datacenter: str | None) -> None:
        self.session = session
        self.inventory = inventory
        self.changes = changes
        self.datacenter = datacenter
        self.ready = asyncio.Event()  # the first snapshot is in (or the loop failed for good: ``fatal``)
        self.snapshots = 0  # full snapshots read (1 + one per session loss)
        self.update_sets = 0
        self.error: str | None = None  # why the last loop round failed, if it did
        self.fatal: ProviderError | None = None  # a failure retrying cannot mend; the loop stopped
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"vsphere-feed-{session.name}")
        self._collector: Any = None
        self.views: list[Any] = []  # the ContainerView (and ListView) the filter reads
        self._filters: dict[str, str] = {}  # filter moid -> "inventory" | "tasks"
        self._tasks: dict[str, asyncio.Future[TaskOutcome]] = {}
        self._task_states: dict[str, TaskOutcome] = {}  # finished tasks seen before anyone asked
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=f"vsphere-feed-{self.session.name}")

    async def stop(self) -> None:
        self._stopping = True
        collector = self._collector
        if collector is not None:
            try:  # end the long poll now instead of after maxWaitSeconds
                await asyncio.get_running_loop().run_in_executor(None, collector.CancelWaitForUpdates)
            except Exception:
                pass
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        self._thread.shutdown(wait=False, cancel_futures=True)
        for future in self._tasks.values():
            if not future.done():
                future.set_exception(ProviderError("the vSphere provider closed while a task ran"))
                future.exception()  # whoever still waits gets it; nobody waiting is fine too
        self._tasks.clear()

    # -- tasks -----------------------------------------------------------------------------

    async def wait_task(self, task: Any, timeout: float) -> TaskOutcome:
        """Wait for a vCenter task to finish, as the feed reports it (no polling of the task)."""
        key = moid(task)
        seen = self._task_states.pop(key, None)
        if seen is not None:
            return seen
        future = self._tasks.get(key)
        if future is None:
            future = asyncio.get_running_loop().create_future()
            self._tasks[key] = future
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(future)
        except TimeoutError:
            raise ProviderError(f"vSphere task {key} did not finish within {timeout:g} s") from None
        finally:
            if future.done():
                self._tasks.pop(key, None)

    def _task_update(self, update: Any) -> None:
        key = moid(update.obj)
        if update.kind == "leave":
            return
        props: dict[str, Any] = {}
        for change in update.changeSet:
            _apply_change(props, change)
        outcome = TaskOutcome.of(props.get("info.state"), props.get("info.result"), props.get("info.error"))
        if outcome is None:
            return
        future = self._tasks.get(key)
        if future is not None:
            if not future.done():
                future.set_result(outcome)
        else:
            self._task_states[key] = outcome
            if len(self._task_states) > 2000:  # other sessions' tasks nobody will ask about
                for old in list(self._task_states)[:1000]:
                    del self._task_states[old]

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        version: str | None = None
        generation = -1
        backoff = 0.5
        while not self._stopping:
            try:
                if generation != self.session.generation or self._collector is None:
                    generation = self.session.generation
                    await loop.run_in_executor(self._thread, self._build)
                    version = None
                snapshot: dict[str, Obj] | None = {} if version is None else None
                while True:  # one logical answer: a truncated set is read on at once
                    wait = 0 if snapshot is not None else self.session.settings.feed_max_wait
                    result = await loop.run_in_executor(self._thread, self._wait, version or "", wait)
                    if result is None:
                        break
                    self.update_sets += 1
                    version = result.version
                    self._consume(result, snapshot)
                    if not result.truncated:
                        break
                if snapshot is not None:
                    touched: set[tuple[str, str]] = set()
                    self.inventory.replace(snapshot, touched)
                    self._touch(touched)
                    self.snapshots += 1
                    self._resolve_unseen_tasks()
                    self.ready.set()
                self.error = None
                backoff = 0.5
            except asyncio.CancelledError:
                raise
            except vim.fault.NotAuthenticated:
                if self._stopping:
                    return
                await loop.run_in_executor(self._thread, self.session.relogin, generation)
            except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.RequestCanceled) as exc:
                if self._stopping:
                    return
                self._collector = None  # the collector died with its session: build a new one
                self.error = fault_message(exc)
            except Exception as exc:
                if self._stopping:
                    return
                if isinstance(exc, ProviderError) and not exc.retryable:  # e.g. no such datacenter
                    self.fatal, self.error = exc, str(exc)
                    self.ready.set()
                    return
                self.error = fault_message(exc)
                log.warning("vSphere change feed failed; retrying",
                            extra={"provider": self.session.name, "error": self.error})
                self._collector = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    def _wait(self, version: str, max_wait: int) -> Any:
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max_wait,
                                                            maxObjectUpdates=MAX_OBJECT_UPDATES)
        self.session.last_call = time.monotonic()
        self.session.calls["WaitForUpdatesEx"] += 1
        return self._collector.WaitForUpdatesEx(version=version, options=options)

    def _build(self) -> None:
        """A new collector with the inventory and task filters (on the feed's thread)."""
        content = self.session.content
        collector = content.propertyCollector.CreatePropertyCollector()
        views = content.viewManager
        if self.datacenter:
            found = content.searchIndex.FindByInventoryPath(self.datacenter)
            if not isinstance(found, vim.Datacenter):
                raise ProviderError(f"vSphere datacenter {self.datacenter!r} not found", retryable=False)
            # the datacenter's contents, and the datacenter itself (not inside its own view)
            self.views = [views.CreateContainerView(container=found, type=list(PROPERTIES), recursive=True),
                          views.CreateListView(obj=[found])]
        else:
            self.views = [views.CreateContainerView(container=content.rootFolder, type=list(PROPERTIES),
                                                    recursive=True)]
        inventory = collector.CreateFilter(self.filter_spec(), partialUpdates=True)
        spec = vmodl.query.PropertyCollector
        tasks_traverse = spec.TraversalSpec(name="recent", type=vim.TaskManager, path="recentTask", skip=False)
        tasks = collector.CreateFilter(
            spec.FilterSpec(
                objectSet=[spec.ObjectSpec(obj=content.taskManager, skip=True, selectSet=[tasks_traverse])],
                propSet=[spec.PropertySpec(type=vim.Task, pathSet=TASK_PROPERTIES)],
            ),
            partialUpdates=True,
        )
        self._collector = collector
        self._filters = {moid(inventory): "inventory", moid(tasks): "tasks"}

    def filter_spec(self) -> Any:
        """The inventory's filter: every object of the views, with the properties corral reads."""
        spec = vmodl.query.PropertyCollector
        objects = []
        for view in self.views:
            kind = vim.view.ListView if isinstance(view, vim.view.ListView) else vim.view.ContainerView
            traverse = spec.TraversalSpec(name="view", type=kind, path="view", skip=False)
            objects.append(spec.ObjectSpec(obj=view, skip=True, selectSet=[traverse]))
        prop_sets = [spec.PropertySpec(type=t, pathSet=paths) for t, paths in PROPERTIES.items()]
        return spec.FilterSpec(objectSet=objects, propSet=prop_sets)

    def _consume(self, result: Any, snapshot: dict[str, Obj] | None) -> None:
        touched: set[tuple[str, str]] = set()
        for filter_update in result.filterSet or []:
            which = self._filters.get(moid(filter_update.filter))
            for update in filter_update.objectSet or []:
                if which == "tasks":
                    self._task_update(update)
                elif snapshot is not None:
                    obj = Obj.of(update.obj)
                    for change in update.changeSet:
                        _apply_change(obj.props, change)
                    snapshot[moid(update.obj)] = obj
                else:
                    self.inventory.apply(update, touched)
        if touched:
            self._touch(touched)

    def _touch(self, touched: set[tuple[str, str]]) -> None:
        """Tell the change feed which VMs and hosts changed."""
        for kind, name in touched:
            self.changes.touch(kind, name)  # type: ignore[arg-type]

    def _resolve_unseen_tasks(self) -> None:
        """After a fresh snapshot, tasks asked about but not reported are read once directly."""
        for key, future in list(self._tasks.items()):
            if not future.done():
                asyncio.create_task(self._read_task(key, future))

    async def _read_task(self, key: str, future: asyncio.Future[TaskOutcome]) -> None:
        task = vim.Task(key, self.session.si._stub)
        try:
            info = await self.session.call("RetrieveProperties", lambda: task.info)
        except Exception:
            return
        outcome = TaskOutcome.of(info.state, info.result, info.error)
        if outcome is not None and not future.done():
            future.set_result(outcome)


def annotation(text: Any) -> dict[str, Any]:
    """The JSON notes corral (and vmpooler) write into a VM's annotation; {} when it has none."""
    if not isinstance(text, str) or not text.startswith("{"):
        return {}
    try:
        notes = json.loads(text)
    except ValueError:
        return {}
    return notes if isinstance(notes, dict) else {}


def _apply_change(props: dict[str, Any], change: Any) -> None:
    op, name = change.op, change.name
    if op == "assign":
        props[name] = change.val
    elif op in ("remove", "indirectRemove"):
        if "[" in name:  # an element of an array property left
            base = name.split("[", 1)[0]
            current = list(props.get(base) or [])
            props[base] = current[:-1]
        else:
            props.pop(name, None)
    elif op == "add":
        base = name.split("[", 1)[0]
        props[base] = [*(props.get(base) or []), change.val]


def _ref_id(ref: Any) -> str | None:
    return ref._moId if ref is not None else None


def _vendor(cpu_model: str) -> str:
    lower = cpu_model.lower()
    if "intel" in lower:
        return "GenuineIntel"
    if "amd" in lower:
        return "AuthenticAMD"
    return ""
