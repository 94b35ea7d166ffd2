"""Which host gets the next VM: the least-used host that is up, counting VMs already placed.

This is the simple placement the pool manager needs on its own; utilisation-aware filters and
weights with CPU-model compatibility live in ``corral.scheduling``.
"""

from __future__ import annotations

from collections.abc import Iterable

from corral.providers.base import HostInfo


def spread(hosts: Iterable[HostInfo], memory_mb: list[int]) -> list[str | None]:
    """Choose a host for each VM (given its memory), least memory-utilised first.

    Each choice is reserved before the next one is made, so a batch spreads over the hosts.
    Returns None for a VM when no host is up or none has room.
    """
    usable = [h for h in hosts if h.up and not h.maintenance]
    used = {h.name: h.memory_used_mb for h in usable}
    chosen: list[str | None] = []
    for need in memory_mb:
        fits = [h for h in usable if used[h.name] + need <= h.memory_mb]
        if not fits:
            chosen.append(None)
            continue
        best = min(fits, key=lambda h: ((used[h.name] + need) / h.memory_mb, h.name))
        used[best.name] += need
        chosen.append(best.name)
    return chosen


def group_by_host(names: list[str], hosts: list[str | None]) -> dict[str, list[str]]:
    """Names grouped by their chosen host, dropping the unplaced ones."""
    out: dict[str, list[str]] = {}
    for name, host in zip(names, hosts, strict=True):
        if host is not None:
            out.setdefault(host, []).append(name)
    return out

