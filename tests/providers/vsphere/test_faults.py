"""What a vSphere fault means to corral: the VM gone, or an error retrying may mend or not."""

from __future__ import annotations

from typing import Any

import pytest
from pyVmomi import vim, vmodl

from corral.providers.base import ProviderError, VmNotFound
from corral.providers.vsphere.faults import call_error, is_gone, task_error
from corral.providers.vsphere.tasks import TaskOutcome

VM = vim.VirtualMachine("vm-1")
OTHER = vim.VirtualMachine("vm-2")


def gone(ref: Any) -> vmodl.fault.ManagedObjectNotFound:
    return vmodl.fault.ManagedObjectNotFound(obj=ref)


@pytest.mark.parametrize(("fault", "ref", "expected"), [
    (gone(VM), VM, True),
    (gone(OTHER), VM, False),  # another object is gone (the folder, the host...)
    (vim.fault.InvalidPowerState(), VM, False),
    (None, VM, False),
])
def test_is_gone(fault: Any, ref: Any, expected: bool) -> None:
    assert is_gone(fault, ref) is expected


@pytest.mark.parametrize(("exc", "about", "kind", "retryable", "text"), [
    (gone(VM), ("v1", VM), VmNotFound, False, "v1"),
    (gone(OTHER), ("v1", VM), ProviderError, False, "PowerOnVM_Task: the object is gone"),
    (gone(VM), None, ProviderError, False, "the object is gone"),
    (vim.fault.DuplicateName(), None, ProviderError, False, "PowerOnVM_Task failed: DuplicateName"),
    (vim.fault.InvalidPowerState(), None, ProviderError, True, "PowerOnVM_Task failed: InvalidPowerState"),
    (ConnectionRefusedError(), None, ProviderError, True, "vCenter unreachable (ConnectionRefusedError)"),
])
def test_call_error(exc: BaseException, about: Any, kind: type[ProviderError], retryable: bool, text: str) -> None:
    error = call_error("PowerOnVM_Task", exc, about)
    assert type(error) is kind and error.retryable is retryable and text in str(error)


@pytest.mark.parametrize(("outcome", "kind", "retryable"), [
    (TaskOutcome(ok=True), None, None),
    (TaskOutcome(ok=False, error="gone", fault=gone(VM)), VmNotFound, False),
    (TaskOutcome(ok=False, error="taken", fault=vim.fault.DuplicateName()), ProviderError, False),
    (TaskOutcome(ok=False, error="busy", fault=vim.fault.TaskInProgress()), ProviderError, True),
])
def test_task_error(outcome: TaskOutcome, kind: type[ProviderError] | None, retryable: bool | None) -> None:
    error = task_error(outcome, "v1", "destroy")
    if kind is None:
        assert error is None
    else:
        assert type(error) is kind and error.retryable is retryable
