"""The change feed: one ``WaitForUpdatesEx`` loop keeps the inventory and task states current.

One PropertyCollector of the provider's own holds two filters: one over a ContainerView of
the VMs, hosts, compute resources, resource pools, folders, datastores and datacenters, and
one over the TaskManager's ``recentTask``. One ``WaitForUpdatesEx`` loop (on a thread of its
own: it is a long poll) reads both. The first call (version ``""``) returns every object;
later calls return what entered, changed (with their change ops) or left since the version
string vCenter gave last, or nothing after ``maxWaitSeconds``; the later parts of a truncated
update set are read on at once, with ``maxWaitSeconds`` 0.

The loop keeps the local copy (:class:`~corral.providers.vsphere.inventory.Inventory`) and
records which VMs and hosts changed in a :class:`~corral.providers.changefeed.ChangeFeed`.
When the session is lost, the loop logs in again, builds a new collector and reads a fresh
snapshot; the snapshot is compared with the copy kept so far, and only real differences reach
the feed: VMs that are still there never look as if they had disappeared. A call that never
reached the vCenter is simply made again (:func:`resumable`).

The collector (and its filters) and the views live in the session on the vCenter until they
are destroyed. The feed owns each from the moment it is made and destroys what it replaces,
and everything when it stops (before the session logs out); objects of a lost session died
with it and are only dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import ProviderError
from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere.inventory import PROPERTIES, Inventory, Obj, _apply_change, moid
from corral.providers.vsphere.session import Session, fault_message

log = logging.getLogger("corral.providers.vsphere")

TASK_PROPERTIES = ["info.state", "info.error", "info.result", "info.descriptionId"]
MAX_OBJECT_UPDATES = 1000  # per update set; more arrive as a truncated set


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


def resumable(exc: BaseException, reading_snapshot: bool) -> bool:
    """Whether the feed goes on with its collector and version after ``exc`` (else it builds anew).

    Only a call that never reached the vCenter (the connection was refused, the name did not
    resolve) lost nothing: the next wait asks from the same version, with no new collector and
    no snapshot. A connection that failed later (reset, timed out, closed, an HTTP error) may
    have lost an answer the vCenter counts as delivered, and a vSphere fault with no rule of
    its own may mean the collector is unusable: both take a new collector and snapshot. So
    does any failure while a snapshot is read: a collector asked for version "" again is not
    bound to answer with every object (vcsim answers only with those it has not sent yet).
    """
    return not reading_snapshot and isinstance(exc, (ConnectionRefusedError, socket.gaierror))


class Feed:
    """The WaitForUpdatesEx loop: keeps :class:`Inventory` current and resolves task waits."""

    def __init__(self, session: Session, inventory: Inventory, changes: ChangeFeed, datacenter: str | None,
                 *, first_backoff: float = 0.5) -> None:
        self.session = session
        self.inventory = inventory
        self.changes = changes
        self.datacenter = datacenter
        self.ready = asyncio.Event()  # the first snapshot is in (or the loop failed for good: ``fatal``)
        self.snapshots = 0  # full snapshots read (1 + one per new collector)
        self.update_sets = 0
        self.error: str | None = None  # why the last loop round failed, if it did
        self.fatal: ProviderError | None = None  # a failure retrying cannot mend; the loop stopped
        self._thread: ThreadPoolExecutor | None = None  # the loop's own thread, while it runs
        self._collector: Any = None
        self.views: list[Any] = []  # the ContainerView (and ListView) the filter reads
        self._filters: dict[str, str] = {}  # filter moid -> "inventory" | "tasks"; empty: build anew
        self._version: str | None = None  # of the last update set applied; None: read a snapshot next
        self._first_backoff = first_backoff  # seconds before the first retry after a failure, doubled per failure
        # the collector and views made and not destroyed yet, in the order they were made, each
        # with the session generation it belongs to (it dies with its session)
        self._owned: list[tuple[int, Any]] = []
        self._tasks: dict[str, asyncio.Future[TaskOutcome]] = {}
        self._task_states: dict[str, TaskOutcome] = {}  # finished tasks seen before anyone asked
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=f"vsphere-feed-{self.session.name}")
        self._task = asyncio.create_task(self._run(), name=f"vsphere-feed-{self.session.name}")

    async def stop(self) -> None:
        """End the loop and destroy the collector and views (before the session logs out)."""
        self._stopping = True
        loop = asyncio.get_running_loop()
        # destroying the collector ends its long poll now instead of after maxWaitSeconds, and
        # a wait that starts later fails at once
        await loop.run_in_executor(None, self._discard)
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass
            self._task = None
        if self._thread is not None:
            try:  # and what a build still running on the feed's thread made meanwhile
                async with asyncio.timeout(self.session.settings.feed_max_wait + 5):
                    await loop.run_in_executor(self._thread, self._discard)
            except TimeoutError:
                log.debug("vSphere change feed: its thread did not finish; objects it made are left to the logout",
                          extra={"provider": self.session.name})
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None
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
        generation = -1
        backoff = self._first_backoff
        while not self._stopping:
            try:
                if generation != self.session.generation or not self._filters:
                    generation = self.session.generation
                    await asyncio.get_running_loop().run_in_executor(self._thread, self._build, generation)
                await self._read()
                self.error = None
                backoff = self._first_backoff
            except asyncio.CancelledError:
                raise
            except vim.fault.NotAuthenticated:
                if self._stopping:
                    return
                await asyncio.get_running_loop().run_in_executor(self._thread, self.session.relogin, generation)
            except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.RequestCanceled) as exc:
                if self._stopping:
                    return
                self._filters = {}  # the collector is gone or was cancelled: build a new one
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
                if not resumable(exc, reading_snapshot=self._version is None):
                    self._filters = {}
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _read(self) -> None:
        """Read one answer, a truncated one to its last part, and apply it.

        A snapshot (version ``""``) and the later parts of a truncated answer are there
        already: they are asked for with ``maxWaitSeconds`` 0. The parts of a delta are applied
        as they come, and the version moves with each, so a call that is made again asks for
        what follows the last part applied. A snapshot is applied whole, once its last part is
        in: a failure half-way applies nothing of it.
        """
        loop = asyncio.get_running_loop()
        snapshot: dict[str, Obj] | None = {} if self._version is None else None
        version, truncated = self._version or "", False
        while True:
            wait = 0 if snapshot is not None or truncated else self.session.settings.feed_max_wait
            result = await loop.run_in_executor(self._thread, self._wait, version, wait)
            if result is None:
                break
            self.update_sets += 1
            version, truncated = result.version, bool(result.truncated)
            self._consume(result, snapshot)
            if snapshot is None:
                self._version = version
            if not truncated:
                break
        if snapshot is not None:
            touched: set[tuple[str, str]] = set()
            self.inventory.replace(snapshot, touched)
            self._touch(touched)
            self._version = version
            self.snapshots += 1
            self._resolve_unseen_tasks()
            self.ready.set()

    def _wait(self, version: str, max_wait: int) -> Any:
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max_wait,
                                                            maxObjectUpdates=MAX_OBJECT_UPDATES)
        self.session.last_call = time.monotonic()
        self.session.calls["WaitForUpdatesEx"] += 1
        return self._collector.WaitForUpdatesEx(version=version, options=options)

    def _build(self, generation: int) -> None:
        """A new collector with the inventory and task filters (on the feed's thread).

        The objects it replaces are destroyed once the new ones are in place (so a full read
        never finds the feed without views), or when the build fails. Each new object is
        owned as soon as it exists: one made by a build that fails half-way is destroyed by
        the next.
        """
        replaced, self._owned = self._owned, []
        self._filters, self._version = {}, None  # a new collector starts with a snapshot
        try:
            self._make(generation)
        finally:
            self._destroy(replaced)

    def _make(self, generation: int) -> None:
        content = self.session.content
        collector = self._own(generation, content.propertyCollector.CreatePropertyCollector())
        views = content.viewManager
        if self.datacenter:
            found = content.searchIndex.FindByInventoryPath(self.datacenter)
            if not isinstance(found, vim.Datacenter):
                raise ProviderError(f"vSphere datacenter {self.datacenter!r} not found", retryable=False)
            # the datacenter's contents, and the datacenter itself (not inside its own view)
            made = [self._own(generation, views.CreateContainerView(container=found, type=list(PROPERTIES),
                                                                    recursive=True)),
                    self._own(generation, views.CreateListView(obj=[found]))]
        else:
            made = [self._own(generation, views.CreateContainerView(container=content.rootFolder,
                                                                    type=list(PROPERTIES), recursive=True))]
        self.views = made
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

    def _own(self, generation: int, ref: Any) -> Any:
        self._owned.append((generation, ref))
        return ref

    def _discard(self) -> None:
        """Destroy everything the feed made and still owns (when it stops)."""
        owned, self._owned = self._owned, []
        self._collector, self.views, self._filters = None, [], {}
        self._destroy(owned)

    def _destroy(self, owned: list[tuple[int, Any]]) -> None:
        """Destroy collectors (their filters with them) and views, in the order they were made.

        Objects of a session that is gone died with it: they are dropped without a call. A
        destroy that fails is logged at debug level and never keeps the feed from going on.
        """
        for generation, ref in owned:  # a collector before its views: its filters read them
            if generation != self.session.generation:
                continue
            method = "DestroyPropertyCollector" if isinstance(ref, vmodl.query.PropertyCollector) else "DestroyView"
            self.session.calls[method] += 1
            try:
                getattr(ref, method)()
            except Exception as exc:
                log.debug("vSphere change feed: destroying its collector or a view failed",
                          extra={"provider": self.session.name, "object": moid(ref), "error": fault_message(exc)})

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
