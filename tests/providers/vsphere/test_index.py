"""The local copy's index: lookups by kind, name and parent stay right through the feed's updates.

The updates are the ObjectUpdates ``WaitForUpdatesEx`` returns, built with pyvmomi; no vCenter
is needed to apply them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from pyVmomi import vim, vmodl

from corral.providers.vsphere import VsphereProvider, VsphereSettings
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.folders import Folders
from corral.providers.vsphere.lookups import Lookups
from corral.providers.vsphere.objects import Obj

PC = vmodl.query.PropertyCollector

DC = vim.Datacenter("datacenter-1")
ROOT = vim.Folder("group-v1")  # the datacenter's VM folder
POOLED = vim.Folder("group-v2")
OTHER = vim.Folder("group-v3")
TEMPLATE = vim.VirtualMachine("vm-1")
VM = vim.VirtualMachine("vm-2")
DS = vim.Datastore("datastore-1")
HOST = vim.HostSystem("host-1")
CLUSTER = vim.ClusterComputeResource("domain-c1")
RP = vim.ResourcePool("resgroup-1")


def update(kind: str, ref: Any, **props: Any) -> Any:
    """An ObjectUpdate; keyword ``config_template`` stands for the property ``config.template``."""
    changes = [PC.Change(name=name.replace("_", "."), op="assign", val=val) for name, val in props.items()]
    return PC.ObjectUpdate(kind=kind, obj=ref, changeSet=changes)


def enter_all() -> list[Any]:
    """A datacenter with a VM folder, two folders in it, a template, a VM, a datastore, a host."""
    return [
        update("enter", DC, name="DC0", vmFolder=ROOT),
        update("enter", ROOT, name="vm", parent=DC),
        update("enter", POOLED, name="Pooled", parent=ROOT),
        update("enter", OTHER, name="Other", parent=ROOT),
        update("enter", TEMPLATE, name="tmpl", parent=POOLED, config_template=True),
        update("enter", VM, name="vm1", parent=POOLED, config_template=False, runtime_host=HOST),
        update("enter", DS, name="ds1"),
        update("enter", CLUSTER, name="C0", parent=ROOT, resourcePool=RP),
        update("enter", HOST, name="h1", parent=CLUSTER),
    ]


def applied(*updates: Any) -> ObjectCache:
    cache = ObjectCache(lambda _path: None)
    for u in [*enter_all(), *updates]:
        cache.apply(u, set())
    return cache


def ids(objs: list[Obj]) -> list[str]:
    return [o.ref._moId for o in objs]


# (what happened after the objects entered, the query, what it finds)
INDEX_TABLE: list[tuple[str, list[Any], tuple[Any, ...], list[str]]] = [
    ("nothing", [], ("named", "Folder", "Pooled"), ["group-v2"]),
    ("nothing", [], ("child", "group-v1", "Pooled"), ["group-v2"]),
    ("nothing", [], ("child", "group-v2", "tmpl"), ["vm-1"]),
    ("nothing", [], ("of_kind", "Datacenter"), ["datacenter-1"]),
    ("nothing", [], ("named", "Datastore", "ds1"), ["datastore-1"]),
    ("folder renamed", [update("modify", POOLED, name="Renamed")], ("named", "Folder", "Pooled"), []),
    ("folder renamed", [update("modify", POOLED, name="Renamed")], ("named", "Folder", "Renamed"), ["group-v2"]),
    ("folder renamed", [update("modify", POOLED, name="Renamed")], ("child", "group-v1", "Pooled"), []),
    ("folder renamed", [update("modify", POOLED, name="Renamed")], ("child", "group-v1", "Renamed"), ["group-v2"]),
    ("template moved", [update("modify", TEMPLATE, parent=OTHER)], ("child", "group-v2", "tmpl"), []),
    ("template moved", [update("modify", TEMPLATE, parent=OTHER)], ("child", "group-v3", "tmpl"), ["vm-1"]),
    ("template moved", [update("modify", TEMPLATE, parent=OTHER)], ("children", "group-v2"), ["vm-2"]),
    ("folder moved", [update("modify", OTHER, parent=POOLED)], ("child", "group-v1", "Other"), []),
    ("folder moved", [update("modify", OTHER, parent=POOLED)], ("child", "group-v2", "Other"), ["group-v3"]),
    ("VM renamed", [update("modify", VM, name="vm9")], ("named", "VirtualMachine", "vm1"), []),
    ("VM renamed", [update("modify", VM, name="vm9")], ("named", "VirtualMachine", "vm9"), ["vm-2"]),
    ("datastore left", [update("leave", DS)], ("named", "Datastore", "ds1"), []),
    ("datastore left", [update("leave", DS)], ("of_kind", "Datastore"), []),
    ("folder left", [update("leave", OTHER)], ("children", "group-v1"), ["group-v2", "domain-c1"]),
    ("entered again", [update("enter", DS, name="ds2")], ("named", "Datastore", "ds1"), []),
    ("entered again", [update("enter", DS, name="ds2")], ("named", "Datastore", "ds2"), ["datastore-1"]),
    ("second of a name", [update("enter", vim.Datastore("datastore-2"), name="ds1")], ("named", "Datastore", "ds1"),
     ["datastore-1", "datastore-2"]),
]


@pytest.mark.parametrize(("what", "updates", "query", "expected"), INDEX_TABLE,
                         ids=[f"{row[0]}: {row[2][0]} {row[2][1:]}" for row in INDEX_TABLE])
def test_the_index_follows_enter_modify_and_leave(what: str, updates: list[Any], query: tuple[Any, ...],
                                                  expected: list[str]) -> None:
    cache = applied(*updates)
    method, *args = query
    assert ids(getattr(cache, method)(*args)) == expected


def test_a_fresh_snapshot_rebuilds_the_index() -> None:
    cache = applied()
    fresh: dict[str, Obj] = {}
    for u in enter_all():
        if u.obj is DS:
            continue  # gone while the session was lost
        obj = Obj.of(u.obj)
        obj.props = {c.name: c.val for c in u.changeSet}
        if u.obj is POOLED:
            obj.props["name"] = "Renamed"
        fresh[u.obj._moId] = obj
    cache.replace(fresh, set())
    assert cache.named("Datastore", "ds1") == [] and cache.of_kind("Datastore") == []
    assert cache.named("Folder", "Pooled") == [] and ids(cache.named("Folder", "Renamed")) == ["group-v2"]
    assert ids(cache.child("group-v2", "tmpl")) == ["vm-1"]


class Parts:
    """A provider's lookups and folders over ``cache`` (never connected: nothing is called)."""

    def __init__(self, cache: ObjectCache, datacenter: str | None = None) -> None:
        settings = VsphereSettings(server="vc.test", username="u", password="p", datacenter=datacenter)
        provider = VsphereProvider("v", settings)
        self.cache = cache
        self.lookups = Lookups("v", cache, datacenter)
        self.folders = Folders("v", cache, self.lookups, provider.vcenter, provider.session, create=False)


def test_provider_lookups_follow_renames_and_moves() -> None:
    provider = Parts(applied())
    assert provider.lookups.template("Pooled/tmpl") is not None and provider.lookups.template("tmpl") is not None
    assert provider.lookups.named("Datastore", "ds1", "datastore").ref is DS
    assert provider.lookups.vm_root().ref is ROOT
    assert provider.folders.child(provider.lookups.vm_root(), "Pooled").ref is POOLED  # type: ignore[union-attr]

    # the same copy, as the feed changes it: folder renamed, then moved, then the template moved
    provider.cache.apply(update("modify", POOLED, name="Renamed"), set())
    assert provider.lookups.template("Pooled/tmpl") is None
    assert provider.lookups.template("Renamed/tmpl").ref is TEMPLATE  # type: ignore[union-attr]
    assert provider.folders.child(provider.lookups.vm_root(), "Pooled") is None
    provider.cache.apply(update("modify", POOLED, parent=OTHER), set())
    assert provider.lookups.template("Other/Renamed/tmpl").ref is TEMPLATE  # type: ignore[union-attr]
    assert provider.lookups.template("Renamed/tmpl") is None
    provider.cache.apply(update("modify", TEMPLATE, parent=OTHER), set())
    assert provider.lookups.template("Other/tmpl").ref is TEMPLATE  # type: ignore[union-attr]
    assert provider.lookups.template("Other/Renamed/tmpl") is None

    # by bare name only while it is unique
    second = vim.VirtualMachine("vm-3")
    provider = Parts(applied(update("enter", second, name="tmpl", parent=OTHER, config_template=True)))
    assert provider.lookups.template("tmpl") is None
    assert provider.lookups.template("Other/tmpl").ref is second  # type: ignore[union-attr]
    assert provider.lookups.template("vm1") is None  # a VM, not a template


class CountingDict(dict[str, Obj]):
    """The local copy's objects, counting every object read: one per get, len(self) per scan."""

    reads = 0

    def get(self, key: Any, default: Any = None) -> Any:
        self.reads += 1
        return super().get(key, default)

    def __getitem__(self, key: str) -> Obj:
        self.reads += 1
        return super().__getitem__(key)

    def values(self) -> Any:
        self.reads += len(self)
        return super().values()

    def items(self) -> Any:
        self.reads += len(self)
        return super().items()

    def keys(self) -> Any:
        self.reads += len(self)
        return super().keys()

    def __iter__(self) -> Iterator[str]:
        self.reads += len(self)
        return super().__iter__()


def big_copy(vms: int) -> CountingDict:
    """``vms`` VMs in 100 pool folders below "Pooled VMs", a template, datastores, a host."""
    objects = CountingDict()

    def put(ref: Any, **props: Any) -> None:
        obj = Obj.of(ref)
        obj.props = {k.replace("_", "."): v for k, v in props.items()}
        objects[ref._moId] = obj

    put(DC, name="DC0", vmFolder=ROOT)
    put(ROOT, name="vm", parent=DC)
    pooled = vim.Folder("group-pooled")
    put(pooled, name="Pooled VMs", parent=ROOT)
    folders = [vim.Folder(f"group-p{i}") for i in range(100)]
    for i, folder in enumerate(folders):
        put(folder, name=f"p{i}", parent=pooled)
    put(CLUSTER, name="C0", parent=ROOT, resourcePool=RP)
    put(HOST, name="h1", parent=CLUSTER)
    for i in range(20):
        put(vim.Datastore(f"datastore-{i}"), name=f"ds{i}")
    templates = vim.Folder("group-templates")
    put(templates, name="Templates", parent=ROOT)
    put(TEMPLATE, name="debian-12", parent=templates, config_template=True)
    for i in range(vms):
        put(vim.VirtualMachine(f"vm-{i + 100}"), name=f"vm{i}", parent=folders[i % 100], config_template=False,
            runtime_host=HOST)
    return objects


def test_a_clones_lookups_read_a_bounded_number_of_objects() -> None:
    objects = big_copy(20_000)
    cache = ObjectCache(lambda _path: None)
    cache.replace(objects, set())
    provider = Parts(cache, datacenter="DC0")
    objects.reads = 0
    template = provider.lookups.template("Templates/debian-12")
    assert template is not None and template.ref is TEMPLATE
    assert provider.lookups.named("Datastore", "ds7", "datastore").props["name"] == "ds7"
    root = provider.lookups.vm_root()
    pooled = provider.folders.child(root, "Pooled VMs")
    assert pooled is not None and provider.folders.child(pooled, "p42") is not None
    assert cache.folder_path("group-p42") == "Pooled VMs/p42"
    assert provider.lookups.resource_pool(cache.host_obj("h1")) is RP  # type: ignore[arg-type]
    # each lookup reads the few objects it finds and their parents: no scan of 20,000
    assert objects.reads < 40, objects.reads
