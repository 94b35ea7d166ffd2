"""Managed objects as the change feed reports them: a kind, a reference and the properties read.

The feed reads the properties in :data:`PROPERTIES` of every object of its views, and the
task loop a task's ``info``; both apply the property changes of an update set with
:func:`apply_change`. Objects are keyed by their managed object id (:func:`moid`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim

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


def moid(ref: Any) -> str:
    """A managed object's id ("vm-42", "host-7", ...)."""
    return ref._moId  # type: ignore[no-any-return]


def ref_id(ref: Any) -> str | None:
    """The id of a reference held in a property; None when the property holds none."""
    return ref._moId if ref is not None else None


def apply_change(props: dict[str, Any], change: Any) -> None:
    """Apply one PropertyChange (assign, add, remove) to an object's properties."""
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
