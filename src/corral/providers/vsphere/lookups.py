"""The objects a call needs, found in the local copy (no call): a template by its path, a host
that takes VMs, its resource pool, a datastore, a VM's reference, the datacenter's VM folder.

Each lookup reads the copy's indexes by kind, name and parent (``index.py``), so its cost
does not grow with the number of VMs.
"""

from __future__ import annotations

from typing import Any

from corral.providers.base import Cause, HostUnavailable, ProviderError, VmNotFound
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.objects import Obj, moid, ref_id
from corral.providers.vsphere.records import host_in_maintenance, host_up


class Lookups:
    """Lookups in ``cache`` for the provider ``provider`` (named in errors); ``datacenter`` is
    the provider's datacenter setting (None: the first the copy holds)."""

    def __init__(self, provider: str, cache: ObjectCache, datacenter: str | None) -> None:
        self.provider = provider
        self.cache = cache
        self.datacenter = datacenter

    def template(self, path: str) -> Obj | None:
        """A template by its path below the VM folder, or by its name when that is unique."""
        path = path.strip("/")
        folder, _, name = path.rpartition("/")
        for obj in self.cache.named("VirtualMachine", name):
            if obj.props.get("config.template") and \
                    self.cache.folder_path(ref_id(obj.props.get("parent"))) == folder:
                return obj
        by_name = [obj for obj in self.cache.named("VirtualMachine", path) if obj.props.get("config.template")]
        return by_name[0] if len(by_name) == 1 else None

    def host(self, name: str) -> Obj:
        """A host that takes VMs; :class:`HostUnavailable` for one unknown, down or in maintenance."""
        obj = self.cache.host_obj(name)
        if obj is None:
            raise HostUnavailable(f"host {name!r} is unknown to vSphere provider {self.provider!r}")
        up = host_up(obj.props)
        if not up or host_in_maintenance(obj.props):  # read from its properties: no record built per clone
            raise HostUnavailable(f"host {name!r} is {'in maintenance' if up else 'not connected'}")
        return obj

    def resource_pool(self, host: Obj) -> Any:
        """The resource pool of the host's cluster (or standalone compute resource)."""
        parent = self.cache.objects.get(ref_id(host.props.get("parent")) or "")
        if parent is None or parent.props.get("resourcePool") is None:
            raise ProviderError(f"host {host.props.get('name')!r} has no resource pool", cause=Cause.HOST)
        return parent.props["resourcePool"]

    def named(self, kind: str, name: str, what: str) -> Obj:
        """The first object of ``kind`` named ``name``; an error naming ``what`` otherwise."""
        for obj in self.cache.named(kind, name):
            return obj
        raise ProviderError(f"{what} {name!r} not found in vSphere provider {self.provider!r}", retryable=False,
                            cause=Cause.NOT_FOUND)

    def vm(self, name: str) -> Any:
        """The VM's reference: the feed's, or the clone's until the feed reports it; else VmNotFound."""
        obj = self.cache.vm_obj(name)
        if obj is not None:
            return obj.ref
        made = self.cache.made.get(name)
        if made is not None:
            return made
        raise VmNotFound(name)

    def vm_root(self) -> Obj:
        """The VM folder of the provider's datacenter."""
        wanted = self.datacenter
        for obj in self.cache.named("Datacenter", wanted) if wanted else self.cache.of_kind("Datacenter"):
            if "vmFolder" in obj.props:
                folder = self.cache.objects.get(moid(obj.props["vmFolder"]))
                if folder is not None:
                    return folder
        raise ProviderError(f"vSphere provider {self.provider!r}: no datacenter found", retryable=False,
                            cause=Cause.NOT_FOUND)
