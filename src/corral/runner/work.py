"""What the runner is asked to do: one VM to create or start, with its priority and its tries."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum

from corral.domain.models import Pool, VmSpec
from corral.providers.base import Cause


class Priority(IntEnum):
    """Classes of work, most urgent first (a lower value goes first)."""

    HA_RESTART = 0  # a checked-out VM of an HA pool lost its host
    RERUN = 1  # a create that failed, placed again elsewhere
    ONDEMAND = 2  # a VM an on-demand request waits for
    REFILL = 3  # pool stock

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", " ")


class Op(StrEnum):
    CREATE = "create"  # clone a new VM from its pool's template
    START = "start"  # start an existing VM on another host (HA restart)


@dataclass(eq=False, slots=True)
class Work:
    """One VM for the runner. Identity is the object: two works are never equal.

    ``priority`` is the class the work waits in now (a failed create waits again as a rerun);
    ``pool_priority`` orders works of one class (higher first), then ``seq`` (first come first
    served). ``tried`` are the hosts that failed it, never offered again; ``exclude`` are hosts
    it must avoid from the start (an HA restart's dead host).
    """

    op: Op
    spec: VmSpec
    pool: Pool
    priority: Priority
    pool_priority: int = 0
    exclude: frozenset[str] = frozenset()
    seq: int = 0
    tries: int = 0
    tried: set[str] = field(default_factory=set)
    cause: Cause | None = None  # why its last try failed
    not_before: float = 0.0  # monotonic seconds; a rerun waits out its backoff
    arrived: float = 0.0  # monotonic seconds when it entered the queue (or became due)
    queued: bool = False  # waiting in the runner's queue (not taken for placement yet)
    sent: bool = False  # its provider call is under way
    recorded: bool = False  # the store holds its record (a create's ``pending`` intent)
    maybe_recorded: bool = False  # the write of its record got no answer: the store may hold it
    cancelled: bool = False

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def provider(self) -> str:
        return self.pool.provider

    @property
    def request_id(self) -> str | None:
        return self.spec.request_id

    def key(self) -> tuple[int, int, int]:
        """Order of service: class, then the pool's priority (higher first), then arrival (the queue
        orders waiting refills by their pool's need as well: :mod:`corral.runner.queue`)."""
        return (int(self.priority), -self.pool_priority, self.seq)

    def avoid(self) -> frozenset[str]:
        """Hosts this work must not be placed on."""
        return self.exclude | frozenset(self.tried) if self.tried else self.exclude


class QueueFull(Exception):
    """The runner cannot take more work now; the message says why (shown to API callers)."""
