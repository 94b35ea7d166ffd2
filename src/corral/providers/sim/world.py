"""The simulated cluster: hosts, the VMs on them, and what each host has in use."""

from __future__ import annotations

from dataclasses import dataclass, field

from corral.domain.models import HostHealth, HostInfo, ProviderVm
from corral.providers.base import HostUnavailable, VmNotFound
from corral.providers.sim.settings import SimHostSettings


@dataclass(frozen=True, slots=True)
class SimSnapshot:
    """What a snapshot keeps of its VM: the disks and (as a memory snapshot) the run state."""

    disks: tuple[int, ...]
    powered_on: bool
    guest_ready: bool


@dataclass(slots=True)
class SimVm:
    """One simulated VM. Times are wall-clock unix seconds, so they survive a restart."""

    name: str
    host: str
    pool: str | None
    template: str | None
    cpus: int
    memory_mb: int
    ip: str
    created_at: float
    powered_on: bool = True
    guest_ready: bool = False
    boot_deadline: float | None = None  # when the guest will be ready; None: not booting
    disks: list[int] = field(default_factory=list)  # sizes in GiB of the disks added, in order
    snapshots: dict[str, SimSnapshot] = field(default_factory=dict)  # by name, oldest first

    def take_snapshot(self) -> SimSnapshot:
        return SimSnapshot(disks=tuple(self.disks), powered_on=self.powered_on, guest_ready=self.guest_ready)

    def view(self) -> ProviderVm:
        return ProviderVm(
            name=self.name,
            host=self.host,
            pool=self.pool,
            template=self.template,
            powered_on=self.powered_on,
            ip=self.ip,
            guest_ready=self.guest_ready,
            created_at=self.created_at,
        )


@dataclass(slots=True)
class SimHost:
    """A host, and the sums over its VMs (kept as VMs come, go, move and change power)."""

    settings: SimHostSettings
    up: bool = True
    maintenance: bool = False
    health: HostHealth = HostHealth.GREEN  # only placement minds it
    config_issues: int = 0
    vm_count: int = 0
    cpus_on: int = 0  # vCPUs of its powered-on VMs
    memory_on_mb: int = 0  # memory of its powered-on VMs
    memory_all_mb: int = 0  # memory configured for all its VMs, powered on or off


class SimCluster:
    """Hosts and VMs in memory. Pure bookkeeping: no sleeping, no feed, no files.

    Change a VM's host or power state through :meth:`move` and :meth:`set_power`, so that
    the hosts' sums stay right: a host's use is read in O(1), not summed over every VM.
    """

    def __init__(self, hosts: list[SimHostSettings], vm_cpu_load: float) -> None:
        self.hosts: dict[str, SimHost] = {host.name: SimHost(host) for host in hosts}
        self.vms: dict[str, SimVm] = {}
        self._vm_cpu_load = vm_cpu_load
        self._ips: set[str] = set()
        self._next_ip = 0

    def host(self, name: str) -> SimHost:
        """The host, up or down; :class:`HostUnavailable` when there is no such host."""
        try:
            return self.hosts[name]
        except KeyError:
            raise HostUnavailable(f"host {name!r} does not exist") from None

    def usable_host(self, name: str) -> SimHost:
        """The host if it can run VMs now; :class:`HostUnavailable` otherwise."""
        host = self.host(name)
        if not host.up:
            raise HostUnavailable(f"host {name!r} is down")
        return host

    def target_host(self, name: str) -> SimHost:
        """The host if new VMs may be placed on it (up and not in maintenance)."""
        host = self.usable_host(name)
        if host.maintenance:
            raise HostUnavailable(f"host {name!r} is in maintenance")
        return host

    def vm(self, name: str) -> SimVm:
        try:
            return self.vms[name]
        except KeyError:
            raise VmNotFound(name) from None

    def add(self, vm: SimVm) -> None:
        self.vms[vm.name] = vm
        self._ips.add(vm.ip)
        self._count(vm, +1)

    def remove(self, name: str) -> SimVm:
        vm = self.vms.pop(name)
        self._ips.discard(vm.ip)
        self._count(vm, -1)
        return vm

    def move(self, vm: SimVm, host: str) -> None:
        self._count(vm, -1)
        vm.host = host
        self._count(vm, +1)

    def set_power(self, vm: SimVm, on: bool) -> None:
        self._count(vm, -1)
        vm.powered_on = on
        self._count(vm, +1)

    def _count(self, vm: SimVm, sign: int) -> None:
        host = self.hosts.get(vm.host)
        if host is None:  # a VM on a host no longer configured (from a state file)
            return
        host.vm_count += sign
        host.memory_all_mb += sign * vm.memory_mb
        if vm.powered_on:
            host.cpus_on += sign * vm.cpus
            host.memory_on_mb += sign * vm.memory_mb

    def is_ready(self, vm: SimVm) -> bool:
        return vm.powered_on and vm.guest_ready and self.hosts[vm.host].up

    def allocate_ip(self) -> str:
        """A fake address in 10.77.0.0/16 that no current VM holds (while any is free)."""
        for _ in range(254 * 256):
            n, self._next_ip = self._next_ip, self._next_ip + 1
            ip = f"10.77.{n // 254 % 256}.{n % 254 + 1}"
            if ip not in self._ips:
                return ip
        return ip  # all taken: a duplicate is harmless, nothing connects to it

    def host_info(self, name: str) -> HostInfo:
        host = self.hosts[name]
        settings = host.settings
        return HostInfo(
            name=name,
            cpu_model=settings.cpu_model,
            cores=settings.cores,
            mhz=settings.mhz,
            memory_mb=settings.memory_mb,
            cpu_used_mhz=host.cpus_on * settings.mhz * self._vm_cpu_load,
            memory_used_mb=float(host.memory_on_mb),
            up=host.up,
            maintenance=host.maintenance,
            vm_count=host.vm_count,
            cluster=settings.cluster,
            cpu_vendor=settings.cpu_vendor,
            cpu_family=settings.cpu_family,
            cpu_flags=frozenset(settings.cpu_flags),
            health=host.health,
            config_issues=host.config_issues,
            memory_allocated_mb=float(host.memory_all_mb),
        )

    def host_infos(self) -> list[HostInfo]:
        return [self.host_info(name) for name in self.hosts]
