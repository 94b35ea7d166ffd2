"""The change feed: two ``WaitForUpdatesEx`` loops keep the inventory and task states current.

Each loop is a :class:`~corral.providers.vsphere.collector.CollectorLoop`: a PropertyCollector
of the provider's own with one filter, read by a long poll on a thread of its own (the
collector's lifecycle, the snapshot, the truncated answers, the relogin and the rebuilds are
described there). :class:`Feed` is the inventory's loop: its filter reads a ContainerView of
the VMs, hosts, compute resources, resource pools, folders, datastores and datacenters. It runs
the second loop, :class:`~corral.providers.vsphere.tasks.TaskFeed` over the TaskManager's
``recentTask``, next to it on the same session, so a task's end never waits behind (nor is
parsed with) an inventory update set, the thousands of objects of a snapshot included.

The inventory loop keeps the local copy (:class:`~corral.providers.vsphere.cache.ObjectCache`)
and records which VMs and hosts changed in a :class:`~corral.providers.changefeed.ChangeFeed`.
A snapshot, after a new collector, is applied whole once its last part is in, and compared
with the copy kept so far: only real differences reach the feed, and VMs that are still there
never look as if they had disappeared.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError
from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.collector import CollectorLoop
from corral.providers.vsphere.objects import PROPERTIES, Obj, apply_change, moid
from corral.providers.vsphere.session import Session
from corral.providers.vsphere.tasks import TaskFeed, TaskOutcome

__all__ = ["Feed"]


class Feed(CollectorLoop):
    """The inventory's loop, and the task loop beside it: keeps the :class:`ObjectCache` current
    and resolves task waits."""

    what = "feed"

    def __init__(self, session: Session, cache: ObjectCache, changes: ChangeFeed, datacenter: str | None,
                 *, first_backoff: float = 0.5) -> None:
        super().__init__(session, first_backoff=first_backoff)
        self.cache = cache
        self.changes = changes
        self.datacenter = datacenter
        self.views: list[Any] = []  # the ContainerView (and ListView) the filter reads
        self.tasks = TaskFeed(session, first_backoff=first_backoff)
        self._snapshot: dict[str, Obj] = {}  # the parts of a snapshot read so far

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self.tasks.start()

    async def stop(self) -> None:
        """End both loops and destroy their collectors and views (before the session logs out).

        Both collectors are destroyed at once, which ends both long polls.
        """
        await asyncio.gather(super().stop(), self.tasks.stop())

    async def wait_task(self, task: Any, timeout: float) -> TaskOutcome:
        """Wait for a vCenter task to finish, as the task loop reports it (no polling of the task)."""
        return await self.tasks.wait_task(task, timeout)

    # -- the loop's side -------------------------------------------------------------------

    def _filter_spec(self, generation: int) -> Any:
        """The views (owned from the moment they exist) and the inventory's filter over them."""
        content = self.session.content
        views = content.viewManager
        if self.datacenter:
            found = content.searchIndex.FindByInventoryPath(self.datacenter)
            if not isinstance(found, vim.Datacenter):
                raise ProviderError(f"vSphere datacenter {self.datacenter!r} not found", retryable=False,
                                    cause=Cause.NOT_FOUND)
            # the datacenter's contents, and the datacenter itself (not inside its own view)
            made = [self._own(generation, views.CreateContainerView(container=found, type=list(PROPERTIES),
                                                                    recursive=True)),
                    self._own(generation, views.CreateListView(obj=[found]))]
        else:
            made = [self._own(generation, views.CreateContainerView(container=content.rootFolder,
                                                                    type=list(PROPERTIES), recursive=True))]
        self.views = made
        return self.filter_spec()

    def _discard(self) -> None:
        self.views = []
        super()._discard()

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

    def _snapshot_begins(self) -> None:
        self._snapshot = {}

    def _consume(self, result: Any, snapshot: bool) -> None:
        """A delta's part is applied at once; a snapshot's parts are kept until the last is in."""
        touched: set[tuple[str, str]] = set()
        for update in self._updates(result):
            if snapshot:
                obj = Obj.of(update.obj)
                for change in update.changeSet:
                    apply_change(obj.props, change)
                self._snapshot[moid(update.obj)] = obj
            else:
                self.cache.apply(update, touched)
        if touched:
            self._touch(touched)

    def _snapshot_read(self) -> None:
        touched: set[tuple[str, str]] = set()
        snapshot, self._snapshot = self._snapshot, {}
        self.cache.replace(snapshot, touched)
        self._touch(touched)

    def _touch(self, touched: set[tuple[str, str]]) -> None:
        """Tell the change feed which VMs and hosts changed."""
        for kind, name in touched:
            self.changes.touch(kind, name)  # type: ignore[arg-type]
