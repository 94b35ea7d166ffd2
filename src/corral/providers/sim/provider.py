"""``SimProvider``: the :class:`~corral.providers.base.Provider` over a simulated cluster."""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from corral.domain.models import HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import Cause, CreateResult, InventoryUpdate, Provider, ProviderError
from corral.providers.changefeed import ChangeFeed
from corral.providers.sim.boots import Boots
from corral.providers.sim.call_log import CALL_LOG_SIZE, SimCall
from corral.providers.sim.controls import SimControls
from corral.providers.sim.faults import Faults
from corral.providers.sim.pacing import Pacing
from corral.providers.sim.settings import SimSettings
from corral.providers.sim.state_file import SimStateFile
from corral.providers.sim.world import SimCluster, SimSnapshot, SimVm


class SimProvider(Provider):
    """An in-process virtualization cluster; see the package docstring for the model.

    Calls need :meth:`connect` first. A VM's host must be up to power it on or off, add a
    disk, snapshot or revert it, and a migration's target host must be up; a VM can be
    destroyed wherever it is. :attr:`bulk_calls` is the ``bulk_calls`` setting; the
    simulator takes many VMs per create or start call either way.

    Test hooks are on :attr:`controls` (:class:`~corral.providers.sim.controls.SimControls`:
    injected failures and stalls, hosts down, in maintenance or unhealthy, guests, injected
    VMs, disks and snapshots read without a call). The provider itself counts its calls:
    :attr:`calls`, a counter of calls per public method name, with :attr:`in_flight` /
    :attr:`peak_in_flight` to watch the concurrency limit; and :attr:`call_log`, the last
    create and start calls as :class:`SimCall` records.
    """

    def __init__(self, name: str, settings: SimSettings | None = None) -> None:
        self.name = name
        self.settings = settings if settings is not None else SimSettings()
        self.bulk_calls = self.settings.bulk_calls
        self.calls: Counter[str] = Counter()
        self.call_log: deque[SimCall] = deque(maxlen=CALL_LOG_SIZE)  # create/start calls, oldest first
        self.in_flight = 0  # calls holding one of the `concurrency` slots now
        self.peak_in_flight = 0  # the most that ever did at once
        self._cluster = SimCluster(self.settings.host_settings(), self.settings.vm_cpu_load)
        self._feed = ChangeFeed()
        self._faults = Faults()
        self._pacing = Pacing(self.settings, self._require_open)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._boots = Boots(self._cluster, self.settings, self._changed, self._pacing.chance, self._pacing.scaled)
        self.controls = SimControls(self._cluster, self._feed, self._faults, self._boots, self.settings,
                                    changed=self._changed, remove=self._remove)
        self._state: SimStateFile | None = None
        self._connected = False

    # -- session ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the state file (if any), load its VMs once, and resume unfinished boots."""
        self.calls["connect"] += 1
        if self._connected:
            return
        self._faults.raise_if_failing("connect")
        self._faults.raise_if_unreachable()
        if self.settings.state_file:
            self._state = SimStateFile(self.settings.state_file)
            # the file is the truth at every connect: another simulator on it (the process that
            # ran these pools before this one) may have changed it since this one last read it
            for name in list(self._cluster.vms):
                self._cluster.remove(name)
            for vm in self._state.load():
                self._cluster.add(vm)
        self._connected = True
        self._pacing.open()
        now = time.time()
        for vm in list(self._cluster.vms.values()):
            if vm.boot_deadline is None:
                continue
            if vm.boot_deadline <= now:  # booted while nobody was watching
                self._boots.finish(vm.name)
            else:
                self._boots.schedule(vm)

    async def close(self) -> None:
        """Cancel boot timers, close the state file, release feed waiters.

        Calls still in flight end early with :class:`ProviderError` and change nothing.
        """
        self.calls["close"] += 1
        if not self._connected:
            return
        self._connected = False
        self._boots.cancel_all()
        if self._state is not None:
            self._state.close()
            self._state = None
        self._pacing.close()
        self._feed.wake_all()

    # -- reads -----------------------------------------------------------------------------

    async def list_hosts(self) -> list[HostInfo]:
        async with self._call("list_hosts", "list_hosts"):
            return self._cluster.host_infos()

    async def template_info(self, template: str) -> TemplateInfo | None:
        """The template's size and CPU needs; None when it is unknown and templates are strict."""
        async with self._call("template_info", "template_info"):
            sizing = self.settings.template(template)
            if sizing is None:
                return None
            return TemplateInfo(
                name=template,
                cpus=sizing.cpus,
                memory_mb=sizing.memory_mb,
                cpu_vendor=sizing.cpu_vendor,
                cpu_family=sizing.cpu_family,
                cpu_flags=frozenset(sizing.cpu_flags),
                cpu_model=sizing.cpu_model,
            )

    async def list_vms(self) -> list[ProviderVm]:
        async with self._call("list_vms", "list_vms"):
            return [vm.view() for vm in self._cluster.vms.values()]

    async def vm_ready(self, name: str) -> bool:
        async with self._call("vm_ready", "vm_ready", touches=self._host_of(name)):
            return self._cluster.is_ready(self._cluster.vm(name))

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        """The change feed. ``timeout`` is in real seconds (``time_scale`` does not apply).

        A long poll does not take one of the ``concurrency`` slots.
        """
        self.calls["wait_for_updates"] += 1
        self._require_open()
        self._endpoint_faults()
        self._faults.raise_if_feed_dropped()
        self._session()
        await self._pacing.sleep(self._faults.stall_of("wait_for_updates"))
        self._faults.raise_if_failing("wait_for_updates")
        changes = self._feed.since(version)
        if changes is not None and changes.empty:
            await self._feed.wait_past(self._feed.version, timeout)
            self._endpoint_faults()  # an outage or a drop that began during the wait ends it
            self._faults.raise_if_feed_dropped()
            changes = self._feed.since(version)
        if changes is None:
            return InventoryUpdate(
                version=self._feed.version,
                full=True,
                vms=[vm.view() for vm in self._cluster.vms.values()],
                hosts=self._cluster.host_infos(),
            )
        vms = self._cluster.vms
        return InventoryUpdate(
            version=self._feed.version,
            vms=[vms[name].view() for name in changes.vms if name in vms],
            removed_vms=[name for name in changes.vms if name not in vms],
            hosts=[self._cluster.host_info(name) for name in changes.hosts],
        )

    # -- changes ---------------------------------------------------------------------------

    async def create_vms(self, host: str, specs: list[VmSpec]) -> list[CreateResult]:
        """Create, power on and start booting ``specs`` on ``host``; sized by their template."""
        async with self._call("create_vms", "create", on_host=host, names=[spec.name for spec in specs]):
            latency = self.settings.latency
            await self._host_call(host, len(specs), latency.create_call, latency.create_per_vm)
            results = [self._create_one(host, spec) for spec in specs]
            created = [self._cluster.vms[result.name] for result in results if result.ok]
            self._persist(created)
            if created:
                self._feed.touch_vms([vm.name for vm in created])
                self._feed.touch("host", host)
            return results

    async def start_vms(self, host: str, names: list[str]) -> list[CreateResult]:
        """Start existing VMs on ``host`` after their host failed: move each there, power it on, boot it.

        A VM still powered on on a host that is up is refused, a missing VM fails; neither is
        retryable. A VM powered on on a host that is down boots again from scratch.
        """
        async with self._call("start_vms", "start", on_host=host, names=names):
            latency = self.settings.latency
            await self._host_call(host, len(names), latency.start_call, latency.start_per_vm)
            sources: dict[str, None] = {}  # the hosts the started VMs came from, in order
            results = [self._start_one(host, name, sources) for name in names]
            started = [self._cluster.vms[result.name] for result in results if result.ok]
            self._persist(started)
            if started:
                self._feed.touch_vms([vm.name for vm in started])
                for source in sources:
                    self._feed.touch("host", source)
                self._feed.touch("host", host)
            return results

    async def destroy_vm(self, name: str) -> None:
        async with self._call("destroy_vm", "destroy", touches=self._host_of(name)):
            await self._pacing.pause(self.settings.latency.destroy)
            vm = self._cluster.vm(name)
            if self._pacing.chance(self.settings.failure_rates.destroy):
                raise ProviderError(f"simulated failure destroying VM {name!r}", cause=Cause.INJECTED)
            self._remove(vm)

    async def power_on(self, name: str) -> None:
        """Power the VM on and start its boot; a VM already on is left alone."""
        await self._set_power("power_on", name, on=True)

    async def power_off(self, name: str) -> None:
        await self._set_power("power_off", name, on=False)

    async def migrate_vm(self, name: str, host: str) -> None:
        """Move the VM, running, to ``host``; a guest keeps its boot state."""
        async with self._call("migrate_vm", "migrate", touches=(*self._host_of(name), host)):
            self._cluster.vm(name)
            self._cluster.target_host(host)
            await self._pacing.pause(self.settings.latency.migrate)
            vm = self._cluster.vm(name)
            self._cluster.target_host(host)
            if self._pacing.chance(self.settings.failure_rates.migrate):
                raise ProviderError(f"simulated failure migrating VM {name!r} to {host!r}", cause=Cause.INJECTED)
            if vm.host == host:
                return
            source = vm.host
            self._cluster.move(vm, host)
            self._persist([vm])
            self._feed.touch("vm", name)
            self._feed.touch("host", source)
            self._feed.touch("host", host)

    # -- disks and snapshots ---------------------------------------------------------------

    async def add_disk(self, name: str, size_gb: int) -> None:
        """Attach a new, empty disk of ``size_gb`` GiB (at least 1); it uses no host memory."""
        async with self._call("add_disk", "disk", touches=self._host_of(name)):
            if size_gb < 1:
                raise ProviderError(f"a disk needs at least 1 GiB, not {size_gb}", retryable=False,
                                    cause=Cause.REFUSED)
            rate = self.settings.failure_rates.disk
            vm = await self._vm_op(name, self.settings.latency.disk, rate, "adding a disk to")
            vm.disks.append(size_gb)
            self._changed(vm)

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        """Snapshot the VM's disks and run state (like a memory snapshot); names are unique per VM."""
        async with self._call("create_snapshot", "snapshot", touches=self._host_of(name)):
            rate = self.settings.failure_rates.snapshot
            vm = await self._vm_op(name, self.settings.latency.snapshot, rate, "snapshotting")
            if snapshot in vm.snapshots:
                raise ProviderError(f"VM {name!r} already has a snapshot {snapshot!r}", retryable=False,
                                    cause=Cause.REFUSED)
            vm.snapshots[snapshot] = vm.take_snapshot()
            self._changed(vm)

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        """Give the VM back its disks and power state of ``snapshot``; the snapshot is kept.

        A guest that was ready then is ready at once; one that was still booting boots again.
        """
        async with self._call("revert_snapshot", "revert", touches=self._host_of(name)):
            self._known_snapshot(self._cluster.vm(name), snapshot)
            rate = self.settings.failure_rates.revert
            vm = await self._vm_op(name, self.settings.latency.revert, rate, "reverting")
            taken = self._known_snapshot(vm, snapshot)
            vm.disks = list(taken.disks)
            self._cluster.set_power(vm, taken.powered_on)
            if taken.powered_on and not taken.guest_ready:
                self._boots.start(vm)
            else:
                self._boots.stop(vm, ready=taken.guest_ready)
            self._changed(vm)
            self._feed.touch("host", vm.host)

    # -- inside ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _call(
        self, method: str, op: str, *, on_host: str | None = None, names: Sequence[str] = (),
        touches: Sequence[str] = (),
    ) -> AsyncIterator[None]:
        """Count the call, sleep the stall of the hosts it touches (``on_host`` and ``touches``),
        hold a concurrency slot for it, and apply injected faults: an endpoint out of reach, an
        expired session (renewed), a stalled or failing operation.

        A host's stall is slept before the slot is taken: the endpoint is not held while one of
        its hosts is slow (as a vSphere task waits on its host, not on the session). A bulk call
        (``on_host`` given, with the VM ``names``) goes into :attr:`call_log` once it has its slot.
        """
        self.calls[method] += 1
        self._require_open()
        await self._stall((on_host, *touches))
        async with self._slots:
            if on_host is not None:
                self.call_log.append(SimCall(op, on_host, tuple(names), time.monotonic()))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                self._endpoint_faults()
                self._session()
                await self._pacing.sleep(self._faults.stall_of(op))
                self._faults.raise_if_failing(op)
                yield
            finally:
                self.in_flight -= 1

    async def _host_call(self, host: str, count: int, per_call: float, per_vm: float) -> None:
        """The time a bulk call of ``count`` VMs on ``host`` takes; the host must take VMs before and after."""
        self._cluster.target_host(host)
        rounds = math.ceil(count / self.settings.host_clone_slots)
        await self._pacing.pause(per_call + per_vm * rounds)
        self._cluster.target_host(host)  # it may have gone down meanwhile

    async def _stall(self, hosts: Sequence[str | None]) -> None:
        """Sleep the stall of ``hosts``, or until it is lifted (looked at every 50 ms)."""
        deadline = time.monotonic() + self._faults.host_stall(hosts)
        while (left := deadline - time.monotonic()) > 0 and self._faults.host_stall(hosts) > 0:
            await self._pacing.sleep(min(left, 0.05))

    def _endpoint_faults(self) -> None:
        """Raise when the endpoint is out of reach (an injected outage)."""
        self._faults.raise_if_unreachable()

    def _session(self) -> None:
        """One call on the session: renew it first if it expired (counted in :attr:`sessions_renewed`);
        a renewal that fails raises :class:`ProviderError` with cause ``session``."""
        if self._faults.session_call():
            self._faults.renew()
            self.sessions_renewed += 1

    def _host_of(self, name: str) -> tuple[str, ...]:
        """The host of VM ``name`` (none for a VM the simulator does not have)."""
        vm = self._cluster.vms.get(name)
        return (vm.host,) if vm is not None else ()

    def _require_open(self) -> None:
        if not self._connected:
            raise ProviderError(f"simulator {self.name!r} is not connected", retryable=False, cause=Cause.SESSION)

    def _persist(self, vms: list[SimVm]) -> None:
        if self._state is not None and vms:
            self._state.save(vms)

    async def _vm_op(self, name: str, latency: float, failure_rate: float, doing: str) -> SimVm:
        """What every change to one VM does first: check it exists, sleep, check its host, maybe fail."""
        self._cluster.vm(name)
        await self._pacing.pause(latency)
        vm = self._cluster.vm(name)  # it may have been destroyed meanwhile
        self._cluster.usable_host(vm.host)
        if self._pacing.chance(failure_rate):
            raise ProviderError(f"simulated failure {doing} VM {name!r}", cause=Cause.INJECTED)
        return vm

    @staticmethod
    def _known_snapshot(vm: SimVm, snapshot: str) -> SimSnapshot:
        try:
            return vm.snapshots[snapshot]
        except KeyError:
            raise ProviderError(f"VM {vm.name!r} has no snapshot {snapshot!r}", retryable=False,
                                cause=Cause.NOT_FOUND) from None

    def _changed(self, vm: SimVm) -> None:
        """Persist one changed VM and tell the feed."""
        self._persist([vm])
        self._feed.touch("vm", vm.name)

    def _remove(self, vm: SimVm) -> None:
        """The VM is gone from the cluster (and the state file); the feed hears of it and its host."""
        self._boots.cancel(vm.name)
        self._cluster.remove(vm.name)
        if self._state is not None:
            self._state.delete(vm.name)
        self._feed.touch("vm", vm.name)
        self._feed.touch("host", vm.host)

    def _create_one(self, host: str, spec: VmSpec) -> CreateResult:
        if spec.name in self._cluster.vms:
            return CreateResult(spec.name, ok=False, error=f"VM {spec.name!r} already exists", retryable=False,
                                cause=Cause.REFUSED)
        sizing = self.settings.template(spec.template)
        if sizing is None:
            return CreateResult(spec.name, ok=False, error=f"template {spec.template!r} not found", retryable=False,
                                cause=Cause.NOT_FOUND)
        host_failure = self._faults.host_failure(host)
        if host_failure is not None:
            return CreateResult(spec.name, ok=False, error=host_failure, cause=Cause.HOST)
        if self._faults.clone_fails():
            return CreateResult(spec.name, ok=False, error=f"injected failure cloning VM {spec.name!r}",
                                cause=Cause.INJECTED)
        if self._pacing.chance(self.settings.failure_rates.create):
            return CreateResult(spec.name, ok=False, error=f"simulated failure creating VM {spec.name!r}",
                                cause=Cause.INJECTED)
        vm = SimVm(
            name=spec.name,
            host=host,
            pool=spec.pool,
            template=spec.template,
            cpus=sizing.cpus,
            memory_mb=sizing.memory_mb,
            ip=self._cluster.allocate_ip(),
            created_at=time.time(),
        )
        self._cluster.add(vm)
        self._boots.start(vm)
        return CreateResult(spec.name, ok=True)

    def _start_one(self, host: str, name: str, sources: dict[str, None]) -> CreateResult:
        """Move one VM to ``host`` and boot it there; add the host it left to ``sources``."""
        vm = self._cluster.vms.get(name)
        if vm is None:
            return CreateResult(name, ok=False, error=f"VM {name!r} not found", retryable=False, cause=Cause.NOT_FOUND)
        current = self._cluster.hosts.get(vm.host)
        if vm.powered_on and current is not None and current.up:
            error = f"VM {name!r} is still powered on on host {vm.host!r}, which is up"
            return CreateResult(name, ok=False, error=error, retryable=False, cause=Cause.REFUSED)
        host_failure = self._faults.host_failure(host)
        if host_failure is not None:
            return CreateResult(name, ok=False, error=host_failure, cause=Cause.HOST)
        if vm.host != host:
            if current is not None:  # not a host dropped from the settings since (a state file's VM)
                sources[vm.host] = None
            self._cluster.move(vm, host)
        self._cluster.set_power(vm, True)
        self._boots.start(vm)
        return CreateResult(name, ok=True)

    async def _set_power(self, method: str, name: str, *, on: bool) -> None:
        async with self._call(method, "power", touches=self._host_of(name)):
            await self._pacing.pause(self.settings.latency.power)
            vm = self._cluster.vm(name)
            self._cluster.usable_host(vm.host)
            if vm.powered_on == on:
                return
            self._cluster.set_power(vm, on)
            if on:
                self._boots.start(vm)
            else:
                self._boots.stop(vm)
            self._persist([vm])
            self._feed.touch("vm", name)
            self._feed.touch("host", vm.host)
