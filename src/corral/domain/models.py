"""Hosts, templates, pools and VMs as plain dataclasses."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from corral.domain.states import VmState


@dataclass(frozen=True, slots=True)
class Template:
    """What a VM is cloned from and what it costs a host."""

    name: str
    cpus: int = 1
    memory_mb: int = 1024


@dataclass(slots=True)
class Host:
    """A hypervisor host as the inventory sees it."""

    name: str
    cpu_model: str = "generic"
    cores: int = 16
    mhz: int = 2400
    memory_mb: int = 65536
    cpu_used_mhz: float = 0.0
    memory_used_mb: float = 0.0
    up: bool = True
    maintenance: bool = False
    vm_count: int = 0

    @property
    def cpu_total_mhz(self) -> int:
        return self.cores * self.mhz

    @property
    def cpu_utilisation(self) -> float:
        """Used CPU as a fraction of capacity (0.0 – 1.0+)."""
        return self.cpu_used_mhz / self.cpu_total_mhz if self.cpu_total_mhz else 1.0

    @property
    def memory_utilisation(self) -> float:
        return self.memory_used_mb / self.memory_mb if self.memory_mb else 1.0


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


class TimingKind(StrEnum):
    """What a recorded duration measured."""

    CLONE = "clone"  # the create call of a VM
    BOOT = "boot"  # from the intent to create a VM to the VM being ready


class RequestStatus:
    PENDING = "pending"
    READY = "ready"
    FAILED = "failed"
    DELETED = "deleted"


@dataclass(slots=True)
class OndemandRequest:
    """A request for VMs built on demand rather than taken from a pool's stock."""

    id: str
    requested: list[RequestedPool]
    status: str = RequestStatus.PENDING
    created_at: float = 0.0
    updated_at: float | None = None
    token: str | None = None  # token hash of the requester
    user: str | None = None
