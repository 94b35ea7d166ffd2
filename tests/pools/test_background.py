"""Background steps: a failure is reported (a refused write as one warning line, anything else
with its traceback), never lost."""

from __future__ import annotations

import asyncio
import logging

import pytest

from corral.pools.background import Background
from corral.store.base import Fenced


async def fail(exc: Exception) -> None:
    raise exc


async def test_a_failed_step_is_logged_with_its_traceback(caplog: pytest.LogCaptureFixture) -> None:
    bg = Background()
    with caplog.at_level(logging.WARNING, logger="corral.pool"):
        bg.spawn(fail(RuntimeError("the destroy broke")), "destroy-x")
        await asyncio.sleep(0.01)
    [record] = caplog.records
    assert record.levelno == logging.ERROR and record.getMessage() == "background step failed"
    assert record.exc_info is not None and "the destroy broke" in caplog.text and len(bg) == 0


async def test_a_refused_write_is_one_warning_line(caplog: pytest.LogCaptureFixture) -> None:
    bg = Background()
    with caplog.at_level(logging.WARNING, logger="corral.pool"):
        bg.spawn(fail(Fenced("p", 7, 5)), "destroy-y")
        await asyncio.sleep(0.01)
    [record] = caplog.records
    assert record.levelno == logging.WARNING and record.getMessage() == "write refused by fencing"
    assert record.exc_info is None and "its fencing token is now 7" in record.error  # type: ignore[attr-defined]


async def test_a_cancelled_or_successful_step_says_nothing(caplog: pytest.LogCaptureFixture) -> None:
    bg = Background()
    with caplog.at_level(logging.DEBUG, logger="corral.pool"):
        bg.spawn(asyncio.sleep(0), "fine")
        bg.spawn(asyncio.sleep(10), "long")
        await asyncio.sleep(0.01)
        await bg.stop()
    assert caplog.records == [] and len(bg) == 0
