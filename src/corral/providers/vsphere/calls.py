"""Calls and tasks on the provider's session, their faults mapped (``faults.py``), and waits
for the change feed to show what a call changed.

A task is started by a call and waits for the task loop to report its end
(:meth:`~corral.providers.vsphere.feed.Feed.wait_task`); nothing polls it.
"""

from __future__ import annotations

import asyncio
import http.client
from collections.abc import Callable
from typing import Any
from xml.parsers.expat import ExpatError

from pyVmomi import vmodl

from corral.providers.base import VmNotFound
from corral.providers.changefeed import ChangeFeed
from corral.providers.vsphere.faults import About, call_error, is_gone
from corral.providers.vsphere.feed import Feed
from corral.providers.vsphere.session import Session
from corral.providers.vsphere.tasks import TaskOutcome


class Calls:
    """The one way the provider's parts call the vCenter: ``session`` runs the calls, ``feed``
    reports the tasks' ends and ``changes`` the changes it saw; ``task_timeout`` bounds a task
    and ``feed_max_wait`` (plus 5 s) a wait for the feed to show a change."""

    def __init__(self, session: Session, feed: Feed, changes: ChangeFeed, *, task_timeout: float,
                 feed_max_wait: float) -> None:
        self.session = session
        self.feed = feed
        self.changes = changes
        self.task_timeout = task_timeout
        self.feed_max_wait = feed_max_wait

    async def call(self, label: str, fn: Callable[[], Any], *, about: About | None = None) -> Any:
        """One call on the session; ``about`` is the (name, reference) of the VM it works on,
        whose disappearance is :class:`VmNotFound` rather than a failure of the call."""
        try:
            return await self.session.call(label, fn)
        except (vmodl.MethodFault, OSError, http.client.HTTPException, ExpatError) as exc:
            raise call_error(label, exc, about) from exc

    async def task(self, label: str, start: Callable[[], Any], *, about: About | None = None) -> TaskOutcome:
        """Start a vCenter task and wait for the feed to report it finished. With ``about``, a
        task that ends because its VM no longer exists is :class:`VmNotFound`."""
        task = await self.call(label, start, about=about)
        outcome = await self.feed.wait_task(task, self.task_timeout)
        if about is not None and not outcome.ok and is_gone(outcome.fault, about[1]):
            raise VmNotFound(about[0])
        return outcome

    async def until(self, seen: Callable[[], bool]) -> None:
        """Wait (briefly) until the feed's copy shows a change this provider just made."""
        deadline = asyncio.get_running_loop().time() + self.feed_max_wait + 5
        while not seen():
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return  # the change will arrive later; callers do not depend on it
            await self.changes.wait_past(self.changes.version, min(left, 0.5))
