"""What a host view needs beyond the host's properties: when its quickStats last changed,
and its CPU as decoded from ``hardware.cpuFeature`` (decoded once per report, not per view).

vCenter refreshes a host's ``summary.quickStats`` about every 20 s and the change feed
reports a change only when a value changed. The time of the last such change is the host's
``stats_at`` (:attr:`corral.domain.models.HostInfo.stats_at`); placement holds a new VM's
CPU on its host until the host's stats change after the VM appeared there. The first report
of a host is not a change: until its figures have been seen to change, ``stats_at`` is None
and they count as live. An endpoint whose figures never refresh (vcsim reports fixed
quickStats) so behaves as before instead of holding every VM's CPU until the reservation
timeout.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from corral.providers.vsphere.cpuid import NOTHING, CpuId, decode

log = logging.getLogger("corral.providers.vsphere")

QUICK_STATS = frozenset({"summary.quickStats.overallCpuUsage", "summary.quickStats.overallMemoryUsage"})
HOST = "HostSystem"


class _Obj(Protocol):
    kind: str
    props: dict[str, Any]


def stats_of(props: Mapping[str, Any]) -> tuple[Any, ...]:
    return tuple(props.get(name) for name in sorted(QUICK_STATS))


def stats_changed(kind: str, changes: Any) -> bool:
    """Whether an ObjectUpdate (``kind``, ``changeSet``) reports a change of a host's quickStats.
    An ``enter`` is the host's first report, not a change."""
    return kind == "modify" and any(change.name in QUICK_STATS for change in changes or ())


class HostFigures:
    """Per host (by managed object id): the time its stats last changed, and its decoded CPU."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.stats_at: dict[str, float] = {}
        self._cpu: dict[str, tuple[Any, CpuId]] = {}  # the cpuFeature value decoded, and what it gave

    def update(self, key: str, kind: str, update: Any) -> None:
        """Note an ObjectUpdate (not a ``leave``: :meth:`forget`) of the object ``key`` of
        ``kind``; one comparison for anything but a host."""
        if kind == HOST and stats_changed(update.kind, update.changeSet):
            self.stats_at[key] = self.clock()

    def snapshot(self, previous: Mapping[str, _Obj], current: Mapping[str, _Obj]) -> None:
        """Note a fresh snapshot that replaces ``previous``: hosts whose stats differ changed now."""
        now = self.clock()
        for key, old in previous.items():
            if old.kind != HOST:
                continue
            new = current.get(key)
            if new is None:
                self.forget(key)
            elif stats_of(new.props) != stats_of(old.props):
                self.stats_at[key] = now

    def forget(self, key: str) -> None:
        self.stats_at.pop(key, None)
        self._cpu.pop(key, None)

    def cpu(self, key: str, name: str, feature: Any) -> CpuId:
        """The host's CPU from its ``hardware.cpuFeature``, decoded again only when that changed.
        Registers that cannot be read give nothing (and one warning naming the host)."""
        cached = self._cpu.get(key)
        if cached is not None and cached[0] is feature:
            return cached[1]
        try:
            cpu = decode(feature)
        except ValueError as exc:
            log.warning("cannot read a host's CPU features; judging its CPU by its model",
                        extra={"host": name, "error": str(exc)})
            cpu = NOTHING
        self._cpu[key] = (feature, cpu)
        return cpu
