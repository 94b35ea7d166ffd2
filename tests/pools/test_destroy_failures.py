"""A destroy that fails does not become a retry storm: the manager on the real simulator and store."""

from __future__ import annotations

import asyncio
import dataclasses
import logging

import pytest

from corral.domain.states import VmState
from corral.pools.destroying import DestroyFailureStatus
from helpers import eventually

SWEEP_S = 0.05  # the harness's check_interval


def lines(caplog: pytest.LogCaptureFixture, prefix: str) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "corral.pool" and r.getMessage().startswith(prefix)]


async def test_a_permanent_destroy_failure_is_held_until_asked_for_again(harness, pool_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="corral.pool")
    manager = await harness.start([pool_factory("a", 1)])
    await harness.wait_full()
    [vm] = manager.checkout(["a"])
    harness.provider.controls.fail_next("destroy", retryable=False)  # one failure only: any retry would succeed
    assert manager.return_vm(vm.name)
    await eventually(lambda: vm.name in manager.destroys.failures)
    await asyncio.sleep(20 * SWEEP_S)  # twenty sweeps
    assert harness.provider.calls["destroy_vm"] == 1
    record = harness.store.get_vm(vm.name)
    assert (record.state, record.reason) == (VmState.COMPLETED, "returned")
    shown = manager.destroys.view(0.0)
    assert (shown.held, shown.retrying) == (1, 0)
    assert shown.vms[vm.name] == DestroyFailureStatus(error="injected failure (permanent)", permanent=True,
                                                      attempts=1, retry_in=None)
    [said] = lines(caplog, "destroy failed")
    assert said.levelno == logging.ERROR and said.error == "injected failure (permanent)"  # type: ignore[attr-defined]
    # a reconcile (or a resync of the event bus) neither retries it nor reports it unfinished
    caplog.set_level(logging.INFO, logger="corral.recovery")
    await manager.reconcile()
    await asyncio.sleep(2 * SWEEP_S)
    assert harness.provider.calls["destroy_vm"] == 1
    assert [r for r in caplog.records if r.name == "corral.recovery"] == []

    # the operator has mended the cause and asks again
    assert manager.retry_destroy(vm.name)
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED)
    assert harness.store.get_vm(vm.name).reason == "returned"
    assert vm.name not in manager.destroys.failures
    assert not manager.retry_destroy(vm.name)  # nothing left to retry
    assert vm.name not in {v.name for v in await harness.provider.list_vms()}


async def test_a_retryable_destroy_failure_is_retried_less_and_less_often(harness, pool_factory, caplog) -> None:
    caplog.set_level(logging.INFO, logger="corral.pool")
    manager = await harness.start([pool_factory("a", 1)])
    await harness.wait_full()
    [vm] = manager.checkout(["a"])
    harness.provider.controls.fail_next("destroy", 1000)
    assert manager.return_vm(vm.name)
    await asyncio.sleep(32 * SWEEP_S)  # 1.6 s: tries after 0, 0.05, 0.15, 0.35, 0.75 and 1.55 s
    calls = harness.provider.calls["destroy_vm"]
    assert 4 <= calls <= 7, calls  # one a sweep would be about 32
    failure = manager.destroys.failures[vm.name]
    assert failure.attempts == calls and not failure.permanent and failure.delay_s >= 0.4
    assert len(lines(caplog, "destroy failed, will retry")) == 1  # the same error is said once
    assert harness.store.get_vm(vm.name).state is VmState.COMPLETED


async def test_a_stale_view_of_a_vm_destroyed_meanwhile_calls_no_provider(harness, pool_factory) -> None:
    """A sweep reads the records, then destroys: a VM another path destroyed in between is not
    destroyed again at the provider (its record says so)."""
    manager = await harness.start([pool_factory("a", 1)])
    await harness.wait_full()
    [vm] = manager.checkout(["a"])
    assert manager.return_vm(vm.name)
    await eventually(lambda: harness.store.get_vm(vm.name).state is VmState.DESTROYED)
    calls = harness.provider.calls["destroy_vm"]
    stale = dataclasses.replace(vm, state=VmState.COMPLETED)
    assert not await manager.destroy(stale)
    assert harness.provider.calls["destroy_vm"] == calls
