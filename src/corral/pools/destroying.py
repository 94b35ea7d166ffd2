"""What the pool manager does after a destroy call, and what it remembers of failed ones.

A destroy ends one of four ways (:class:`Outcome`): the VM was destroyed; it was gone already
(someone deleted it, or an earlier call whose answer was lost did): corral records it
destroyed either way; the call failed in a way retrying may mend; or it failed for good
(a ``ProviderError`` with ``retryable=False``, e.g. a permission fault).

:func:`after_destroy` is the decision, a pure function: whether to record the VM destroyed,
what to remember of the failure, and what to log. A retryable failure is tried again after
one sweep interval, then after twice the last wait each time, up to an hour; when the endpoint
(or the host's connection) could not be reached or its session could not be renewed, up to
``decide.ENDPOINT_BACKOFF_MAX_S``: a try then costs one quick failed call, and the VMs returned
during an outage go within seconds of its end, not after as long again. A permanent one
is not tried again until corral restarts or someone asks for it (``DELETE /vm/<name>``):
retrying cannot mend it, and a permission fault repeated every few seconds for every VM
only buries the one line that matters. Either is logged when it first happens and when the
error changes, not on every try. The record keeps its destroy-intent state meanwhile, and
``/status?view=monitoring`` and ``GET /vm/<name>`` show the error.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from corral.pools.decide import ENDPOINT_BACKOFF_MAX_S
from corral.providers.base import ENDPOINT_CAUSES, Cause, ProviderError, VmNotFound

MAX_DELAY_S = 3600.0  # a retryable failure is tried at least once an hour


def max_delay_for(cause: Cause | None) -> float:
    """The longest wait before a destroy that failed with ``cause`` is tried again."""
    return ENDPOINT_BACKOFF_MAX_S if cause in ENDPOINT_CAUSES else MAX_DELAY_S


class Outcome(StrEnum):
    DESTROYED = "destroyed"  # the provider had the VM and deleted it
    GONE = "gone"  # the provider does not have it (any more)
    FAILED = "failed"  # the call failed; trying again may help
    REFUSED = "refused"  # the call failed for good; trying again will not help


def outcome_of(error: ProviderError | None) -> Outcome:
    """The outcome of a destroy call that raised ``error`` (None: it returned)."""
    if error is None:
        return Outcome.DESTROYED
    if isinstance(error, VmNotFound):
        return Outcome.GONE
    return Outcome.FAILED if error.retryable else Outcome.REFUSED


@dataclass(frozen=True, slots=True)
class DestroyFailure:
    """The last failed destroy of one VM."""

    error: str
    permanent: bool
    attempts: int  # failed destroy calls in a row
    delay_s: float  # the wait before the next try (0 for a permanent failure)
    retry_at: float | None  # when (monotonic seconds) to try again; None: not before a restart or a request


@dataclass(frozen=True, slots=True)
class Decision:
    destroyed: bool  # record the VM destroyed
    failure: DestroyFailure | None  # what to remember of the failure; None: nothing
    message: str | None  # the line to log; None when nothing changed since the last one
    level: int  # its logging level


def after_destroy(outcome: Outcome, error: str | None, previous: DestroyFailure | None, now: float, *,
                  first_delay_s: float, max_delay_s: float = MAX_DELAY_S) -> Decision:
    """What to do after a destroy call ended with ``outcome`` (``error``: its message).

    ``previous`` is the VM's last failure, ``now`` the monotonic time, ``first_delay_s`` the
    wait after a first retryable failure (the sweep interval).
    """
    if outcome is Outcome.DESTROYED:
        return Decision(True, None, "destroyed", logging.INFO)
    if outcome is Outcome.GONE:
        return Decision(True, None, "already gone; recorded destroyed", logging.INFO)
    text = error or outcome.value
    permanent = outcome is Outcome.REFUSED
    attempts = previous.attempts + 1 if previous is not None else 1
    if permanent:
        failure = DestroyFailure(text, True, attempts, 0.0, None)
    else:
        last = previous.delay_s if previous is not None and not previous.permanent else 0.0
        delay = min(last * 2 if last else first_delay_s, max_delay_s)
        failure = DestroyFailure(text, False, attempts, delay, now + delay)
    if previous is not None and previous.error == text and previous.permanent == permanent:
        return Decision(False, failure, None, logging.DEBUG)
    if permanent:
        return Decision(False, failure, "destroy failed, not retried (permanent error)", logging.ERROR)
    return Decision(False, failure, "destroy failed, will retry", logging.WARNING)


def due(failure: DestroyFailure | None, now: float) -> bool:
    """Whether a VM whose last destroy ended in ``failure`` may be tried again at ``now``."""
    return failure is None or (failure.retry_at is not None and now >= failure.retry_at)


class DestroyRetries:
    """The failed destroys the manager remembers (in memory: a restart tries every one again)."""

    def __init__(self, first_delay_s: float) -> None:
        self.first_delay_s = first_delay_s
        self.failures: dict[str, DestroyFailure] = {}

    def due(self, name: str, now: float) -> bool:
        return due(self.failures.get(name), now)

    def record(self, name: str, outcome: Outcome, error: str | None, now: float,
               cause: Cause | None = None) -> Decision:
        """Decide after a destroy call of ``name`` (failed with ``cause``) and remember its failure, if any."""
        decision = after_destroy(outcome, error, self.failures.get(name), now, first_delay_s=self.first_delay_s,
                                 max_delay_s=max_delay_for(cause))
        if decision.failure is None:
            self.failures.pop(name, None)
        else:
            self.failures[name] = decision.failure
        return decision

    def clear(self, name: str) -> bool:
        """Forget the failure of ``name`` (it is to be tried now); False if it had none."""
        return self.failures.pop(name, None) is not None

    def keep_only(self, names: set[str]) -> None:
        """Forget the failures of VMs no longer waiting to be destroyed."""
        for name in [n for n in self.failures if n not in names]:
            del self.failures[name]

    def view(self, now: float, limit: int = 50) -> DestroyFailures:
        """Counts of the VMs retrying and held, and up to ``limit`` of them (held ones first)."""
        ordered = sorted(self.failures.items(), key=lambda item: (not item[1].permanent, item[0]))
        held = sum(1 for f in self.failures.values() if f.permanent)
        return DestroyFailures(retrying=len(self.failures) - held, held=held,
                               vms={name: describe(f, now) for name, f in ordered[:limit]})


@dataclass(frozen=True, slots=True)
class DestroyFailureStatus:
    """One failure as the API shows it (field names are the JSON keys)."""

    error: str
    permanent: bool
    attempts: int
    retry_in: float | None  # seconds; None when held until someone asks again


@dataclass(frozen=True, slots=True)
class DestroyFailures:
    retrying: int
    held: int
    vms: Mapping[str, DestroyFailureStatus]  # a few of them, held ones first


def describe(failure: DestroyFailure, now: float) -> DestroyFailureStatus:
    """One failure as the API shows it: ``retry_in`` seconds, or None when held."""
    retry_in = round(max(failure.retry_at - now, 0.0), 1) if failure.retry_at is not None else None
    return DestroyFailureStatus(error=failure.error, permanent=failure.permanent, attempts=failure.attempts,
                                retry_in=retry_in)
