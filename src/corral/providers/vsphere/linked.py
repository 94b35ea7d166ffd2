"""Linked clones of templates without a snapshot: vmpooler's ``create_template_delta_disks``.

A linked clone shares its template's disks up to a snapshot and writes to a child disk of its
own (``diskMoveType=createNewChildDiskBacking``), so it needs a snapshot of the template.
When linked clones are asked for and the template has none:

- with ``create_template_delta_disks`` on, the provider snapshots the template once (one
  snapshot however many clones ask at the same moment), remembers it, and every clone of the
  template is a linked clone of it;
- with it off, or when the snapshot cannot be made, clones are full clones, and that is
  logged once per template.

vCenter takes no snapshot of a template: the template is marked as a VM (which needs a
resource pool and a host), snapshotted without memory, and marked as a template again, as an
administrator would do by hand. vcsim snapshots a template directly, but corral does not
rely on that. While the template is a VM, the feed may show it as one; clones that start
meanwhile wait (:meth:`TemplateSnapshots.idle`) instead of finding no template.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from corral.providers.base import ProviderError
from corral.providers.vsphere.causes import cause_of

#: how to clone: "full" (linked clones not asked for), "linked" (from a known snapshot),
#: "snapshot" (make the template's snapshot first), "full_warn" (no snapshot and the key is
#: off: full clones, said once), "full_failed" (making the snapshot failed, which was logged)
Plan = Literal["full", "linked", "snapshot", "full_warn", "full_failed"]

SNAPSHOT_NAME = "corral linked clones"


def clone_plan(linked: bool, snapshot_known: bool, delta_disks: bool, failed: bool) -> Plan:
    """How to clone a template; ``failed``: making its snapshot was tried and failed."""
    if not linked:
        return "full"
    if snapshot_known:
        return "linked"
    if not delta_disks:
        return "full_warn"
    return "full_failed" if failed else "snapshot"


class TemplateSnapshots:
    """The snapshots made on templates, by template id: made once, remembered, shared.

    :meth:`make` runs its ``snapshot`` coroutine once per template; callers that come while it
    runs wait for the same run. The result (a snapshot reference, or the failure) is kept for
    the provider's life, so a failure is not retried on every clone.
    """

    def __init__(self) -> None:
        self._made: dict[str, Any] = {}
        self._failed: set[str] = set()
        self._running: dict[str, asyncio.Task[Any]] = {}

    def made(self, template: str) -> Any | None:
        return self._made.get(template)

    def failed(self, template: str) -> bool:
        return template in self._failed

    async def idle(self) -> None:
        """Return once no snapshot is being made (their outcomes do not matter here)."""
        while self._running:
            await asyncio.wait(list(self._running.values()))

    async def make(self, template: str, snapshot: Callable[[], Awaitable[Any]]) -> Any | None:
        """The template's snapshot, made by ``snapshot()`` unless made or tried before; None if it failed."""
        if template in self._made or template in self._failed:
            return self._made.get(template)
        task = self._running.get(template)
        if task is None:
            task = asyncio.ensure_future(snapshot())
            self._running[template] = task
            task.add_done_callback(lambda done: self._settle(template, done))
        try:
            return await asyncio.shield(task)  # a caller cancelled does not cancel the others' snapshot
        except ProviderError:
            return None

    def _settle(self, template: str, task: asyncio.Task[Any]) -> None:
        self._running.pop(template, None)
        if not task.cancelled() and task.exception() is None:
            self._made[template] = task.result()
        else:
            self._failed.add(template)


Call = Callable[[str, Callable[[], Any]], Awaitable[Any]]


async def snapshot_template(template: Any, pool: Any, host: Any, call: Call, task: Call) -> Any:
    """Snapshot a template the way vCenter allows; the snapshot's reference.

    ``template``, ``pool`` and ``host`` are managed object references (the resource pool and
    host the template is registered on while it is a VM); ``call`` runs a vSphere call and
    ``task`` a vSphere task to its end (the provider's). Raises ProviderError naming the step
    that failed; the template is a template again unless marking it back failed, which the
    error then says.
    """
    await call("MarkAsVirtualMachine", lambda: template.MarkAsVirtualMachine(pool=pool, host=host))
    try:
        outcome = await task("CreateSnapshot_Task", lambda: template.CreateSnapshot_Task(
            name=SNAPSHOT_NAME, description="base of corral's linked clones (create_template_delta_disks)",
            memory=False, quiesce=False))
    finally:
        try:
            await call("MarkAsTemplate", template.MarkAsTemplate)
        except ProviderError as exc:
            raise ProviderError(f"the template is left as a VM: {exc}", cause=exc.cause) from exc
    if not outcome.ok:
        raise ProviderError(f"CreateSnapshot_Task failed: {outcome.error}", cause=cause_of(outcome.fault))
    return outcome.result
