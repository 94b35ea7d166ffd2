"""Hosts, templates, pools and VMs as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from corral.domain.states import PowerState, VmState


class HostHealth(StrEnum):
    """A host's overall status as its endpoint reports it (vSphere's ``overallStatus``)."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"
    GRAY = "gray"  # unknown

    @classmethod
    def of(cls, status: str | None) -> HostHealth:
        """The health an endpoint's status text names; gray (unknown) for none or another text."""
        try:
            return cls(status or cls.GRAY)
        except ValueError:
            return cls.GRAY


class TimingKind(StrEnum):
    """What a recorded duration measured (the history behind ``/summary`` and ``/status``)."""

    CLONE = "clone"  # how long the provider took to make a VM
    BOOT = "boot"  # from the VM's intent until it was ready


@dataclass(frozen=True, slots=True)
class ProviderVm:
    """A VM as the provider sees it."""

    name: str
    host: str
    pool: str | None  # the pool tag / folder the VM lives in, None if not corral's
    template: str | None = None
    powered_on: bool = True
    ip: str | None = None
    guest_ready: bool = False  # the guest finished booting (tools running / boot time elapsed)
    created_at: float = 0.0
    id: str | None = None  # the provider's own id (a vSphere managed object id), when it has one

    @property
    def power_state(self) -> PowerState:
        if not self.powered_on:
            return PowerState.OFF
        return PowerState.UP if self.guest_ready else PowerState.BOOTING


@dataclass(frozen=True, slots=True)
class HostInfo:
    """A host and its current use, as the provider reports it."""

    name: str
    cpu_model: str
    cores: int
    mhz: int
    memory_mb: int
    cpu_used_mhz: float = 0.0
    memory_used_mb: float = 0.0
    up: bool = True  # connected and responding
    maintenance: bool = False
    vm_count: int = 0
    cluster: str = ""
    id: str | None = None
    # What the host's CPU offers. ``cpu_model`` above is the CPU's description as the host
    # reports it (vSphere's ``hardware.cpuPkg[0].description``); vendor, family and flags are
    # the finer picture, empty when the provider does not report them.
    cpu_vendor: str = ""  # "GenuineIntel", "AuthenticAMD", ...
    cpu_family: int | None = None
    cpu_flags: frozenset[str] = frozenset()
    health: HostHealth = HostHealth.GREEN  # overall status
    config_issues: int = 0  # configuration problems the endpoint reports for the host
    memory_allocated_mb: float | None = None  # memory configured for its VMs; None: use memory_used_mb
    # When the use figures (``cpu_used_mhz``, and ``memory_used_mb`` where it comes from the
    # endpoint) last changed, in ``time.monotonic`` seconds: vCenter refreshes a host's
    # quickStats about every 20 s, so a new VM's load shows only after the next change. None
    # when the figures are live (the simulator) or have never been seen to change.
    stats_at: float | None = None

    @property
    def cpu_percent(self) -> float:
        capacity = self.cores * self.mhz
        return 100.0 * self.cpu_used_mhz / capacity if capacity else 0.0

    @property
    def memory_percent(self) -> float:
        return 100.0 * self.memory_used_mb / self.memory_mb if self.memory_mb else 0.0


@dataclass(frozen=True, slots=True)
class TemplateInfo:
    """What a VM cloned from a template asks of its host: size and CPU needs.

    Empty CPU fields ask for nothing. ``cpu_model`` is a model word that must appear as the
    fifth word of the host's CPU description (vmpooler's rule for vSphere hosts).
    """

    name: str
    cpus: int = 1
    memory_mb: int = 1024
    cpu_vendor: str = ""
    cpu_family: int | None = None
    cpu_flags: frozenset[str] = frozenset()
    cpu_model: str = ""


@dataclass(frozen=True, slots=True)
class Pool:
    """A pool as the lifecycle code needs it; built from the configuration."""

    name: str
    template: str
    size: int
    provider: str
    alias: tuple[str, ...] = ()
    timeout_s: float = 15 * 60.0  # pending longer than this -> failed
    ready_ttl_s: float | None = 60 * 60.0  # ready longer than this -> recycled
    lifetime_s: float = 24 * 3600.0  # default checkout lifetime
    folder: str | None = None
    clone_target: str | None = None
    domain: str | None = None
    max_per_host: int | None = None  # at most this many of the pool's VMs on one host; None: any
    ha: bool = False  # checked-out VMs are restarted on another host when theirs goes down
    priority: int = 0  # among works of one class, a pool with a higher priority goes first
    # autosizing (on when min_size is set; then size is the starting size, and max_size is set too)
    min_size: int | None = None
    max_size: int | None = None
    target_wait: float = 0.01  # the chance a checkout may find the pool empty
    scale_down_after_s: float = 900.0  # no fall before this long after the last rise
    demand_window_s: float = 600.0  # the long window of the decayed checkout rate

    @property
    def autosized(self) -> bool:
        return self.min_size is not None and self.max_size is not None


@dataclass(frozen=True, slots=True)
class VmSpec:
    """One VM to create: the name corral chose and what it is cloned from."""

    name: str
    pool: str
    template: str
    cpus: int = 1
    memory_mb: int = 1024
    folder: str | None = None
    request_id: str | None = None  # set for VMs of an on-demand request


@dataclass(slots=True)
class Vm:
    """A VM record, with the fields vmpooler keeps for it. Times are unix seconds."""

    name: str
    pool: str
    template: str
    state: VmState = VmState.PENDING
    provider: str = ""
    host: str | None = None
    ip: str | None = None
    created_at: float = 0.0  # clone requested (intent recorded)
    cloned_at: float | None = None  # provider confirmed the clone
    ready_at: float | None = None
    checkout_at: float | None = None
    completed_at: float | None = None
    destroyed_at: float | None = None
    lifetime_s: float | None = None  # running lifetime, set at checkout
    token: str | None = None  # token hash of the user that checked it out
    user: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    migrated: bool = False
    reason: str | None = None  # why it failed or was completed
    request_id: str | None = None  # the on-demand request it was created for, if any
    disks: list[str] = field(default_factory=list)  # disks added at the API, as "+8gb"
    snapshots: list[str] = field(default_factory=list)  # snapshot names taken at the API
    migrated_at: float | None = None  # when its last migration to another host finished
    migration_s: float | None = None  # how long that migration took

    @property
    def clone_duration_s(self) -> float | None:
        if self.cloned_at is None:
            return None
        return self.cloned_at - self.created_at

    @property
    def boot_duration_s(self) -> float | None:
        if self.ready_at is None:
            return None
        return self.ready_at - self.created_at


@dataclass(slots=True)
class TokenRecord:
    """An API token as stored: only its SHA-256 hash, never the token itself."""

    hash: str  # hex SHA-256 of the token
    user: str
    created_at: float
    last_used_at: float | None = None
    hint: str = ""  # a non-secret label for listings: the token's first and last 4 characters


@dataclass(frozen=True, slots=True)
class RequestedPool:
    """One line of an on-demand request: ``count`` VMs of ``pool``, asked for as ``label``."""

    label: str  # the name the client used (a pool name or an alias)
    pool: str
    count: int


class RequestStatus(StrEnum):
    """Where an on-demand request stands; the store keeps the value as text."""

    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(slots=True)
class OndemandRequest:
    """A request for VMs built on demand rather than taken from a pool's stock."""

    id: str
    requested: list[RequestedPool]
    status: RequestStatus = RequestStatus.PENDING
    created_at: float = 0.0
    updated_at: float | None = None
    token: str | None = None  # token hash of the requester
    user: str | None = None
