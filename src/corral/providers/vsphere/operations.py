"""Operations on existing VMs: power, destroy, migrate, HA restarts, disks and snapshots.

Power, destroy and migrate return once the feed shows their effect. Every call on a VM
vCenter no longer has raises :class:`~corral.providers.base.VmNotFound`: the VM is looked up
in the feed's copy, and a fault about the VM itself is mapped (``faults.py``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyVmomi import vim

from corral.providers.base import Cause, CreateResult, ProviderError, VmNotFound
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.calls import Calls
from corral.providers.vsphere.causes import cause_of
from corral.providers.vsphere.faults import task_error
from corral.providers.vsphere.lookups import Lookups
from corral.providers.vsphere.objects import Obj
from corral.providers.vsphere.tasks import TaskOutcome


class VmOperations:
    """What the provider does to one VM, over ``calls``; VMs and hosts are found by ``lookups``
    in ``cache``, which also shows when a change has arrived."""

    def __init__(self, cache: ObjectCache, lookups: Lookups, calls: Calls) -> None:
        self.cache = cache
        self.lookups = lookups
        self.calls = calls

    # -- power, destroy, migrate -----------------------------------------------------------

    async def destroy(self, name: str) -> None:
        """Power off and delete; a VM vCenter no longer has (whoever deleted it) is VmNotFound."""
        try:
            vm = self.lookups.vm(name)
            await self.power(vm, on=False, name=name)
            outcome = await self.calls.task("Destroy_Task", vm.Destroy_Task, about=(name, vm))
            _check(outcome, name, "destroy")
        except VmNotFound:
            self.cache.forget(name)
            raise
        self.cache.forget(name)
        await self.calls.until(lambda: name not in self.cache.vm_ids)

    async def power_on(self, name: str) -> None:
        await self.power(self.lookups.vm(name), on=True, name=name)
        await self.calls.until(lambda: (v := self.cache.vm(name)) is not None and v.powered_on)

    async def power_off(self, name: str) -> None:
        await self.power(self.lookups.vm(name), on=False, name=name)
        await self.calls.until(lambda: (v := self.cache.vm(name)) is not None and not v.powered_on)

    async def migrate(self, name: str, host: str) -> None:
        vm = self.lookups.vm(name)
        await self.relocate(vm, self.lookups.host(host), name)
        await self.calls.until(lambda: (v := self.cache.vm(name)) is not None and v.host == host)

    async def relocate(self, vm: Any, target: Obj, name: str | None = None) -> None:
        """Move ``vm`` to the host ``target`` (and its cluster's resource pool)."""
        spec = vim.vm.RelocateSpec(host=target.ref, pool=self.lookups.resource_pool(target))
        about = (name, vm) if name is not None else None
        outcome = await self.calls.task("RelocateVM_Task", lambda: vm.RelocateVM_Task(spec=spec), about=about)
        if not outcome.ok:
            raise ProviderError(f"moving VM to {target.props.get('name')} failed: {outcome.error}",
                                cause=cause_of(outcome.fault))

    async def power(self, vm: Any, *, on: bool, name: str | None = None) -> None:
        """Power ``vm`` on or off; a VM already in that state is left alone."""
        label = "PowerOnVM_Task" if on else "PowerOffVM_Task"
        about = (name, vm) if name is not None else None
        try:
            outcome = await self.calls.task(label, vm.PowerOnVM_Task if on else vm.PowerOffVM_Task, about=about)
        except ProviderError as exc:
            if isinstance(exc.__cause__, vim.fault.InvalidPowerState):
                return  # already in that state
            raise
        if not outcome.ok and not isinstance(outcome.fault, vim.fault.InvalidPowerState):
            raise ProviderError(f"{'power on' if on else 'power off'} failed: {outcome.error}",
                                cause=cause_of(outcome.fault))

    # -- HA restarts -----------------------------------------------------------------------

    async def start(self, host: str, names: list[str]) -> list[CreateResult]:
        """Start VMs whose host failed on ``host``: move each there and power it on."""
        target = self.lookups.host(host)
        return list(await asyncio.gather(*(self._start(target, name) for name in names)))

    async def _start(self, target: Obj, name: str) -> CreateResult:
        obj = self.cache.vm_obj(name)
        if obj is None:
            return CreateResult(name, ok=False, error=f"VM {name!r} not found", retryable=False,
                                cause=Cause.NOT_FOUND)
        vm = self.cache.vm(name)
        current = self.cache.host(vm.host) if vm is not None and vm.host else None
        if vm is not None and vm.powered_on and current is not None and current.up:
            return CreateResult(name, ok=False, retryable=False, cause=Cause.REFUSED,
                                error=f"VM {name!r} is still running on {vm.host}, which is up")
        try:
            await self.relocate(obj.ref, target, name)
            await self.power(obj.ref, on=True, name=name)
        except ProviderError as exc:
            return CreateResult(name, ok=False, error=str(exc), retryable=exc.retryable, cause=exc.cause)
        return CreateResult(name, ok=True)

    # -- disks and snapshots ---------------------------------------------------------------

    async def add_disk(self, name: str, size_gb: int) -> None:
        vm = self.lookups.vm(name)
        devices = await self.calls.call("RetrieveProperties", lambda: vm.config.hardware.device, about=(name, vm))
        controllers: list[Any] = [d for d in devices if isinstance(d, vim.vm.device.VirtualSCSIController)] or \
                      [d for d in devices if isinstance(d, vim.vm.device.VirtualController)
                       and not isinstance(d, (vim.vm.device.VirtualIDEController, vim.vm.device.VirtualPCIController,
                                              vim.vm.device.VirtualPS2Controller, vim.vm.device.VirtualSIOController))]
        if not controllers:
            raise ProviderError(f"VM {name!r} has no disk controller to attach a disk to", retryable=False,
                                cause=Cause.REFUSED)
        controller = controllers[0]
        used = {d.unitNumber for d in devices if getattr(d, "controllerKey", None) == controller.key}
        unit = next(u for u in range(16) if u not in used and u != 7)  # 7 is the SCSI controller itself
        disk = vim.vm.device.VirtualDisk(
            key=-1, controllerKey=controller.key, unitNumber=unit, capacityInKB=size_gb * 1024 * 1024,
            backing=vim.vm.device.VirtualDisk.FlatVer2BackingInfo(diskMode="persistent", thinProvisioned=True,
                                                                  fileName=""),
        )
        change = vim.vm.device.VirtualDeviceSpec(operation="add", fileOperation="create", device=disk)
        outcome = await self.calls.task("ReconfigVM_Task",
                                        lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(deviceChange=[change])),
                                        about=(name, vm))
        _check(outcome, name, "add a disk to")

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        vm = self.lookups.vm(name)
        outcome = await self.calls.task("CreateSnapshot_Task", lambda: vm.CreateSnapshot_Task(
            name=snapshot, description="taken by corral", memory=True, quiesce=False), about=(name, vm))
        _check(outcome, name, "snapshot")

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        vm = self.lookups.vm(name)
        info = await self.calls.call("RetrieveProperties", lambda: vm.snapshot, about=(name, vm))
        found = find_snapshot(info.rootSnapshotList if info is not None else [], snapshot)
        if found is None:
            raise ProviderError(f"VM {name!r} has no snapshot named {snapshot!r}", retryable=False,
                                cause=Cause.NOT_FOUND)
        outcome = await self.calls.task("RevertToSnapshot_Task", found.RevertToSnapshot_Task)
        _check(outcome, name, "revert")


def _check(outcome: TaskOutcome, name: str, verb: str) -> None:
    error = task_error(outcome, name, verb)
    if error is not None:
        raise error


def find_snapshot(tree: list[Any], name: str) -> Any:
    """The snapshot named ``name`` in a VM's snapshot tree; None when there is none."""
    for node in tree or []:
        if node.name == name:
            return node.snapshot
        found = find_snapshot(node.childSnapshotList, name)
        if found is not None:
            return found
    return None
