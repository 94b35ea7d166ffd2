"""The provider protocol every backend implements, and the data it speaks.

All methods are coroutines. A provider holds one session to its endpoint, shared by every
pool and task, and bounds its own concurrency. Inventory comes from one change feed
(:meth:`Provider.wait_for_updates`), shaped after vSphere's ``WaitForUpdatesEx``: the first
call (``version=None``) returns a full snapshot, later calls return only what changed since
the version they are given, or an empty update when ``timeout`` passes with no change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, runtime_checkable

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec


class Cause(StrEnum):
    """Why a provider call (or one VM of a bulk call) failed: the label failures are counted by
    in ``/status`` and in metrics. A small fixed set, so that counts stay comparable across
    providers; a provider picks the closest, ``other`` when none fits."""

    SESSION = "session"  # the endpoint's session expired or was ended (and could not be renewed at once)
    UNREACHABLE = "unreachable"  # the endpoint as a whole could not be reached (a vCenter, every libvirt host)
    TIMEOUT = "timeout"  # the call took longer than it is allowed
    HOST = "host"  # the host is down, in maintenance, unknown, unreachable on its own, or failed the VM
    NOT_FOUND = "not_found"  # the VM, template, snapshot or volume does not exist
    REFUSED = "refused"  # the endpoint refused the request: bad input, no space, no permission, a conflict
    FEED = "feed"  # the change feed's connection dropped
    INJECTED = "injected"  # a failure a test injected into the simulator
    OTHER = "other"


#: Causes that are the endpoint's as a whole, not the host's or the VM's: no host breaker opens
#: for them, and what failed for them is tried again within seconds once the endpoint answers.
ENDPOINT_CAUSES: frozenset[Cause] = frozenset({Cause.UNREACHABLE, Cause.SESSION})


class ProviderError(Exception):
    """A provider call failed. ``retryable`` says whether trying again may help, ``cause`` why
    it failed (see :class:`Cause`)."""

    def __init__(self, message: str, *, retryable: bool = True, cause: Cause = Cause.OTHER) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.cause = cause


class VmNotFound(ProviderError):
    """The named VM does not exist at the provider."""

    def __init__(self, name: str) -> None:
        super().__init__(f"VM {name!r} not found", retryable=False, cause=Cause.NOT_FOUND)
        self.name = name


class HostUnavailable(ProviderError):
    """The host is down, in maintenance or unknown."""

    def __init__(self, message: str, *, retryable: bool = True, cause: Cause = Cause.HOST) -> None:
        super().__init__(message, retryable=retryable, cause=cause)


@dataclass(frozen=True, slots=True)
class InventoryUpdate:
    """One answer of the change feed.

    ``full`` is True for the snapshot that answers ``version=None`` (or a version the
    provider no longer knows): then ``vms``/``hosts`` are the whole inventory and anything
    not listed is gone. Otherwise they are the records that changed, and ``removed_vms`` /
    ``removed_hosts`` name what left.
    """

    version: int
    full: bool = False
    vms: list[ProviderVm] = field(default_factory=list)
    removed_vms: list[str] = field(default_factory=list)
    hosts: list[HostInfo] = field(default_factory=list)
    removed_hosts: list[str] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.full or self.vms or self.removed_vms or self.hosts or self.removed_hosts)


@dataclass(frozen=True, slots=True)
class CreateResult:
    """The outcome of creating (or starting) one VM in a bulk call."""

    name: str
    ok: bool
    error: str | None = None
    retryable: bool = True  # for a failure: whether creating it again may succeed
    cause: Cause | None = None  # for a failure: why (see :class:`Cause`); None reads as ``other``


@runtime_checkable
class Provider(Protocol):
    """What corral needs from a virtualization backend.

    A backend subclasses this protocol, so the optional members below keep their defaults
    unless it sets them; callers read them directly.
    """

    name: str
    #: True when ``create_vms``/``start_vms`` with many VMs is one real call to the endpoint;
    #: False when the endpoint has no bulk call (the runner then sends one VM per call,
    #: concurrently).
    bulk_calls: bool = False
    #: True when :meth:`vm_ready` is more than the guest being up (it connects to the VM), so
    #: a guest the feed reports up is still asked; False when the feed's word is enough.
    probes_readiness: bool = False
    #: Why this provider cannot move VMs between hosts (shown in the status); None: it can. A
    #: provider may set it once connected, when it learns it from the endpoint. Migration at
    #: checkout and rebalancing then leave its VMs where they are.
    cannot_migrate: str | None = None
    #: Sessions renewed so far: the session had expired (or was ended by the endpoint), the
    #: provider logged in again and the call went on. Not a failure, but counted in ``/status``
    #: and metrics (see :mod:`corral.providers.counting`), so that a session that keeps
    #: expiring is seen. A renewal that fails is a :class:`ProviderError` with ``Cause.SESSION``.
    sessions_renewed: int = 0

    async def connect(self) -> None:
        """Open the (single, shared) session. Idempotent."""

    async def close(self) -> None:
        """Close the session and release resources. Idempotent."""

    async def list_hosts(self) -> list[HostInfo]:
        """Every host with its current CPU and memory use."""

    async def template_info(self, template: str) -> TemplateInfo | None:
        """The size and CPU needs of ``template``; None when the provider does not know it."""

    async def list_vms(self) -> list[ProviderVm]:
        """Every VM the provider has (a full read; the feed is the fast path)."""

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        """Create several VMs on one host in one call; they power on and start booting.

        One result per spec, in order. A failure of one VM does not fail the others.
        Raises :class:`HostUnavailable` when the host cannot take VMs at all, and
        :class:`ProviderError` when the whole call failed (then none was created).
        """

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        """Start existing VMs whose host failed, on ``host`` (an HA restart: disks are on shared storage).

        One result per name, in order. A failure of one VM does not fail the others. A VM
        still powered on on a host that is up is refused (not retryable; the error names the
        VM and its host), and a VM that does not exist gives a not-retryable result naming it.
        Raises :class:`HostUnavailable` when ``host`` cannot take VMs, and
        :class:`ProviderError` when the whole call failed (then none was started).
        """

    async def destroy_vm(self, name: str) -> None:
        """Power off and delete a VM. Raises :class:`VmNotFound` if it does not exist."""

    async def power_on(self, name: str) -> None: ...

    async def power_off(self, name: str) -> None: ...

    async def migrate_vm(self, name: str, host: str) -> None:
        """Move a VM to another host."""

    async def vm_ready(self, name: str) -> bool:
        """True when the VM is reachable for its user (booted, accepting connections)."""

    async def add_disk(self, name: str, size_gb: int) -> None:
        """Attach a new, empty disk of ``size_gb`` GiB. Raises :class:`VmNotFound`."""

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        """Take a snapshot called ``snapshot`` of a (running) VM. Raises :class:`VmNotFound`."""

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        """Return a VM to a snapshot taken earlier.

        Raises :class:`VmNotFound` if the VM is gone, and :class:`ProviderError`
        (not retryable) if it has no snapshot of that name.
        """

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        """The change feed; see the module docstring."""
