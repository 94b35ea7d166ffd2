"""The local copy of the vCenter's objects, and the VM and host records built from it.

:class:`~corral.providers.vsphere.feed.Feed` keeps the copy current from one
``WaitForUpdatesEx`` loop: :class:`ObjectCache` applies each update (or swaps in a fresh
snapshot, touching only what differs from the copy kept so far) and records which VMs and
hosts changed, so the provider answers ``wait_for_updates`` from memory. No property is read
object by object in steady state. The records themselves are built in ``records.py``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from corral.domain.models import HostInfo, ProviderVm
from corral.providers.vsphere.hostfigures import HostFigures
from corral.providers.vsphere.index import ObjectIndex
from corral.providers.vsphere.objects import PATH_KINDS, Obj, apply_change, moid, ref_id
from corral.providers.vsphere.records import annotation, host_record, vm_record
from corral.providers.vsphere.scope import Scope, owns


class ObjectCache:
    """The local copy of the vCenter's objects, and the VM and host records built from it.

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
            apply_change(obj.props, change)
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
        self.index.add(key, obj.kind, name, ref_id(obj.props.get("parent")))
        if obj.kind in PATH_KINDS:
            self._paths.clear()
        if name is None:
            return
        if obj.kind == "VirtualMachine" and not obj.props.get("config.template"):
            self.vm_ids[name] = key
            self.made.pop(name, None)  # the feed reports it: its record is the reference now
            host = ref_id(obj.props.get("runtime.host"))
            if host is not None:
                self.on_host.setdefault(host, set()).add(key)
        elif obj.kind == "HostSystem":
            self.host_ids[name] = key

    def _unindex(self, key: str, obj: Obj) -> None:
        name = obj.props.get("name")
        self.index.remove(key, obj.kind, name, ref_id(obj.props.get("parent")))
        if obj.kind in PATH_KINDS:
            self._paths.clear()
        if obj.kind == "VirtualMachine":
            host = ref_id(obj.props.get("runtime.host"))
            if host is not None and host in self.on_host:
                self.on_host[host].discard(key)
        if name is None:
            return
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
            host = self.name_of(ref_id(obj.props.get("runtime.host")))
            if host:
                touched.add(("host", host))
        elif obj.kind == "HostSystem":
            if name:
                touched.add(("host", name))
        elif obj.kind in ("ClusterComputeResource", "ComputeResource"):
            hosts = self.children(moid(obj.ref))
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
        """Whether a VM is the provider's (every VM when the cache has no scope)."""
        if self.scope is None:
            return True
        p = obj.props
        # the rule is an "or" of its inputs: the annotation is parsed only when the rest says no
        if owns(self.scope, self.folder_path(ref_id(p.get("parent"))), None, p.get("name") in self.known_pools):
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
            parent = ref_id(obj.props.get("parent"))
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
        host = self.name_of(ref_id(p.get("runtime.host"))) or ""
        return vm_record(moid(obj.ref), p, host, lambda: self._pool_otherwise(p))

    def _pool_otherwise(self, props: dict[str, Any]) -> str | None:
        """A VM's pool when its annotation names none: the pool it was cloned for, else its folder's."""
        pool = self.known_pools.get(props["name"])
        if pool is None:
            pool = self._pool_of_folder(self.folder_path(ref_id(props.get("parent"))) or "")
        return pool

    def host(self, name: str) -> HostInfo | None:
        obj = self.host_obj(name)
        return self._host_view(obj) if obj is not None else None

    def hosts(self) -> list[HostInfo]:
        return [self._host_view(self.objects[key]) for key in self.host_ids.values()]

    def _host_view(self, obj: Obj) -> HostInfo:
        p = obj.props
        me = moid(obj.ref)
        vms = (self.objects[key].props for key in self.on_host.get(me, ()))
        parent = self.objects.get(ref_id(p.get("parent")) or "")
        cluster = parent.props.get("name", "") if parent is not None and parent.kind == "ClusterComputeResource" else ""
        cpu = self.figures.cpu(me, p["name"], p.get("hardware.cpuFeature"))
        return host_record(me, p, vms, cluster, cpu, self.figures.stats_at.get(me))
