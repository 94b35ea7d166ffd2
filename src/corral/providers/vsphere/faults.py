"""What a vSphere fault means to corral: the VM is gone, or a failure retrying may mend or not.

Every call on a VM names the VM it works on (``about``: its name and reference). A
``ManagedObjectNotFound`` about that VM itself means it no longer exists (deleted behind
corral's back, before the feed saw it go): :class:`~corral.providers.base.VmNotFound`. Any
other fault is a :class:`~corral.providers.base.ProviderError`, retryable unless it is one of
:data:`NOT_RETRYABLE` (a name taken or invalid, an argument or object the vCenter rejects),
which no retry mends. Each carries its cause (:func:`~corral.providers.vsphere.causes.cause_of`).
"""

from __future__ import annotations

from typing import Any

from pyVmomi import vim, vmodl

from corral.providers.base import Cause, ProviderError, VmNotFound
from corral.providers.vsphere.causes import cause_of
from corral.providers.vsphere.session import fault_message
from corral.providers.vsphere.tasks import TaskOutcome

NOT_RETRYABLE = (vim.fault.DuplicateName, vim.fault.InvalidName, vmodl.fault.InvalidArgument, vim.fault.NotFound)

#: the VM a call works on: its name and its managed object reference
About = tuple[str, Any]


def is_gone(fault: Any, ref: Any) -> bool:
    """Whether ``fault`` says that the object ``ref`` refers to no longer exists."""
    return isinstance(fault, vmodl.fault.ManagedObjectNotFound) and \
        getattr(getattr(fault, "obj", None), "_moId", None) == getattr(ref, "_moId", "")


def call_error(label: str, exc: BaseException, about: About | None) -> ProviderError:
    """The error of the call ``label`` that raised ``exc`` (a vSphere fault, or an OSError of a
    vCenter that cannot be reached); ``about`` is the VM the call works on."""
    if isinstance(exc, vmodl.fault.ManagedObjectNotFound):
        if about is not None and is_gone(exc, about[1]):
            return VmNotFound(about[0])
        return ProviderError(f"{label}: the object is gone ({fault_message(exc)})", retryable=False,
                             cause=cause_of(exc))
    if isinstance(exc, vmodl.MethodFault):
        return ProviderError(f"{label} failed: {fault_message(exc)}", retryable=not isinstance(exc, NOT_RETRYABLE),
                             cause=cause_of(exc))
    cause = cause_of(exc)
    what = "no answer in time" if cause is Cause.TIMEOUT else "vCenter unreachable"
    return ProviderError(f"{label}: {what} ({type(exc).__name__})", cause=cause)


def task_error(outcome: TaskOutcome, name: str, verb: str) -> ProviderError | None:
    """The error of a task that was to ``verb`` the VM ``name``; None when it succeeded."""
    if outcome.ok:
        return None
    if isinstance(outcome.fault, vmodl.fault.ManagedObjectNotFound):
        return VmNotFound(name)
    return ProviderError(f"cannot {verb} VM {name!r}: {outcome.error}",
                         retryable=not isinstance(outcome.fault, NOT_RETRYABLE), cause=cause_of(outcome.fault))
