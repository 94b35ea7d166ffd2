"""The clone path: one ``CloneVM_Task`` per VM, and what it needs before and after.

A clone finds its template by path in the local copy (no call), its pool's folder (created
when allowed), the snapshot of a linked clone (made on the template first when
``create_template_delta_disks`` is on: ``linked.py``), and clones with the host, its
cluster's resource pool, the datastore, ``guestinfo.hostname`` and a JSON annotation. Then it
reads the clone once: an endpoint that put it elsewhere, or did not annotate or power it on
(DRS, or vcsim, which ignores all three in a clone spec), gets calls of their own for them.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from pyVmomi import vim, vmodl

from corral.domain.models import VmSpec
from corral.providers.base import Cause, CreateResult, ProviderError
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.calls import Calls
from corral.providers.vsphere.causes import cause_of
from corral.providers.vsphere.faults import NOT_RETRYABLE
from corral.providers.vsphere.folders import Folders
from corral.providers.vsphere.linked import TemplateSnapshots, clone_plan, snapshot_template
from corral.providers.vsphere.lookups import Lookups
from corral.providers.vsphere.objects import Obj, moid, ref_id
from corral.providers.vsphere.operations import VmOperations
from corral.providers.vsphere.session import Session
from corral.providers.vsphere.settings import VspherePool

log = logging.getLogger("corral.providers.vsphere")


class Cloner:
    """Clones for the provider ``provider``, logged in as ``username`` (the annotation's
    ``created_by``); ``delta_disks``: snapshot a template that has none for linked clones."""

    def __init__(self, provider: str, username: str, cache: ObjectCache, lookups: Lookups, folders: Folders,
                 operations: VmOperations, calls: Calls, session: Session, *, delta_disks: bool) -> None:
        self.provider = provider
        self.username = username
        self.cache = cache
        self.lookups = lookups
        self.folders = folders
        self.operations = operations
        self.calls = calls
        self.session = session
        self.delta_disks = delta_disks
        self._snapshots = TemplateSnapshots()  # snapshots made on templates for linked clones
        self._warned: set[str] = set()  # templates whose full clones were logged

    async def clone(self, target: Obj, spec: VmSpec, pool: VspherePool) -> CreateResult:
        """Clone ``spec`` of ``pool`` on the host ``target``; the outcome, never an exception."""
        cloned = False
        try:
            if self.cache.vm_obj(spec.name) is not None or spec.name in self.cache.made:
                return CreateResult(spec.name, ok=False, error=f"a VM named {spec.name!r} already exists",
                                    retryable=False, cause=Cause.REFUSED)
            await self._snapshots.idle()  # a template being snapshotted is a VM for a moment
            template = self.lookups.template(pool.template)
            if template is None:
                return CreateResult(spec.name, ok=False, retryable=False, cause=Cause.NOT_FOUND,
                                    error=f"template {pool.template!r} not found in vSphere provider {self.provider!r}")
            folder = await self.folders.folder(pool.folder or spec.folder)
            base = await self._linked_base(pool, template, target)
            clone_spec = self.clone_spec(target, pool, spec, template, base)
            self.cache.known_pools[spec.name] = spec.pool  # the clone is this provider's as it enters
            outcome = await self.calls.task("CloneVM_Task", lambda: template.ref.CloneVM_Task(
                folder=folder, name=spec.name, spec=clone_spec))
            if not outcome.ok:
                self.cache.known_pools.pop(spec.name, None)
                retryable = not isinstance(outcome.fault, NOT_RETRYABLE)
                return CreateResult(spec.name, ok=False, error=f"clone failed: {outcome.error}", retryable=retryable,
                                    cause=cause_of(outcome.fault))
            vm, cloned = outcome.result, True
            self.cache.remember(spec.name, vm, spec.pool)
            await self._settle(vm, target, clone_spec.config.annotation)
            return CreateResult(spec.name, ok=True)
        except ProviderError as exc:
            if not cloned:
                self.cache.known_pools.pop(spec.name, None)
            return CreateResult(spec.name, ok=False, error=str(exc), retryable=exc.retryable, cause=exc.cause)

    async def _linked_base(self, pool: VspherePool, template: Obj, target: Obj) -> Any:
        """The snapshot a linked clone of ``template`` is made from; None for a full clone."""
        key = moid(template.ref)
        current = getattr(template.props.get("snapshot"), "currentSnapshot", None) or self._snapshots.made(key)
        plan = clone_plan(pool.linked_clone, current is not None, self.delta_disks, self._snapshots.failed(key))
        if plan == "linked":
            return current
        if plan == "snapshot":
            return await self._snapshots.make(key, lambda: self._snapshot_template(pool.template, template, target))
        if plan == "full_warn" and pool.template not in self._warned:
            self._warned.add(pool.template)
            log.warning("linked clones asked for but the template has no snapshot; making full clones "
                        "(create_template_delta_disks would make one)",
                        extra={"provider": self.provider, "template": pool.template})
        return None

    async def _snapshot_template(self, path: str, template: Obj, target: Obj) -> Any:
        """Snapshot a template for linked clones (once: see linked.py); logs a failure."""
        host = self.cache.objects.get(ref_id(template.props.get("runtime.host")) or "")
        host = host if host is not None and host.kind == "HostSystem" else target  # where it is registered
        try:
            snapshot = await snapshot_template(template.ref, self.lookups.resource_pool(host), host.ref,
                                               self.calls.call, self.calls.task)
        except ProviderError as exc:
            log.warning("cannot snapshot the template for linked clones; making full clones",
                        extra={"provider": self.provider, "template": path, "error": str(exc)})
            raise
        log.info("snapshot made for linked clones", extra={"provider": self.provider, "template": path})
        key = moid(template.ref)
        # until the feed shows a template again, a clone would find none
        await self.calls.until(lambda: bool(getattr(self.cache.objects.get(key), "props", {}).get("config.template")))
        return snapshot

    def clone_spec(self, target: Obj, pool: VspherePool, spec: VmSpec, template: Obj, base: Any = None) -> Any:
        """The CloneSpec; ``base`` is the snapshot of a linked clone (default: the template's current one)."""
        location = vim.vm.RelocateSpec(host=target.ref, pool=self.lookups.resource_pool(target))
        if pool.datastore:
            location.datastore = self.lookups.named("Datastore", pool.datastore, "datastore").ref
        snapshot = None
        if pool.linked_clone:
            snapshot = base if base is not None else getattr(template.props.get("snapshot"), "currentSnapshot", None)
            if snapshot is not None:
                location.diskMoveType = "createNewChildDiskBacking"
        notes = {
            "name": spec.name,
            "pool": spec.pool,
            "created_by": self.username,
            "base_template": pool.template,
            "creation_timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
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

        props = await self.calls.call("RetrievePropertiesEx", read)
        if ref_id(props.get("runtime.host")) != moid(target.ref):
            await self.operations.relocate(vm, target)
        if props.get("config.annotation") != notes:
            outcome = await self.calls.task("ReconfigVM_Task",
                                            lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation=notes)))
            if not outcome.ok:
                raise ProviderError(f"cannot annotate the clone: {outcome.error}", cause=cause_of(outcome.fault))
        if props.get("runtime.powerState") != "poweredOn":
            await self.operations.power(vm, on=True)
