"""A scripted stand-in for the calls the change feed makes, for what vcsim cannot do.

vcsim ignores ``maxObjectUpdates`` (it never answers with a truncated update set) and cannot
drop a connection on demand. :class:`FakeVcenter` is a pyvmomi stub: managed objects bound to
it send their method calls to :meth:`FakeVcenter.InvokeMethod`, so the feed runs its real
code on real pyvmomi objects. ``WaitForUpdatesEx`` on the inventory's collector answers from
a script of :class:`Part` (real ``UpdateSet`` objects made when they are served) and
exceptions; once the script is spent it waits like an idle vCenter, until ``maxWaitSeconds``
pass or the collector is destroyed. The task loop's collector (its filter reads the
TaskManager) answers from a script of its own, by default one empty snapshot, then waits idle.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere import VsphereSettings
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.feed import Feed
from corral.providers.vsphere.session import Session

PC = vmodl.query.PropertyCollector


@dataclass
class Part:
    """One update set of the inventory filter."""

    version: str
    updates: list[Any]
    truncated: bool = False
    gate: threading.Event | None = None  # served only once this is set


def enter(ref: Any, **props: Any) -> Any:
    return PC.ObjectUpdate(kind="enter", obj=ref, changeSet=changes(props))


def modify(ref: Any, **props: Any) -> Any:
    return PC.ObjectUpdate(kind="modify", obj=ref, changeSet=changes(props))


def leave(ref: Any) -> Any:
    return PC.ObjectUpdate(kind="leave", obj=ref, changeSet=[])


def changes(props: dict[str, Any]) -> list[Any]:
    """Keyword names with ``__`` for the dots of property paths: runtime__host -> runtime.host."""
    return [PC.Change(name=name.replace("__", "."), op="assign", val=val) for name, val in props.items()]


def vm(key: str, name: str, host: Any, power: str = "poweredOn") -> Any:
    return enter(vim.VirtualMachine(key), name=name, runtime__host=host, runtime__powerState=power,
                 config__template=False)


@dataclass
class FakeVcenter:
    script: list[Part | BaseException]
    task_script: list[Part | BaseException] = field(default_factory=lambda: [Part("t0", [])])
    calls: list[tuple[str, str]] = field(default_factory=list)  # (method, moid of the object called)
    waits: list[tuple[str, int]] = field(default_factory=list)  # (version, maxWaitSeconds) per inventory wait
    # the collectors made, by what their filter reads ("inventory" | "tasks"), in order
    collectors: dict[str, list[str]] = field(default_factory=lambda: {"inventory": [], "tasks": []})
    at_gate: threading.Event = field(default_factory=threading.Event)
    idle: threading.Event = field(default_factory=threading.Event)  # set once the script is spent

    def __post_init__(self) -> None:
        self._script: deque[Part | BaseException] = deque(self.script)
        self._task_script: deque[Part | BaseException] = deque(self.task_script)
        self._serial = itertools.count(1)
        self._filters: dict[str, list[Any]] = {}  # collector moid -> its filters, in order
        self._cancelled: dict[str, threading.Event] = {}  # collector moid -> set once destroyed
        self._destroyed: set[str] = set()
        self.content = vim.ServiceInstanceContent(
            propertyCollector=PC("propertyCollector", self), viewManager=vim.view.ViewManager("ViewManager", self),
            rootFolder=vim.Folder("group-d1", self), taskManager=vim.TaskManager("TaskManager", self))

    def session(self, feed_max_wait: int = 1) -> Session:
        """A session whose content is this fake's (it never connects)."""
        settings = VsphereSettings(server="vc.example", username="user", password="secret", feed_max_wait=feed_max_wait)
        session = Session("fake", settings)
        session.content = self.content
        return session

    def made(self, method: str) -> int:
        return sum(1 for name, _ in self.calls if name == method)

    # -- the stub ----------------------------------------------------------------------------

    def InvokeMethod(self, mo: Any, info: Any, args: list[Any]) -> Any:  # noqa: N802 (pyvmomi's name)
        name = info.wsdlName
        self.calls.append((name, mo._moId))
        if name == "CreatePropertyCollector":
            made = PC(f"collector-{next(self._serial)}", self)
            self._cancelled[made._moId] = threading.Event()
            return made
        if name == "CreateFilter":
            made = PC.Filter(f"filter-{next(self._serial)}", self)
            self._filters.setdefault(mo._moId, []).append(made)
            reads = args[0].objectSet[0].obj
            self.collectors["tasks" if isinstance(reads, vim.TaskManager) else "inventory"].append(mo._moId)
            return made
        if name == "CreateContainerView":
            return vim.view.ContainerView(f"view-{next(self._serial)}", self)
        if name == "DestroyPropertyCollector":  # ends a pending wait, as on a vCenter
            self._cancelled[mo._moId].set()
            self._destroyed.add(mo._moId)
            return None
        if name == "DestroyView":
            return None
        if name == "WaitForUpdatesEx":
            if mo._moId in self._destroyed:
                raise vmodl.fault.ManagedObjectNotFound(obj=mo)
            version, options = args
            cancelled = self._cancelled[mo._moId]
            if mo._moId in self.collectors["tasks"]:
                return self._answer(self._task_script, self._filters[mo._moId][0], cancelled, options.maxWaitSeconds)
            self.waits.append((version, options.maxWaitSeconds))
            return self._answer(self._script, self._filters[mo._moId][0], cancelled, options.maxWaitSeconds,
                                self.idle)
        raise NotImplementedError(name)

    def _answer(self, script: deque[Part | BaseException], only_filter: Any, cancelled: threading.Event,
                max_wait: int, idle: threading.Event | None = None) -> Any:
        if not script:
            if idle is not None:
                idle.set()
            if cancelled.wait(max_wait):
                cancelled.clear()
                raise vmodl.fault.RequestCanceled()
            return None
        step = script.popleft()
        if isinstance(step, BaseException):
            raise step
        if step.gate is not None:
            self.at_gate.set()
            step.gate.wait(5)
        return PC.UpdateSet(version=step.version, truncated=step.truncated,
                            filterSet=[PC.FilterUpdate(filter=only_filter, objectSet=step.updates)])


@asynccontextmanager
async def running_feed(fake: FakeVcenter, *, feed_max_wait: int, first_backoff: float = 0.5) -> AsyncIterator[Feed]:
    """A change feed on ``fake``, started (its first answers not yet read) and stopped after."""
    feed = Feed(fake.session(feed_max_wait=feed_max_wait), ObjectCache(lambda _path: None), ChangeFeed(), None,
                first_backoff=first_backoff)
    feed.start()
    try:
        yield feed
    finally:
        await feed.stop()
