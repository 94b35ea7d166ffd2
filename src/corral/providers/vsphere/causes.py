"""Why a vSphere call failed, in corral's words: :class:`~corral.providers.base.Cause`.

:func:`cause_of` reads a vSphere fault (raised by a call, or the ``info.error`` of a task) or
an error of the connection to the vCenter, and names the cause failures are counted by. It is
a table: the first row whose types match wins, so a narrower fault comes before the one it
derives from (``NotAuthenticated`` is a ``NoPermission``; ``TimeoutError`` is an ``OSError``).
"""

from __future__ import annotations

import http.client
from typing import Any
from xml.parsers.expat import ExpatError

from pyVmomi import vim, vmodl

from corral.providers.base import Cause

#: (the types, their cause), first match wins
CAUSES: tuple[tuple[tuple[type[BaseException], ...], Cause], ...] = (
    # a session the vCenter ended or expired (what a re-login could not mend reaches a caller)
    ((vim.fault.NotAuthenticated,), Cause.SESSION),
    # the call, or the vCenter's own work on it, took too long
    ((TimeoutError, vim.fault.Timedout), Cause.TIMEOUT),
    # the vCenter cannot reach the host, or the host is not connected or in maintenance
    ((vmodl.fault.HostCommunication, vim.fault.InvalidHostState, vim.fault.HostConnectFault,
      vim.fault.HostPowerOpFailed), Cause.HOST),
    # the VM, template, snapshot, file or other object named does not exist
    ((vmodl.fault.ManagedObjectNotFound, vim.fault.NotFound, vim.fault.FileNotFound), Cause.NOT_FOUND),
    # the request is refused: bad input, a name taken, no permission, no room, a conflict
    ((vmodl.fault.InvalidArgument, vim.fault.DuplicateName, vim.fault.InvalidName, vmodl.fault.SecurityError,
      vim.fault.InsufficientResourcesFault, vim.fault.NoDiskSpace, vim.fault.InvalidLogin,
      vmodl.fault.InvalidRequest, vmodl.fault.NotSupported, vim.fault.InvalidDatastore,
      vim.fault.InvalidPowerState, vim.fault.TaskInProgress), Cause.REFUSED),
    # the vCenter could not be reached: refused, reset, closed, a name that does not resolve, TLS,
    # an answer cut off
    ((OSError, http.client.HTTPException, ExpatError), Cause.UNREACHABLE),
)


def cause_of(error: Any) -> Cause:
    """The cause of a failed call or task: ``error`` is the exception a call raised or the fault
    a task ended with; ``other`` for anything no row of :data:`CAUSES` names (or None)."""
    for types, cause in CAUSES:
        if isinstance(error, types):
            return cause
    return Cause.OTHER
