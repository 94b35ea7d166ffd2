"""The API's 503s for an unavailable store are logged once, then at most once per interval."""

from __future__ import annotations

import pytest

from corral.api.app import UNAVAILABLE_LOG_EVERY_S, log_again


@pytest.mark.parametrize(("last_at", "now", "logged"), [
    (None, 100.0, True),  # the first of an outage
    (100.0, 100.5, False),  # the next ones, whatever their reason
    (100.0, 100.0 + UNAVAILABLE_LOG_EVERY_S - 0.01, False),
    (100.0, 100.0 + UNAVAILABLE_LOG_EVERY_S, True),  # then once per interval, with the count since
])
def test_an_outage_is_logged_once_then_once_per_interval(last_at: float | None, now: float, logged: bool) -> None:
    assert log_again(last_at, now) is logged
