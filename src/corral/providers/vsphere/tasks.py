"""Task completions: a collector of their own over the TaskManager's ``recentTask``.

:class:`TaskFeed` is the change feed's second :class:`~corral.providers.vsphere.collector.CollectorLoop`
on the session: its collector holds one filter, the ``info`` of every task in ``recentTask``,
and its ``WaitForUpdatesEx`` loop runs on a thread of its own. A task's end (an update of its
``info.state``) thus reaches :meth:`TaskFeed.wait_task` without waiting for, or being parsed
with, an inventory update set. Nothing polls a task; only after a fresh snapshot (a new
collector) is a task still waited for and not reported finished read once directly.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError
from corral.providers.vsphere.collector import CollectorLoop
from corral.providers.vsphere.objects import apply_change, moid
from corral.providers.vsphere.session import Session, fault_message

TASK_PROPERTIES = ["info.state", "info.error", "info.result", "info.descriptionId"]
SEEN_MAX = 2000  # finished tasks nobody asked about yet, at most; then the oldest half is dropped


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


class TaskFeed(CollectorLoop):
    """The ``recentTask`` loop: resolves the waits for vCenter tasks."""

    what = "tasks"

    def __init__(self, session: Session, *, first_backoff: float = 0.5) -> None:
        super().__init__(session, first_backoff=first_backoff)
        self._tasks: dict[str, asyncio.Future[TaskOutcome]] = {}
        self._task_states: dict[str, TaskOutcome] = {}  # finished tasks seen before anyone asked

    async def stop(self) -> None:
        await super().stop()
        for future in self._tasks.values():
            if not future.done():
                future.set_exception(ProviderError("the vSphere provider closed while a task ran"))
                future.exception()  # whoever still waits gets it; nobody waiting is fine too
        self._tasks.clear()

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
            raise ProviderError(f"vSphere task {key} did not finish within {timeout:g} s",
                                cause=Cause.TIMEOUT) from None
        finally:
            if future.done():
                self._tasks.pop(key, None)

    # -- the loop's side -------------------------------------------------------------------

    def _filter_spec(self, generation: int) -> Any:
        spec = vmodl.query.PropertyCollector
        recent = spec.TraversalSpec(name="recent", type=vim.TaskManager, path="recentTask", skip=False)
        return spec.FilterSpec(
            objectSet=[spec.ObjectSpec(obj=self.session.content.taskManager, skip=True, selectSet=[recent])],
            propSet=[spec.PropertySpec(type=vim.Task, pathSet=TASK_PROPERTIES)],
        )

    def _consume(self, result: Any, snapshot: bool) -> None:
        for update in self._updates(result):
            self._task_update(update)

    def _snapshot_read(self) -> None:
        self._resolve_unseen_tasks()

    def _task_update(self, update: Any) -> None:
        key = moid(update.obj)
        if update.kind == "leave":
            return
        props: dict[str, Any] = {}
        for change in update.changeSet:
            apply_change(props, change)
        outcome = TaskOutcome.of(props.get("info.state"), props.get("info.result"), props.get("info.error"))
        if outcome is None:
            return
        future = self._tasks.get(key)
        if future is not None:
            if not future.done():
                future.set_result(outcome)
        else:
            self._task_states[key] = outcome
            if len(self._task_states) > SEEN_MAX:  # other sessions' tasks nobody will ask about
                for old in list(self._task_states)[:SEEN_MAX // 2]:
                    del self._task_states[old]

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
