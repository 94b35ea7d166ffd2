"""A provider's change log, behind ``wait_for_updates`` (the simulator's and vSphere's).

Every change to a VM or host appends one entry and bumps the version by one. The log is
bounded; a client whose version is older than the log reaches, newer than the current
version, or from another generation gets a full snapshot instead of a delta. Versions of a
generation start at ``time.time_ns()`` when the feed is made, so a version an old client
kept from before a restart is below every version the new generation can answer.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["vm", "host"]


@dataclass(slots=True)
class Changes:
    """The names of the VMs and hosts that changed since some version, each named once."""

    vms: list[str] = field(default_factory=list)
    hosts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.vms or self.hosts)


class ChangeFeed:
    def __init__(self, capacity: int = 10_000) -> None:
        self.version = time.time_ns()
        self._log: deque[tuple[Kind, str]] = deque(maxlen=capacity)  # the last entry is `version`
        self._changed = asyncio.Event()
        self._waiting = 0  # callers inside wait_past now

    def touch(self, kind: Kind, name: str) -> None:
        """Record that one VM or host changed, and wake whoever waits for a change."""
        self.version += 1
        self._log.append((kind, name))
        self.wake_all()

    def touch_vms(self, names: list[str]) -> None:
        for name in names:
            self.touch("vm", name)

    def since(self, version: int | None) -> Changes | None:
        """What changed after ``version``; None when only a full snapshot can answer."""
        oldest_answerable = self.version - len(self._log)
        if version is None or not oldest_answerable <= version <= self.version:
            return None
        # the newest entries, read from the right end: O(changes since), not O(log length)
        entries = reversed(list(itertools.islice(reversed(self._log), self.version - version)))
        vms: dict[str, None] = {}
        hosts: dict[str, None] = {}
        for kind, name in entries:
            (vms if kind == "vm" else hosts)[name] = None
        return Changes(vms=list(vms), hosts=list(hosts))

    async def wait_past(self, version: int, timeout: float) -> None:
        """Return once the version moved past ``version``, or after ``timeout`` seconds."""
        if self.version != version:
            return
        self._waiting += 1
        try:
            # asyncio.timeout, not wait_for: Python 3.11's wait_for swallows a cancellation
            # that arrives in the same loop step as the change, and the caller never stops
            async with asyncio.timeout(timeout):
                await self._changed.wait()
        except TimeoutError:
            pass
        finally:
            self._waiting -= 1

    def wake_all(self) -> None:
        """Release every waiter (after a change, or when the provider closes)."""
        if self._waiting:  # nobody waits most of the time under churn: no new Event each change
            self._changed.set()
            self._changed = asyncio.Event()
