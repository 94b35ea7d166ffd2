"""The simulator's log of bulk VM calls, for tests and benchmarks of how calls are batched."""

from __future__ import annotations

from dataclasses import dataclass

#: How many calls the log keeps; older ones drop off.
CALL_LOG_SIZE = 10_000


@dataclass(frozen=True, slots=True)
class SimCall:
    """One ``create_vms`` (``op="create"``) or ``start_vms`` (``op="start"``) call.

    ``at`` is ``time.monotonic()`` when the call got its concurrency slot, that is when it was
    dispatched to the (simulated) endpoint; a call that then failed is logged all the same.
    """

    op: str
    host: str
    names: tuple[str, ...]
    at: float
