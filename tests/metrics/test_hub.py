"""One process's metrics over a real pool service (simulator, sqlite): the first fill is timed,
a service started again is followed again, and a store that cannot name the managers leaves
only their readings out."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from corral.domain.models import Pool
from corral.metrics import Metrics, MetricsSettings
from corral.pools.service import PoolService
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.store.sqlite import SqliteStore
from helpers import QUICK_RUNNER, eventually, sim_settings

SETTINGS = ManagerSettings(task_limit=10, check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER)


@pytest.fixture
def service(tmp_path: Path) -> Iterator[PoolService]:
    store = SqliteStore(tmp_path / "corral.db")
    service = PoolService([Pool(name="a", template="t/a", size=3, provider="sim")],
                          {"sim": SimProvider("sim", sim_settings())}, store, SETTINGS)
    yield service
    store.close()


def timed(metrics: Metrics, key: str) -> int:
    hist = metrics.recorder.histograms.get(key, {}).get(("a",))
    return 0 if hist is None else hist.total


async def test_the_first_fill_and_the_fills_after_a_restart_are_timed(service: PoolService) -> None:
    metrics = Metrics(MetricsSettings(), service, lambda: service)
    await metrics.start()
    await service.start()
    try:
        await eventually(lambda: timed(metrics, "time_to_ready_state") == 3 and timed(metrics, "clone") == 3)
        await service.stop()
        await service.start()  # a new manager, a new bus: recovery keeps the 3, a checkout makes one more
        await eventually(lambda: "metrics" in service.monitoring().events.subscribers)  # followed again
        taken = service.checkout({"a": 1})
        assert not hasattr(taken, "short")
        await eventually(lambda: timed(metrics, "time_to_ready_state") == 4 and timed(metrics, "clone") == 4)
    finally:
        await service.stop()
        await metrics.stop()


async def test_managers_that_cannot_be_read_leave_only_their_readings_out(
        service: PoolService, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "corral.metrics")
    answers: list[Any] = [ConnectionError("redis down"), ConnectionError("redis down"),
                          {"m1": {"state": "Active", "score": 100, "pools": ["a"]}}]

    async def managers() -> dict[str, dict[str, Any]]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer  # type: ignore[no-any-return]

    metrics = Metrics(MetricsSettings(), service, lambda: None, managers)
    for _ in range(2):
        keys = {r.key for r in await metrics.readings()}
        assert "ready" in keys and "manager_state" not in keys
    assert {r.key for r in await metrics.readings()} >= {"ready", "manager_state", "manager_pools"}
    said = [r.getMessage() for r in caplog.records if r.name == "corral.metrics"]
    assert said == ["reading the managers from the store failed; the managers' metrics are left out until it "
                    "works again", "reading the managers from the store works again"]
