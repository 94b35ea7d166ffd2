"""What the manager does after a destroy call: the decision, as tables."""

from __future__ import annotations

import logging

import pytest

from corral.pools.destroying import (
    MAX_DELAY_S,
    DestroyFailure,
    DestroyFailureStatus,
    DestroyRetries,
    Outcome,
    after_destroy,
    due,
    max_delay_for,
    outcome_of,
)
from corral.providers.base import Cause, HostUnavailable, ProviderError, VmNotFound

F = DestroyFailure
NOW = 1000.0


@pytest.mark.parametrize(("error", "outcome"), [
    (None, Outcome.DESTROYED),
    (VmNotFound("x"), Outcome.GONE),
    (ProviderError("vCenter unreachable"), Outcome.FAILED),
    (HostUnavailable("host h1 is not connected"), Outcome.FAILED),
    (ProviderError("permission to perform this operation was denied", retryable=False), Outcome.REFUSED),
])
def test_outcome_of_a_destroy_call(error: ProviderError | None, outcome: Outcome) -> None:
    assert outcome_of(error) is outcome


@pytest.mark.parametrize(("cause", "limit"), [
    (None, MAX_DELAY_S), (Cause.OTHER, MAX_DELAY_S), (Cause.HOST, MAX_DELAY_S), (Cause.TIMEOUT, MAX_DELAY_S),
    (Cause.UNREACHABLE, 5.0), (Cause.SESSION, 5.0),
])
def test_an_endpoint_out_of_reach_is_tried_again_within_seconds(cause: Cause | None, limit: float) -> None:
    assert max_delay_for(cause) == limit
    retries = DestroyRetries(first_delay_s=0.05)
    for _ in range(20):  # a long outage: the wait doubles up to the limit, no further
        retries.record("vm", Outcome.FAILED, "down", NOW, cause)
    assert retries.failures["vm"].delay_s == limit


@pytest.mark.parametrize(("outcome", "error", "previous", "destroyed", "failure", "message", "level"), [
    # the VM is gone, one way or another: recorded destroyed, any failure forgotten
    (Outcome.DESTROYED, None, None, True, None, "destroyed", logging.INFO),
    (Outcome.GONE, None, None, True, None, "already gone; recorded destroyed", logging.INFO),
    (Outcome.GONE, None, F("down", False, 3, 20.0, 990.0), True, None, "already gone; recorded destroyed",
     logging.INFO),
    (Outcome.DESTROYED, None, F("denied", True, 1, 0.0, None), True, None, "destroyed", logging.INFO),
    # a first retryable failure: tried again after one sweep interval, said once
    (Outcome.FAILED, "down", None, False, F("down", False, 1, 5.0, NOW + 5.0), "destroy failed, will retry",
     logging.WARNING),
    # the same failure again: the wait doubles, nothing more is said
    (Outcome.FAILED, "down", F("down", False, 1, 5.0, 995.0), False, F("down", False, 2, 10.0, NOW + 10.0),
     None, logging.DEBUG),
    (Outcome.FAILED, "down", F("down", False, 9, 2560.0, 990.0), False,
     F("down", False, 10, MAX_DELAY_S, NOW + MAX_DELAY_S), None, logging.DEBUG),
    (Outcome.FAILED, "down", F("down", False, 10, MAX_DELAY_S, 990.0), False,
     F("down", False, 11, MAX_DELAY_S, NOW + MAX_DELAY_S), None, logging.DEBUG),
    # another error is a change: said again, the wait goes on doubling
    (Outcome.FAILED, "timeout", F("down", False, 2, 10.0, 995.0), False, F("timeout", False, 3, 20.0, NOW + 20.0),
     "destroy failed, will retry", logging.WARNING),
    # a permanent error: not tried again (no retry time), said once as an error
    (Outcome.REFUSED, "denied", None, False, F("denied", True, 1, 0.0, None),
     "destroy failed, not retried (permanent error)", logging.ERROR),
    (Outcome.REFUSED, "denied", F("down", False, 4, 40.0, 990.0), False, F("denied", True, 5, 0.0, None),
     "destroy failed, not retried (permanent error)", logging.ERROR),
    # retried after a permanent error (a restart or an operator) and failing retryably: first wait again
    (Outcome.FAILED, "down", F("denied", True, 1, 0.0, None), False, F("down", False, 2, 5.0, NOW + 5.0),
     "destroy failed, will retry", logging.WARNING),
])
def test_after_destroy(outcome: Outcome, error: str | None, previous: DestroyFailure | None, destroyed: bool,
                       failure: DestroyFailure | None, message: str | None, level: int) -> None:
    decision = after_destroy(outcome, error, previous, NOW, first_delay_s=5.0)
    assert (decision.destroyed, decision.failure, decision.message, decision.level) == \
        (destroyed, failure, message, level)


@pytest.mark.parametrize(("failure", "now", "expected"), [
    (None, NOW, True),
    (F("down", False, 1, 5.0, NOW + 5.0), NOW, False),
    (F("down", False, 1, 5.0, NOW + 5.0), NOW + 5.0, True),
    (F("denied", True, 1, 0.0, None), NOW + 10 * MAX_DELAY_S, False),
])
def test_due(failure: DestroyFailure | None, now: float, expected: bool) -> None:
    assert due(failure, now) is expected


def test_the_view_counts_every_failure_and_lists_a_bounded_few() -> None:
    retries = DestroyRetries(first_delay_s=5.0)
    for i in range(3):
        retries.record(f"vm-{i}", Outcome.FAILED, "down", NOW)
    retries.record("vm-x", Outcome.REFUSED, "denied", NOW)
    view = retries.view(NOW + 2.0, limit=2)
    assert (view.retrying, view.held) == (3, 1)
    # those held for an operator first, then by name
    assert view.vms == {"vm-x": DestroyFailureStatus(error="denied", permanent=True, attempts=1, retry_in=None),
                        "vm-0": DestroyFailureStatus(error="down", permanent=False, attempts=1, retry_in=3.0)}
    assert list(view.vms) == ["vm-x", "vm-0"]
    retries.keep_only({"vm-x"})
    assert set(retries.failures) == {"vm-x"}
