"""The simulated cluster: hosts, the VMs on them, and what each host has in use."""

from __future__ import annotations

from dataclasses import dataclass

from corral.providers.base import HostInfo, HostUnavailable, ProviderVm, VmNotFound
from corral.providers.sim.settings import SimHostSettings


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
    settings: SimHostSettings
    up: bool = True


class SimCluster:
    """Hosts and VMs in memory. Pure bookkeeping: no sleeping, no feed, no files."""

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

    def vm(self, name: str) -> SimVm:
        try:
            return self.vms[name]
        except KeyError:
            raise VmNotFound(name) from None

    def add(self, vm: SimVm) -> None:
        self.vms[vm.name] = vm
        self._ips.add(vm.ip)

    def remove(self, name: str) -> SimVm:
        vm = self.vms.pop(name)
        self._ips.discard(vm.ip)
        return vm

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
        return self._host_infos([name])[0]

    def host_infos(self) -> list[HostInfo]:
        return self._host_infos(list(self.hosts))

    def _host_infos(self, names: list[str]) -> list[HostInfo]:
        """Hosts with their use summed from their VMs, in one pass over the VMs."""
        count = dict.fromkeys(names, 0)
        cpu = dict.fromkeys(names, 0.0)
        memory = dict.fromkeys(names, 0.0)
        for vm in self.vms.values():
            if vm.host not in count:
                continue
            count[vm.host] += 1
            if vm.powered_on:
                cpu[vm.host] += vm.cpus * self.hosts[vm.host].settings.mhz * self._vm_cpu_load
                memory[vm.host] += vm.memory_mb
        infos = []
        for name in names:
            host = self.hosts[name]
            infos.append(
                HostInfo(
                    name=name,
                    cpu_model=host.settings.cpu_model,
                    cores=host.settings.cores,
                    mhz=host.settings.mhz,
                    memory_mb=host.settings.memory_mb,
                    cpu_used_mhz=cpu[name],
                    memory_used_mb=memory[name],
                    up=host.up,
                    vm_count=count[name],
                )
            )
        return infos
