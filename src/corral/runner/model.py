"""What the runner speaks: its settings, the placer and the client it is given, and its records."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from corral.domain.models import Pool
from corral.runner.breaker import BreakerSettings
from corral.runner.work import Op, Priority, Work


@dataclass(slots=True)
class RunnerSettings:
    window_s: float = 0.1  # aggregation window: works arriving within it are placed together
    batch_size: int = 1000  # a batch this big is taken at once, without waiting out the window
    task_limit: int = 10  # provider calls in flight at once, over every host and provider
    host_limit: int = 4  # provider calls in flight at once on one host
    queue_limit: int = 10_000  # works waiting at most (beyond it: QueueFull)
    refill_share: float = 0.5  # pool refills may fill this share of the queue; the rest is kept for requests
    max_tries: int = 3  # attempts per VM, on different hosts
    retry_delay_s: float = 1.0  # backoff before the first rerun; doubled for each later one
    retry_delay_max_s: float = 60.0
    refill_order: str = "need"  # "need": the neediest pool's refills first; "arrival": first come, first served
    breakers: BreakerSettings = field(default_factory=BreakerSettings)  # per host

    def __post_init__(self) -> None:
        if self.window_s < 0 or self.batch_size < 1 or self.max_tries < 1 or not 0 < self.refill_share <= 1:
            raise ValueError("window_s >= 0, batch_size >= 1, max_tries >= 1 and 0 < refill_share <= 1 are needed")
        if self.refill_order not in ("need", "arrival"):
            raise ValueError(f"refill_order is 'need' or 'arrival', not {self.refill_order!r}")

    def backoff(self, tries: int) -> float:
        return min(self.retry_delay_s * 2.0 ** max(tries - 1, 0), self.retry_delay_max_s)


class Where(Protocol):
    """Where the placer put one VM: on ``host``, or nowhere (None) and ``why``."""

    @property
    def host(self) -> str | None: ...

    @property
    def why(self) -> str | None: ...


class Placing(Protocol):
    """What the runner needs of the placer (:class:`corral.pools.placing.Placer`)."""

    def place(self, provider: str, wanted: list[tuple[str, Pool]],
              excludes: Mapping[str, frozenset[str]] | None = None) -> Sequence[Where]:
        """A place for each VM (name, pool), in order; ``excludes`` names hosts a VM must avoid."""

    def release(self, provider: str, name: str) -> None: ...


class RunnerClient(Protocol):
    """The pool manager's side of the runner."""

    def record(self, works: list[Work], host: str) -> list[Work]:
        """``works`` are about to go to ``host``: record the intent; return those still wanted.

        :class:`NotRecorded`: the store could not take the intent now, so nothing is called; the
        works wait ``retry_delay`` and are placed again, no try counted. Any other error: nothing is
        called either, and each work counts a try (placed again up to ``max_tries``, then failed)."""

    def done(self, work: Work, host: str, seconds: float) -> None:
        """The VM was created (or started) on ``host``; the call took ``seconds``."""

    def retrying(self, work: Work, host: str | None, error: str) -> None:
        """A try failed (on ``host``, or no host could take it); the work waits for another."""

    def failed(self, work: Work, error: str) -> None:
        """The work failed for good; ``error`` says why."""

    def dropped(self, work: Work, why: str) -> None:
        """A new VM no host could take now: given up without a try (refill asks again later)."""


class NotRecorded(Exception):
    """The client could not record the intent of a call (its store is unavailable, say): the
    call is not made, and its works wait to be placed again. The client has said why (once)."""


@dataclass(frozen=True, slots=True)
class Dispatch:
    """One provider call as sent: to ``host``, for ``names``, each of class ``classes[i]``."""

    at: float  # monotonic seconds
    op: Op
    provider: str
    host: str
    names: tuple[str, ...]
    classes: tuple[Priority, ...]


@dataclass(slots=True)
class RunnerStats:
    submitted: int = 0
    batches: int = 0
    calls: int = 0
    vms_sent: int = 0
    created: int = 0
    started: int = 0  # HA restarts done
    reruns: int = 0  # failed tries queued again
    failed: int = 0  # works that failed for good
    permanent: int = 0  # of those, failed at once by an error that retrying cannot fix
    unplaced: int = 0  # new VMs dropped because no host could take them
    cancelled: int = 0
    not_recorded: int = 0  # works put back because their intent could not be written (store unavailable)
