"""Analysers: turn the (old, new) record pairs of an inventory update into domain events.

Pure bookkeeping, no I/O. The VM rules are stateless apart from migrations corral asked
for; the host rules remember which hosts are unresponsive and since when, so that a host is
declared down only after ``host_down_grace_s`` of silence (a host that flaps back within
the grace period produces no event at all), and which hosts are over-utilised, so that
:class:`HostOverUtilized` fires once per crossing, not on every metrics update.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from corral.domain.events import (
    Event,
    HostDown,
    HostMaintenanceChanged,
    HostOverUtilized,
    HostUp,
    MigrationDone,
    VmCreated,
    VmDisappeared,
    VmMoved,
    VmStateChanged,
)
from corral.domain.models import HostInfo, ProviderVm
from corral.inventory.repository import Changes


@dataclass(slots=True)
class AnalyserSettings:
    host_down_grace_s: float = 60.0  # unresponsive this long before HostDown
    over_utilized_percent: float = 80.0  # CPU or memory use at or above this: HostOverUtilized
    hysteresis_percent: float = 5.0  # a host is over-utilised again only after dropping this far below


class Analyser:
    """Events from the changes of one provider's repository."""

    MIGRATION_TTL_S = 3600.0

    def __init__(self, provider: str, settings: AnalyserSettings | None = None,
                 monotonic: Callable[[], float] = time.monotonic, clock: Callable[[], float] = time.time) -> None:
        self.provider = provider
        self.settings = settings or AnalyserSettings()
        self.monotonic = monotonic
        self.clock = clock
        self._silent_since: dict[str, tuple[float, str]] = {}  # host -> (monotonic since, why)
        self.down: set[str] = set()  # hosts declared down
        self._over: set[str] = set()
        self._migrations: dict[str, tuple[str, float]] = {}  # vm -> (target host, monotonic asked)

    def expect_migration(self, vm: str, target: str) -> None:
        """corral asked to move ``vm`` to ``target``: its arrival there is a :class:`MigrationDone`."""
        now = self.monotonic()
        # a migration that failed never arrives: forget expectations older than an hour
        for name in [n for n, (_, asked) in self._migrations.items() if now - asked > self.MIGRATION_TTL_S]:
            del self._migrations[name]
        self._migrations[vm] = (target, now)

    def analyse(self, changes: Changes, *, initial: bool = False) -> list[Event]:
        """Events for one update. ``initial``: the first snapshot, which is state, not change."""
        now = self.clock()
        events: list[Event] = []
        for old_host, new_host in changes.hosts:
            self._host(old_host, new_host, now, events, initial)
        if not initial:
            for old, new in changes.vms:
                self._vm(old, new, now, events)
        events.extend(self.due())
        return events

    # -- VMs -------------------------------------------------------------------------------

    def _vm(self, old: ProviderVm | None, new: ProviderVm | None, now: float, events: list[Event]) -> None:
        p = self.provider
        if new is None:
            assert old is not None
            self._migrations.pop(old.name, None)
            events.append(VmDisappeared(now, p, old.name, old.pool, old.host))
            return
        if old is None:
            events.append(VmCreated(now, p, new.name, new.pool, new.host, state=new.power_state))
            return
        was, now_state = old.power_state, new.power_state
        if was is not now_state:
            events.append(VmStateChanged(now, p, new.name, new.pool, new.host, old=was, new=now_state))
        if old.host != new.host:
            events.append(VmMoved(now, p, new.name, new.pool, new.host, old_host=old.host))
            wanted = self._migrations.get(new.name)
            if wanted is not None and wanted[0] == new.host:
                del self._migrations[new.name]
                events.append(MigrationDone(now, p, new.name, new.pool, new.host,
                                            seconds=self.monotonic() - wanted[1]))

    # -- hosts -----------------------------------------------------------------------------

    def _host(self, old: HostInfo | None, new: HostInfo | None, now: float, events: list[Event],
              initial: bool) -> None:
        p = self.provider
        if new is None:
            assert old is not None
            self._over.discard(old.name)
            self._silent(old.name, "stopped reporting")
            return
        name = new.name
        if not new.up:
            self._silent(name, "not responding")
        else:
            self._silent_since.pop(name, None)
            if name in self.down:
                self.down.discard(name)
                events.append(HostUp(now, p, name))
        if old is not None and old.maintenance != new.maintenance:
            events.append(HostMaintenanceChanged(now, p, name, maintenance=new.maintenance))
        limit = self.settings.over_utilized_percent
        cpu, memory = new.cpu_percent, new.memory_percent
        if name not in self._over:
            if cpu >= limit or memory >= limit:
                self._over.add(name)
                if not initial:
                    events.append(HostOverUtilized(now, p, name, cpu_percent=round(cpu, 1),
                                                   memory_percent=round(memory, 1)))
        elif max(cpu, memory) < limit - self.settings.hysteresis_percent:
            self._over.discard(name)

    def _silent(self, host: str, why: str) -> None:
        if host not in self._silent_since and host not in self.down:
            self._silent_since[host] = (self.monotonic(), why)

    def due(self) -> list[Event]:
        """:class:`HostDown` for every host silent for the whole grace period by now."""
        if not self._silent_since:
            return []
        now_m = self.monotonic()
        grace = self.settings.host_down_grace_s
        events: list[Event] = []
        for host, (since, why) in list(self._silent_since.items()):
            if now_m - since >= grace:
                del self._silent_since[host]
                self.down.add(host)
                events.append(HostDown(self.clock(), self.provider, host, reason=f"{why} for {now_m - since:.0f}s"))
        return events

    def next_due_in(self) -> float | None:
        """Seconds until the next host's grace period ends; None when no host is silent."""
        if not self._silent_since:
            return None
        first = min(since for since, _ in self._silent_since.values())
        return max(0.0, first + self.settings.host_down_grace_s - self.monotonic())
