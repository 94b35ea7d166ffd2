"""The pools' VM folders: found in the local copy, created when allowed, and the folders no
pool uses purged (vmpooler's ``purge_unconfigured_resources``).

A folder this provider made is remembered until the feed reports it, so the clones that
follow do not wait for the feed, nor make it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from pyVmomi import vim

from corral.providers.base import Cause, ProviderError
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.calls import Calls
from corral.providers.vsphere.causes import cause_of
from corral.providers.vsphere.lookups import Lookups
from corral.providers.vsphere.objects import Obj, moid
from corral.providers.vsphere.session import Session

log = logging.getLogger("corral.providers.vsphere")


class Folders:
    """The VM folders of the provider ``provider``, read in ``cache``; ``create``: make the
    folders that are missing (``create_folders``)."""

    def __init__(self, provider: str, cache: ObjectCache, lookups: Lookups, calls: Calls, session: Session, *,
                 create: bool) -> None:
        self.provider = provider
        self.cache = cache
        self.lookups = lookups
        self.calls = calls
        self.session = session
        self.create = create
        self._lock = asyncio.Lock()
        # folders this provider made, by (parent moid, name), until the feed reports them
        self._made: dict[tuple[str, str], Obj] = {}

    async def folder(self, path: str | None) -> Any:
        """The VM folder at ``path`` below the datacenter's VM folder, created if allowed."""
        root = self.lookups.vm_root()
        if not path or not path.strip("/"):
            return root.ref
        async with self._lock:
            current = root
            for part in path.strip("/").split("/"):
                child = self.child(current, part)
                if child is None:
                    if not self.create:
                        raise ProviderError(f"folder {path!r} not found in vSphere provider {self.provider!r} "
                                            "(create_folders would create it)", retryable=False,
                                            cause=Cause.NOT_FOUND)
                    made = await self._make(current.ref, part)
                    child = Obj("Folder", made, {"name": part})
                    self._made[(moid(current.ref), part)] = child  # no wait for the feed
                current = child
            return current.ref

    async def _make(self, parent: Any, name: str) -> Any:
        index = self.session.content.searchIndex
        return await self.calls.call("CreateFolder", lambda: create_folder(parent, name, index))

    def child(self, parent: Obj, name: str) -> Obj | None:
        """The folder ``name`` in ``parent``, as the feed reported it or as this provider made it."""
        key = (moid(parent.ref), name)
        found = next((obj for obj in self.cache.child(key[0], name) if obj.kind == "Folder"), None)
        if found is not None:
            self._made.pop(key, None)
            return found
        return self._made.get(key)

    async def purge_unconfigured(self, configured: Iterable[str], allowlist: Iterable[str]) -> list[str]:
        """Destroy the folders (and their VMs) beside the ``configured`` pool folders that no pool uses.

        For every parent of a configured pool folder, each child folder that is neither a
        pool's folder nor in the ``allowlist`` (by path or by name) is destroyed. Returns the
        paths destroyed.
        """
        configured = set(configured)
        allow = set(allowlist)
        parents = {path.rpartition("/")[0] for path in configured}
        doomed = []
        for obj in self.cache.of_kind("Folder"):
            key = moid(obj.ref)
            path = self.cache.folder_path(key)
            if not path or path in configured or path.rpartition("/")[0] not in parents:
                continue
            if path in allow or obj.props.get("name") in allow:
                continue
            doomed.append((path, obj))
        for path, obj in doomed:
            log.warning("purging unconfigured folder", extra={"provider": self.provider, "folder": path})
            outcome = await self.calls.task("Destroy_Task", obj.ref.Destroy_Task)
            if not outcome.ok:
                raise ProviderError(f"cannot purge folder {path!r}: {outcome.error}", cause=cause_of(outcome.fault))
        return [path for path, _ in doomed]


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
            raise ProviderError(f"cannot make folder {name!r}: something else has that name", retryable=False,
                                cause=Cause.REFUSED) from None
        return found
