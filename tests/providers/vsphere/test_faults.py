"""What a vSphere fault means to corral: the VM gone, or an error retrying may mend or not, and its cause."""

from __future__ import annotations

import http.client
import socket
from typing import Any
from xml.parsers.expat import ExpatError

import pytest
from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError, VmNotFound
from corral.providers.vsphere.causes import cause_of
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


@pytest.mark.parametrize(("error", "cause"), [
    (vim.fault.NotAuthenticated(), Cause.SESSION),  # a NoPermission, but the session's end
    (TimeoutError("timed out"), Cause.TIMEOUT),  # an OSError, but a timeout
    (vim.fault.Timedout(), Cause.TIMEOUT),
    (vmodl.fault.HostNotConnected(), Cause.HOST),
    (vmodl.fault.HostNotReachable(), Cause.HOST),
    (vim.fault.InvalidHostState(), Cause.HOST),  # in maintenance
    (vim.fault.InvalidHostConnectionState(), Cause.HOST),
    (vim.fault.NoHost(), Cause.HOST),
    (gone(VM), Cause.NOT_FOUND),
    (vim.fault.NotFound(), Cause.NOT_FOUND),
    (vim.fault.FileNotFound(), Cause.NOT_FOUND),
    (vmodl.fault.InvalidArgument(), Cause.REFUSED),
    (vim.fault.DuplicateName(), Cause.REFUSED),
    (vim.fault.NoPermission(), Cause.REFUSED),
    (vim.fault.InsufficientResourcesFault(), Cause.REFUSED),
    (vim.fault.NoDiskSpace(), Cause.REFUSED),
    (vim.fault.InvalidPowerState(), Cause.REFUSED),
    (vim.fault.InvalidLogin(), Cause.REFUSED),
    (ConnectionRefusedError(111, "refused"), Cause.UNREACHABLE),
    (ConnectionResetError(104, "reset"), Cause.UNREACHABLE),
    (socket.gaierror(-2, "no such name"), Cause.UNREACHABLE),
    (http.client.RemoteDisconnected("closed"), Cause.UNREACHABLE),
    (http.client.BadStatusLine("x"), Cause.UNREACHABLE),
    (ExpatError("no element found"), Cause.UNREACHABLE),  # an answer cut off
    (vmodl.fault.RequestCanceled(), Cause.OTHER),
    (vim.fault.InvalidState(), Cause.OTHER),
    (ValueError("?"), Cause.OTHER),
    (None, Cause.OTHER),
])
def test_cause_of(error: Any, cause: Cause) -> None:
    assert cause_of(error) is cause


@pytest.mark.parametrize(("exc", "cause", "text"), [
    (vim.fault.NotAuthenticated(), Cause.SESSION, "failed: NotAuthenticated"),
    (TimeoutError("timed out"), Cause.TIMEOUT, "no answer in time (TimeoutError)"),
    (ConnectionResetError(104, "reset"), Cause.UNREACHABLE, "vCenter unreachable (ConnectionResetError)"),
    (vmodl.fault.HostNotConnected(), Cause.HOST, "failed: HostNotConnected"),
    (gone(VM), Cause.NOT_FOUND, "v1"),
    (gone(OTHER), Cause.NOT_FOUND, "the object is gone"),
    (vim.fault.InsufficientResourcesFault(), Cause.REFUSED, "failed: InsufficientResourcesFault"),
])
def test_a_call_error_carries_its_cause(exc: BaseException, cause: Cause, text: str) -> None:
    error = call_error("CloneVM_Task", exc, ("v1", VM))
    assert error.cause is cause and text in str(error)


@pytest.mark.parametrize(("fault", "cause"), [
    (vim.fault.DuplicateName(), Cause.REFUSED),
    (vim.fault.InvalidHostState(), Cause.HOST),
    (vim.fault.Timedout(), Cause.TIMEOUT),
    (vim.fault.TaskInProgress(), Cause.REFUSED),
    (vim.fault.InvalidState(), Cause.OTHER),
])
def test_a_failed_task_carries_its_cause(fault: Any, cause: Cause) -> None:
    error = task_error(TaskOutcome(ok=False, error="failed", fault=fault), "v1", "destroy")
    assert error is not None and error.cause is cause
