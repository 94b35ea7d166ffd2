"""What the CPU of each process says about a ``corral bench api`` measurement: the cores each
kept busy (:func:`cores_busy`) and the sentence explaining how several API processes scale
against one (:func:`scaling_note`)."""

from __future__ import annotations

from typing import Protocol

from corral.bench.api_client import LoadResult

SATURATED = 0.85  # this share of the machine's cores (of one core, for one process) counts as all of it
NOT_PROCESSES = ("client", "total")


class Measured(Protocol):
    """A set-up measured at a client count (an ``ApiRow``)."""

    setup: str
    clients: int
    corral: LoadResult


def cores_busy(load: LoadResult) -> dict[str, float]:
    """The cores each server-side process kept busy over the client's run (its CPU seconds over
    the run's seconds), the load client's, and their ``total``; empty where the CPU or the run's
    length is unknown."""
    if not load.run_s or not load.process_cpu_s:
        return {}
    busy = {name: round(cpu / load.run_s, 2) for name, cpu in load.process_cpu_s.items()}
    if load.client_cpu_s is not None:
        busy["client"] = round(load.client_cpu_s / load.run_s, 2)
    busy["total"] = round(sum(busy.values()), 2)
    return busy


def scaling_note(several: Measured | None, one: Measured | None, cores: int) -> str:
    """One sentence: the pairs/s of ``several`` (N API processes) against ``one`` (one process,
    same store, same clients), whether its pool ran dry, the cores each process kept busy, and
    what bounds the scaling: the machine's cores all busy, one saturated process, or neither.
    Empty without both."""
    if several is None or one is None or not one.corral.pairs_per_s:
        return ""
    ratio = several.corral.pairs_per_s / one.corral.pairs_per_s
    head = (f"On {cores} cores at {several.clients} clients, {several.setup} did {ratio:.2f}x the pairs/s of "
            f"{one.setup}")
    refused = several.corral.statuses.get("POST 503", 0)
    if refused:
        head += (f" ({refused} checkouts refused: its pool ran dry, so this is its manager's refill rate "
                 "more than its API's)")
    busy = cores_busy(several.corral)
    if not busy:
        return head + " (the CPU of its processes could not be read)."
    parts = ", ".join(f"{name} {value:.2f}" for name, value in busy.items() if name != "total")
    alone = cores_busy(one.corral).get("total")
    head += (f"; with the load client its processes kept {busy['total']:.2f} of {cores} cores busy ({parts})"
             + (f", against {alone:.2f} for {one.setup}" if alone is not None else ""))
    if busy["total"] >= SATURATED * cores:
        why = ("every core is busy, so the API processes share the cores rather than add to them: "
               "API processes add throughput with cores (or hosts) to run on")
    else:
        name, top = max(((n, v) for n, v in busy.items() if n not in NOT_PROCESSES), key=lambda item: item[1])
        if top >= SATURATED:
            why = f"{name} is the bottleneck, using all of the one core a single-threaded process can use"
        else:
            why = ("neither the machine nor one process is saturated: the pairs wait on round trips between "
                   "the processes, not on CPU")
    return f"{head}: {why}."
