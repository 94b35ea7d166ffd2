"""One PropertyCollector of the change feed's own, and its ``WaitForUpdatesEx`` loop.

The change feed runs two of these on one session: one over the inventory
(:class:`~corral.providers.vsphere.feed.Feed`) and one over the TaskManager's ``recentTask``
(:class:`~corral.providers.vsphere.tasks.TaskFeed`). Each has its own collector with one
filter, its own long poll and a thread of its own, so a task's end is never held behind, nor
parsed with, an inventory update set.

A loop's first call (version ``""``) returns every object of its filter; later calls return
what entered, changed (with their change ops) or left since the version string vCenter gave
last, or nothing after ``maxWaitSeconds``; the later parts of a truncated update set are read
on at once, with ``maxWaitSeconds`` 0. When the session is lost, the loop logs in again (once
for all callers: :meth:`Session.relogin`), builds a new collector and reads a fresh snapshot;
a re-login that is refused or fails is tried again with back-off (a refusal is kept in
``refused`` until a login succeeds).
A call that never reached the vCenter is simply made again (:func:`resumable`).

The collector (and its filter) and any views it reads live in the session on the vCenter
until they are destroyed. The loop owns each from the moment it is made and destroys what it
replaces, and everything when it stops (before the session logs out); objects of a lost
session died with it and are only dropped.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError
from corral.providers.vsphere.objects import moid
from corral.providers.vsphere.session import Session, fault_message

log = logging.getLogger("corral.providers.vsphere")

MAX_OBJECT_UPDATES = 1000  # per update set; more arrive as a truncated set


def resumable(exc: BaseException, reading_snapshot: bool) -> bool:
    """Whether a loop goes on with its collector and version after ``exc`` (else it builds anew).

    Only a call that never reached the vCenter (the connection was refused, the name did not
    resolve) lost nothing: the next wait asks from the same version, with no new collector and
    no snapshot. A connection that failed later (reset, timed out, closed, an HTTP error) may
    have lost an answer the vCenter counts as delivered, and a vSphere fault with no rule of
    its own may mean the collector is unusable: both take a new collector and snapshot. So
    does any failure while a snapshot is read: a collector asked for version "" again is not
    bound to answer with every object (vcsim answers only with those it has not sent yet).
    """
    return not reading_snapshot and isinstance(exc, (ConnectionRefusedError, socket.gaierror))


class CollectorLoop:
    """A collector with one filter, read by a ``WaitForUpdatesEx`` loop on a thread of its own.

    A subclass says what the filter reads (:meth:`_filter_spec`, which may make views of its
    own with :meth:`_own`) and what to do with the updates (:meth:`_consume`,
    :meth:`_snapshot_begins`, :meth:`_snapshot_read`).
    """

    what = "collector"  # names the loop's thread and its log records

    def __init__(self, session: Session, *, first_backoff: float = 0.5) -> None:
        self.session = session
        self.ready = asyncio.Event()  # the first snapshot is in (or the loop failed for good: ``fatal``)
        self.snapshots = 0  # full snapshots read (1 + one per new collector)
        self.update_sets = 0
        self.drops = 0  # rounds of the loop that failed (the long poll's connection or session lost, ...)
        self.error: str | None = None  # why the last loop round failed, if it did
        self.fatal: ProviderError | None = None  # a failure retrying cannot mend; the loop stopped
        # the session was lost and logging in again is refused (cause ``session``); the loop
        # tries again with back-off and clears this once a login succeeds
        self.refused: ProviderError | None = None
        self._thread: ThreadPoolExecutor | None = None  # the loop's own thread, while it runs
        self._collector: Any = None
        self._filter: str | None = None  # the collector's filter (moid); None: build anew
        self._version: str | None = None  # of the last update set applied; None: read a snapshot next
        self._first_backoff = first_backoff  # seconds before the first retry after a failure, doubled per failure
        # the collector and views made and not destroyed yet, in the order they were made, each
        # with the session generation it belongs to (it dies with its session)
        self._owned: list[tuple[int, Any]] = []
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def collector(self) -> Any:
        """The PropertyCollector the loop reads now; None before it is built or once it is dropped."""
        return self._collector

    @property
    def thread(self) -> ThreadPoolExecutor | None:
        """The loop's own thread, on which its calls run, while it runs."""
        return self._thread

    # -- what a subclass says --------------------------------------------------------------

    def _filter_spec(self, generation: int) -> Any:
        """The filter's spec (on the loop's thread, after the collector was made)."""
        raise NotImplementedError

    def _consume(self, result: Any, snapshot: bool) -> None:
        """Take in one update set (or one part of it); ``snapshot``: it is part of a snapshot."""
        raise NotImplementedError

    def _snapshot_begins(self) -> None:
        """A snapshot is about to be read (what a failed one left is to be dropped)."""

    def _snapshot_read(self) -> None:
        """Every part of a snapshot is in."""

    # -- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stopping = False
        name = f"vsphere-{self.what}-{self.session.name}"
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._task = asyncio.create_task(self._run(), name=name)

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
            try:  # and what a build still running on the loop's thread made meanwhile
                async with asyncio.timeout(self.session.settings.feed_max_wait + 5):
                    await loop.run_in_executor(self._thread, self._discard)
            except TimeoutError:
                log.debug("vSphere change feed: its thread did not finish; objects it made are left to the logout",
                          extra={"provider": self.session.name, "collector": self.what})
            self._thread.shutdown(wait=False, cancel_futures=True)
            self._thread = None

    # -- the loop --------------------------------------------------------------------------

    async def _run(self) -> None:
        generation = -1
        backoff = self._first_backoff
        relogin = False  # the session was lost: log in again before anything else
        while not self._stopping:
            try:
                if relogin:  # refused or failed, it is tried again with back-off like a lost connection
                    await asyncio.get_running_loop().run_in_executor(self._thread, self.session.relogin, generation)
                    relogin, self.refused = False, None
                if generation != self.session.generation or self._filter is None:
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
                self.drops += 1
                relogin = True
            except (vmodl.fault.ManagedObjectNotFound, vmodl.fault.RequestCanceled) as exc:
                if self._stopping:
                    return
                self.drops += 1
                self._filter = None  # the collector is gone or was cancelled: build a new one
                self.error = fault_message(exc)
            except Exception as exc:
                if self._stopping:
                    return
                if relogin and isinstance(exc, ProviderError) and exc.cause is Cause.SESSION:  # login refused
                    self.refused = exc
                elif isinstance(exc, ProviderError) and not exc.retryable:  # e.g. no such datacenter
                    self.fatal, self.error = exc, str(exc)
                    self.ready.set()
                    return
                self.drops += 1
                self.error = fault_message(exc)
                log.warning("vSphere change feed failed; retrying",
                            extra={"provider": self.session.name, "collector": self.what, "error": self.error})
                if not resumable(exc, reading_snapshot=self._version is None):
                    self._filter = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)

    async def _read(self) -> None:
        """Read one answer, a truncated one to its last part, and take it in.

        A snapshot (version ``""``) and the later parts of a truncated answer are there
        already: they are asked for with ``maxWaitSeconds`` 0. The version moves with each part
        of a delta, so a call that is made again asks for what follows the last part taken in;
        a snapshot counts (and the version moves) only once its last part is in.
        """
        loop = asyncio.get_running_loop()
        snapshot = self._version is None
        version, truncated = self._version or "", False
        if snapshot:
            self._snapshot_begins()
        while True:
            wait = 0 if snapshot or truncated else self.session.settings.feed_max_wait
            result = await loop.run_in_executor(self._thread, self._wait, version, wait)
            if result is None:
                break
            self.update_sets += 1
            version, truncated = result.version, bool(result.truncated)
            self._consume(result, snapshot)
            if not snapshot:
                self._version = version
            if not truncated:
                break
        if snapshot:
            self._snapshot_read()
            self._version = version
            self.snapshots += 1
            self.ready.set()

    def _wait(self, version: str, max_wait: int) -> Any:
        options = vmodl.query.PropertyCollector.WaitOptions(maxWaitSeconds=max_wait,
                                                            maxObjectUpdates=MAX_OBJECT_UPDATES)
        self.session.last_call = time.monotonic()
        self.session.calls["WaitForUpdatesEx"] += 1
        return self._collector.WaitForUpdatesEx(version=version, options=options)

    def _build(self, generation: int) -> None:
        """A new collector with its filter (on the loop's thread).

        The objects it replaces are destroyed once the new ones are in place (so a full read
        never finds the feed without views), or when the build fails. Each new object is
        owned as soon as it exists: one made by a build that fails half-way is destroyed by
        the next.
        """
        replaced, self._owned = self._owned, []
        self._filter, self._version = None, None  # a new collector starts with a snapshot
        try:
            collector = self._own(generation, self.session.content.propertyCollector.CreatePropertyCollector())
            made = collector.CreateFilter(self._filter_spec(generation), partialUpdates=True)
            self._collector, self._filter = collector, moid(made)
        finally:
            self._destroy(replaced)

    def _own(self, generation: int, ref: Any) -> Any:
        self._owned.append((generation, ref))
        return ref

    def _discard(self) -> None:
        """Destroy everything the loop made and still owns (when it stops)."""
        owned, self._owned = self._owned, []
        self._collector, self._filter = None, None
        self._destroy(owned)

    def _destroy(self, owned: list[tuple[int, Any]]) -> None:
        """Destroy collectors (their filters with them) and views, in the order they were made.

        Objects of a session that is gone died with it: they are dropped without a call. A
        destroy that fails is logged at debug level and never keeps the loop from going on.
        """
        for generation, ref in owned:  # a collector before its views: its filter reads them
            if generation != self.session.generation:
                continue
            method = "DestroyPropertyCollector" if isinstance(ref, vmodl.query.PropertyCollector) else "DestroyView"
            self.session.calls[method] += 1
            try:
                getattr(ref, method)()
            except Exception as exc:
                log.debug("vSphere change feed: destroying its collector or a view failed",
                          extra={"provider": self.session.name, "collector": self.what, "object": moid(ref),
                                 "error": fault_message(exc)})

    def _updates(self, result: Any) -> list[Any]:
        """The object updates of this loop's filter in ``result``."""
        return [update for filter_update in result.filterSet or [] if moid(filter_update.filter) == self._filter
                for update in filter_update.objectSet or []]
