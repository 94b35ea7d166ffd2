"""Hosts, loads and demands for the scheduling tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from corral.domain.models import HostInfo
from corral.scheduling.model import Demand, HostLoad, Rejection, Request

XEON_V4 = "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz"
XEON_V3 = "Intel(R) Xeon(R) CPU E5-2680 v3 @ 2.50GHz"


def host(name: str, *, cores: int = 10, mhz: int = 1000, memory_mb: int = 10_000, cpu_model: str = XEON_V4,
         **kw: Any) -> HostInfo:
    """A host of 10 x 1000 MHz and 10,000 MB unless told otherwise (round numbers for exact percentages)."""
    return HostInfo(name=name, cpu_model=cpu_model, cores=cores, mhz=mhz, memory_mb=memory_mb, **kw)


def load(info: HostInfo | None = None, *, vcpu_load: float = 0.25, index: int = 0, **kw: Any) -> HostLoad:
    """The load of ``info`` (or of a default host built from ``kw``)."""
    return HostLoad(info if info is not None else host("h", **kw), index, vcpu_load)


def said(reason: Rejection | None) -> str | None:
    """A rejection as the one line the log and the API show, None for none."""
    return None if reason is None else str(reason)


def said_all(rejected: Mapping[str, Rejection] | None) -> dict[str, str]:
    """Each host's rejection as its line."""
    return {host: str(reason) for host, reason in (rejected or {}).items()}


def requests(demand: Demand, n: int, prefix: str = "vm", exclude: frozenset[str] = frozenset()) -> list[Request]:
    return [Request(f"{prefix}{i}", demand, exclude) for i in range(n)]


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
