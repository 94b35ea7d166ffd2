"""A provider that cannot be reached at start does not stop the others; it is retried with backoff."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from pathlib import Path

import pytest

from corral.config import parse_config
from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.pools.connections import LinkStatus, next_retry_delay
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.runtime import build_providers
from corral.store.sqlite import SqliteStore
from helpers import QUICK_RUNNER, eventually, quick_config, ready_counts, sim_settings

POOLS = [Pool(name="pa", template="t", size=2, provider="a"), Pool(name="pb", template="t", size=2, provider="b")]


def _manager(store: SqliteStore, providers: dict[str, SimProvider], retry_s: float) -> PoolManager:
    settings = ManagerSettings(task_limit=10, check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER,
                               connect_retry_s=retry_s, connect_retry_max_s=retry_s * 4)
    return PoolManager(POOLS, providers, store, settings)


@pytest.mark.parametrize(("previous", "first", "cap", "delay"), [
    (None, 1.0, 60.0, 1.0),
    (1.0, 1.0, 60.0, 2.0),
    (16.0, 1.0, 60.0, 32.0),
    (32.0, 1.0, 60.0, 60.0),
    (60.0, 1.0, 60.0, 60.0),
    (None, 5.0, 2.0, 2.0),  # the cap wins over a first delay above it
])
def test_next_retry_delay(previous: float | None, first: float, cap: float, delay: float) -> None:
    assert next_retry_delay(previous, first, cap) == delay


async def test_the_other_providers_serve_while_one_is_retried_until_it_comes_up(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = SqliteStore(tmp_path / "corral.db")
    a, b = SimProvider("a", sim_settings()), SimProvider("b", sim_settings())
    b.controls.fail_next("connect", 3)
    manager = _manager(store, {"a": a, "b": b}, retry_s=0.1)
    try:
        await manager.start()
        view = manager.connections.view()
        assert view["a"] == LinkStatus(connected=True, error=None, attempts=1, retry_in=None)
        assert view["b"].connected is False and view["b"].error == "injected failure"
        assert view["b"].attempts == 1 and view["b"].retry_in is not None and 0 < view["b"].retry_in <= 0.1

        await eventually(lambda: ready_counts(store).get("pa") == 2, timeout=5)
        assert "pb" not in ready_counts(store) and b.calls["create_vms"] == 0
        assert manager.checkout(["pa"]) is not None

        await eventually(lambda: ready_counts(store).get("pb") == 2, timeout=5)
        assert b.calls["connect"] == 4
        assert manager.connections.view()["b"] == LinkStatus(connected=True, error=None, attempts=4, retry_in=None)
    finally:
        await manager.stop()
        store.close()
    retries = [r for r in caplog.records if r.getMessage() == "provider unreachable, retrying"]
    assert [(r.provider, r.error, r.retry_in) for r in retries] == [  # type: ignore[attr-defined]
        ("b", "injected failure", 0.1), ("b", "injected failure", 0.2), ("b", "injected failure", 0.4)]
    assert all(r.exc_info is None for r in caplog.records), "no traceback"
    assert any(r.getMessage() == "provider connected" and r.provider == "b" for r in caplog.records)  # type: ignore[attr-defined]


async def test_the_vms_of_a_provider_that_is_down_are_left_alone_until_it_is_back(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    store = SqliteStore(tmp_path / "corral.db")
    a, b = SimProvider("a", sim_settings()), SimProvider("b", sim_settings())
    first = _manager(store, {"a": a, "b": b}, retry_s=0.1)
    await first.start()
    await eventually(lambda: ready_counts(store) == {"pa": 2, "pb": 2}, timeout=5)
    checked_out = first.checkout(["pb"], lifetime_s=0.2)
    assert checked_out is not None
    stock = {v.name for v in store.list_vms(pool="pb", states=(VmState.READY,))}
    await first.stop()

    b.controls.fail_next("connect", 2)
    again = _manager(store, {"a": a, "b": b}, retry_s=0.25)
    try:
        await again.start()
        await eventually(lambda: b.calls["connect"] == 3, timeout=5)  # sweeps ran meanwhile
        # while b was down its VMs were neither expired, destroyed nor called lost
        assert store.get_vm(checked_out[0].name).state is VmState.RUNNING, "its lifetime ended, but b is down"
        assert again.stats.vanished == 0 and b.calls["destroy_vm"] == 0
        assert not [r for r in caplog.records if r.levelno >= logging.WARNING
                    and r.getMessage() != "provider unreachable, retrying"]
        await eventually(lambda: again.connections.view()["b"].connected, timeout=5)
        await eventually(lambda: store.get_vm(checked_out[0].name).state is VmState.DESTROYED, timeout=5)
        assert stock <= {v.name for v in store.list_vms(pool="pb", states=(VmState.READY,))}
        assert again.stats.vanished == 0
    finally:
        await again.stop()
        store.close()


async def test_a_vcenter_that_never_answers_does_not_hold_up_the_others(tmp_path: Path) -> None:
    silent = socket.create_server(("127.0.0.1", 0))  # takes connections, never says a word
    doc = quick_config(tmp_path, [{"name": "sim-pool", "template": "t", "size": 2, "provider": "sim"},
                                  {"name": "vc-pool", "template": "Templates/t", "size": 2, "provider": "vc"}])
    doc[":providers"][":vc"] = {"provider_class": "vsphere", "server": "127.0.0.1",
                                "port": silent.getsockname()[1], "username": "u", "password": "p",
                                "insecure": True, "datacenter": "dc1"}
    config, _ = parse_config(doc)
    store = SqliteStore(tmp_path / "corral.db")
    manager = PoolManager(config.domain_pools(), build_providers(config), store,
                          ManagerSettings(check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER,
                                          connect_wait_s=0.3))
    try:
        started = time.monotonic()
        await manager.start()
        assert time.monotonic() - started < 2
        await eventually(lambda: ready_counts(store).get("sim-pool") == 2, timeout=5)
        assert manager.connections.view()["vc"] == LinkStatus(connected=False, error=None, attempts=1,
                                                              retry_in=None), "still connecting"
    finally:
        await asyncio.wait_for(manager.stop(), 5)
        silent.close()
        store.close()
