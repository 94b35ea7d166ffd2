"""``SimProvider``: the :class:`~corral.providers.base.Provider` over a simulated cluster."""

from __future__ import annotations

import asyncio
import math
import random
import time
from collections import Counter, deque
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from corral.domain.models import HostHealth, HostInfo, ProviderVm, TemplateInfo, VmSpec
from corral.providers.base import CreateResult, InventoryUpdate, Provider, ProviderError
from corral.providers.sim.call_log import CALL_LOG_SIZE, SimCall
from corral.providers.sim.faults import Faults
from corral.providers.changefeed import ChangeFeed
from corral.providers.sim.settings import SimSettings
from corral.providers.sim.state_file import SimStateFile
from corral.providers.sim.world import SimCluster, SimSnapshot, SimVm

#: The overall statuses a host can report, as vSphere's ``overallStatus`` names them.
HOST_HEALTH = tuple(HostHealth)


class SimProvider(Provider):
    """An in-process virtualization cluster; see the package docstring for the model.

    Calls need :meth:`connect` first. A VM's host must be up to power it on or off, add a
    disk, snapshot or revert it, and a migration's target host must be up; a VM can be
    destroyed wherever it is. :attr:`bulk_calls` is the ``bulk_calls`` setting; the
    simulator takes many VMs per create or start call either way.

    Test hooks (plain sync methods): :meth:`fail_next`, :meth:`stall`, :meth:`set_host_down`,
    :meth:`set_host_maintenance`, :meth:`set_host_health`, :meth:`fail_on_host`,
    :meth:`set_guest_ready`, :meth:`inject_vm`, the read accessors :meth:`vm_disks` and
    :meth:`vm_snapshots`; :attr:`calls`, a counter of calls per public method name, with
    :attr:`in_flight` / :attr:`peak_in_flight` to watch the concurrency limit; and
    :attr:`call_log`, the last create and start calls as :class:`SimCall` records.
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
        self._rng = random.Random(self.settings.seed)
        self._slots = asyncio.Semaphore(self.settings.concurrency)
        self._boot_timers: dict[str, asyncio.TimerHandle] = {}
        self._closing = asyncio.Event()  # set by close() to end the sleeps of calls in flight
        self._state: SimStateFile | None = None
        self._loaded = False
        self._connected = False

    # -- session ---------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the state file (if any), load its VMs once, and resume unfinished boots."""
        self.calls["connect"] += 1
        if self._connected:
            return
        self._faults.raise_if_failing("connect")
        if self.settings.state_file:
            self._state = SimStateFile(self.settings.state_file)
            if not self._loaded:
                for vm in self._state.load():
                    self._cluster.add(vm)
        self._loaded = True
        self._connected = True
        self._closing = asyncio.Event()
        now = time.time()
        for vm in list(self._cluster.vms.values()):
            if vm.boot_deadline is None:
                continue
            if vm.boot_deadline <= now:  # booted while nobody was watching
                self._finish_boot(vm.name)
            else:
                self._schedule_boot(vm)

    async def close(self) -> None:
        """Cancel boot timers, close the state file, release feed waiters.

        Calls still in flight end early with :class:`ProviderError` and change nothing.
        """
        self.calls["close"] += 1
        if not self._connected:
            return
        self._connected = False
        for timer in self._boot_timers.values():
            timer.cancel()
        self._boot_timers.clear()
        if self._state is not None:
            self._state.close()
            self._state = None
        self._closing.set()
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
        async with self._call("vm_ready", "vm_ready"):
            return self._cluster.is_ready(self._cluster.vm(name))

    async def wait_for_updates(self, version: int | None, timeout: float) -> InventoryUpdate:
        """The change feed. ``timeout`` is in real seconds (``time_scale`` does not apply).

        A long poll does not take one of the ``concurrency`` slots.
        """
        self.calls["wait_for_updates"] += 1
        self._require_open()
        await self._sleep(self._faults.stall_of("wait_for_updates"))
        self._faults.raise_if_failing("wait_for_updates")
        changes = self._feed.since(version)
        if changes is not None and changes.empty:
            await self._feed.wait_past(self._feed.version, timeout)
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
        async with self._call("destroy_vm", "destroy"):
            await self._pause(self.settings.latency.destroy)
            vm = self._cluster.vm(name)
            if self._chance(self.settings.failure_rates.destroy):
                raise ProviderError(f"simulated failure destroying VM {name!r}")
            self._cancel_boot(name)
            self._cluster.remove(name)
            if self._state is not None:
                self._state.delete(name)
            self._feed.touch("vm", name)
            self._feed.touch("host", vm.host)

    async def power_on(self, name: str) -> None:
        """Power the VM on and start its boot; a VM already on is left alone."""
        await self._set_power("power_on", name, on=True)

    async def power_off(self, name: str) -> None:
        await self._set_power("power_off", name, on=False)

    async def migrate_vm(self, name: str, host: str) -> None:
        """Move the VM, running, to ``host``; a guest keeps its boot state."""
        async with self._call("migrate_vm", "migrate"):
            self._cluster.vm(name)
            self._cluster.target_host(host)
            await self._pause(self.settings.latency.migrate)
            vm = self._cluster.vm(name)
            self._cluster.target_host(host)
            if self._chance(self.settings.failure_rates.migrate):
                raise ProviderError(f"simulated failure migrating VM {name!r} to {host!r}")
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
        async with self._call("add_disk", "disk"):
            if size_gb < 1:
                raise ProviderError(f"a disk needs at least 1 GiB, not {size_gb}", retryable=False)
            rate = self.settings.failure_rates.disk
            vm = await self._vm_op(name, self.settings.latency.disk, rate, "adding a disk to")
            vm.disks.append(size_gb)
            self._changed(vm)

    async def create_snapshot(self, name: str, snapshot: str) -> None:
        """Snapshot the VM's disks and run state (like a memory snapshot); names are unique per VM."""
        async with self._call("create_snapshot", "snapshot"):
            rate = self.settings.failure_rates.snapshot
            vm = await self._vm_op(name, self.settings.latency.snapshot, rate, "snapshotting")
            if snapshot in vm.snapshots:
                raise ProviderError(f"VM {name!r} already has a snapshot {snapshot!r}", retryable=False)
            vm.snapshots[snapshot] = vm.take_snapshot()
            self._changed(vm)

    async def revert_snapshot(self, name: str, snapshot: str) -> None:
        """Give the VM back its disks and power state of ``snapshot``; the snapshot is kept.

        A guest that was ready then is ready at once; one that was still booting boots again.
        """
        async with self._call("revert_snapshot", "revert"):
            self._known_snapshot(self._cluster.vm(name), snapshot)
            rate = self.settings.failure_rates.revert
            vm = await self._vm_op(name, self.settings.latency.revert, rate, "reverting")
            taken = self._known_snapshot(vm, snapshot)
            vm.disks = list(taken.disks)
            self._cluster.set_power(vm, taken.powered_on)
            if taken.powered_on and not taken.guest_ready:
                self._start_boot(vm)
            else:
                self._cancel_boot(name)
                vm.guest_ready = taken.guest_ready
                vm.boot_deadline = None
            self._changed(vm)
            self._feed.touch("host", vm.host)

    def vm_disks(self, name: str) -> list[int]:
        """The sizes in GiB of the disks added to a VM, in order (a test accessor, no call)."""
        return list(self._cluster.vm(name).disks)

    def vm_snapshots(self, name: str) -> list[str]:
        """The names of a VM's snapshots, oldest first (a test accessor, no call)."""
        return list(self._cluster.vm(name).snapshots)

    # -- test hooks ------------------------------------------------------------------------

    def fail_next(self, op: str, count: int = 1, *, retryable: bool = True) -> None:
        """Make the next ``count`` calls of ``op`` raise ``ProviderError("injected failure")``;
        with ``retryable=False``, a permanent ``ProviderError("injected failure (permanent)")``.

        ``op`` is one of ``connect``, ``create``, ``start``, ``destroy``, ``migrate``, ``power``, ``disk``,
        ``snapshot``, ``revert``, ``vm_ready``, ``list_vms``, ``list_hosts``, ``template_info``,
        ``wait_for_updates``.
        """
        self._faults.fail_next(op, count, retryable=retryable)

    def stall(self, op: str, seconds: float) -> None:
        """Make every call of ``op`` sleep ``seconds`` more real seconds; 0 clears it."""
        self._faults.stall(op, seconds)

    def set_host_down(self, host: str, down: bool = True) -> None:
        """Take a host down (its VMs are not ready, creates on it fail) or bring it back.

        Raises :class:`~corral.providers.base.HostUnavailable` for a host that does not exist.
        """
        target = self._cluster.host(host)
        if target.up == (not down):
            return
        target.up = not down
        self._feed.touch("host", host)

    def set_host_maintenance(self, host: str, maintenance: bool = True) -> None:
        """Put a host into maintenance (creates and migrations onto it fail) or take it out."""
        target = self._cluster.host(host)
        if target.maintenance == maintenance:
            return
        target.maintenance = maintenance
        self._feed.touch("host", host)

    def set_host_health(self, host: str, health: str = "green", config_issues: int = 0) -> None:
        """Set a host's overall status and its count of configuration issues.

        Only placement minds them: a host that is not green, or has issues, still takes VMs.
        Raises :class:`ValueError` for a status other than green, yellow, red or gray, or a
        negative count, and :class:`~corral.providers.base.HostUnavailable` for an unknown host.
        """
        if health not in HOST_HEALTH:
            raise ValueError(f"unknown host health {health!r}; one of {', '.join(HOST_HEALTH)}")
        if config_issues < 0:
            raise ValueError(f"config_issues cannot be negative, got {config_issues}")
        target = self._cluster.host(host)
        if (target.health, target.config_issues) == (health, config_issues):
            return
        target.health = HostHealth(health)
        target.config_issues = config_issues
        self._feed.touch("host", host)

    def fail_on_host(self, host: str, failing: bool = True) -> None:
        """While set, every VM that create_vms or start_vms puts on ``host`` fails, retryably.

        The call itself succeeds; those VMs are not created or moved. Raises
        :class:`~corral.providers.base.HostUnavailable` for a host that does not exist.
        """
        self._cluster.host(host)
        self._faults.fail_on_host(host, failing)

    def set_guest_ready(self, name: str, ready: bool) -> None:
        """Flip a powered-on VM's guest between booted and not (a guest crash, a hung boot).

        Raises :class:`~corral.providers.base.VmNotFound` for an unknown VM.
        """
        vm = self._cluster.vm(name)
        if not vm.powered_on or vm.guest_ready == ready:
            return
        self._cancel_boot(name)
        vm.boot_deadline = None
        vm.guest_ready = ready
        self._changed(vm)

    def inject_vm(
        self, name: str, host: str, pool: str | None, template: str | None = None, guest_ready: bool = True
    ) -> ProviderVm:
        """Add a powered-on VM nobody asked corral to create (an orphan, for instance).

        With ``guest_ready=False`` its guest stays unready until it is power-cycled. With a
        ``state_file`` call this after :meth:`connect`, so that the VM is persisted.
        """
        if name in self._cluster.vms:
            raise ValueError(f"VM {name!r} already exists")
        self._cluster.host(host)
        sizing = self.settings.template(template) if template else None
        sizing = sizing or self.settings.template_defaults  # orphans ignore strict_templates
        vm = SimVm(
            name=name,
            host=host,
            pool=pool,
            template=template,
            cpus=sizing.cpus,
            memory_mb=sizing.memory_mb,
            ip=self._cluster.allocate_ip(),
            created_at=time.time(),
            guest_ready=guest_ready,
        )
        self._cluster.add(vm)
        self._persist([vm])
        self._feed.touch("vm", name)
        self._feed.touch("host", host)
        return vm.view()

    # -- inside ----------------------------------------------------------------------------

    @asynccontextmanager
    async def _call(
        self, method: str, op: str, *, on_host: str | None = None, names: Sequence[str] = ()
    ) -> AsyncIterator[None]:
        """Count the call, hold a concurrency slot for it, and apply injected faults.

        A bulk call (``on_host`` given, with the VM ``names``) goes into :attr:`call_log`
        once it has its slot.
        """
        self.calls[method] += 1
        self._require_open()
        async with self._slots:
            if on_host is not None:
                self.call_log.append(SimCall(op, on_host, tuple(names), time.monotonic()))
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            try:
                await self._sleep(self._faults.stall_of(op))
                self._faults.raise_if_failing(op)
                yield
            finally:
                self.in_flight -= 1

    async def _host_call(self, host: str, count: int, per_call: float, per_vm: float) -> None:
        """The time a bulk call of ``count`` VMs on ``host`` takes; the host must take VMs before and after."""
        self._cluster.target_host(host)
        rounds = math.ceil(count / self.settings.host_clone_slots)
        await self._pause(per_call + per_vm * rounds)
        self._cluster.target_host(host)  # it may have gone down meanwhile

    def _require_open(self) -> None:
        if not self._connected:
            raise ProviderError(f"simulator {self.name!r} is not connected", retryable=False)

    async def _pause(self, seconds: float) -> None:
        """Sleep an operation's latency, scaled and jittered."""
        await self._sleep(self._scaled(seconds))

    async def _sleep(self, seconds: float) -> None:
        """Sleep real seconds; raise :class:`ProviderError` if the provider closes meanwhile."""
        if seconds > 0:
            try:
                async with asyncio.timeout(seconds):  # not wait_for: see ChangeFeed.wait_past
                    await self._closing.wait()
            except TimeoutError:
                pass
        self._require_open()

    def _scaled(self, seconds: float) -> float:
        jitter = self.settings.jitter
        factor = self._rng.uniform(1 - jitter, 1 + jitter) if jitter else 1.0
        return seconds * self.settings.time_scale * factor

    def _chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate

    def _persist(self, vms: list[SimVm]) -> None:
        if self._state is not None and vms:
            self._state.save(vms)

    async def _vm_op(self, name: str, latency: float, failure_rate: float, doing: str) -> SimVm:
        """What every change to one VM does first: check it exists, sleep, check its host, maybe fail."""
        self._cluster.vm(name)
        await self._pause(latency)
        vm = self._cluster.vm(name)  # it may have been destroyed meanwhile
        self._cluster.usable_host(vm.host)
        if self._chance(failure_rate):
            raise ProviderError(f"simulated failure {doing} VM {name!r}")
        return vm

    @staticmethod
    def _known_snapshot(vm: SimVm, snapshot: str) -> SimSnapshot:
        try:
            return vm.snapshots[snapshot]
        except KeyError:
            raise ProviderError(f"VM {vm.name!r} has no snapshot {snapshot!r}", retryable=False) from None

    def _changed(self, vm: SimVm) -> None:
        """Persist one changed VM and tell the feed."""
        self._persist([vm])
        self._feed.touch("vm", vm.name)

    def _create_one(self, host: str, spec: VmSpec) -> CreateResult:
        if spec.name in self._cluster.vms:
            return CreateResult(spec.name, ok=False, error=f"VM {spec.name!r} already exists", retryable=False)
        sizing = self.settings.template(spec.template)
        if sizing is None:
            return CreateResult(spec.name, ok=False, error=f"template {spec.template!r} not found", retryable=False)
        host_failure = self._faults.host_failure(host)
        if host_failure is not None:
            return CreateResult(spec.name, ok=False, error=host_failure)
        if self._chance(self.settings.failure_rates.create):
            return CreateResult(spec.name, ok=False, error=f"simulated failure creating VM {spec.name!r}")
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
        self._start_boot(vm)
        return CreateResult(spec.name, ok=True)

    def _start_one(self, host: str, name: str, sources: dict[str, None]) -> CreateResult:
        """Move one VM to ``host`` and boot it there; add the host it left to ``sources``."""
        vm = self._cluster.vms.get(name)
        if vm is None:
            return CreateResult(name, ok=False, error=f"VM {name!r} not found", retryable=False)
        current = self._cluster.hosts.get(vm.host)
        if vm.powered_on and current is not None and current.up:
            error = f"VM {name!r} is still powered on on host {vm.host!r}, which is up"
            return CreateResult(name, ok=False, error=error, retryable=False)
        host_failure = self._faults.host_failure(host)
        if host_failure is not None:
            return CreateResult(name, ok=False, error=host_failure)
        if vm.host != host:
            if current is not None:  # not a host dropped from the settings since (a state file's VM)
                sources[vm.host] = None
            self._cluster.move(vm, host)
        self._cluster.set_power(vm, True)
        self._start_boot(vm)
        return CreateResult(name, ok=True)

    async def _set_power(self, method: str, name: str, *, on: bool) -> None:
        async with self._call(method, "power"):
            await self._pause(self.settings.latency.power)
            vm = self._cluster.vm(name)
            self._cluster.usable_host(vm.host)
            if vm.powered_on == on:
                return
            self._cluster.set_power(vm, on)
            if on:
                self._start_boot(vm)
            else:
                self._cancel_boot(name)
                vm.guest_ready = False
                vm.boot_deadline = None
            self._persist([vm])
            self._feed.touch("vm", name)
            self._feed.touch("host", vm.host)

    def _start_boot(self, vm: SimVm) -> None:
        """Start the guest's boot; with the boot failure rate it never finishes."""
        self._cancel_boot(vm.name)
        vm.guest_ready = False
        vm.boot_deadline = None
        if self._chance(self.settings.failure_rates.boot):
            return
        vm.boot_deadline = time.time() + self._scaled(self.settings.latency.boot)
        self._schedule_boot(vm)

    def _schedule_boot(self, vm: SimVm) -> None:
        assert vm.boot_deadline is not None
        delay = max(0.0, vm.boot_deadline - time.time())
        self._boot_timers[vm.name] = asyncio.get_running_loop().call_later(delay, self._finish_boot, vm.name)

    def _cancel_boot(self, name: str) -> None:
        timer = self._boot_timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _finish_boot(self, name: str) -> None:
        self._boot_timers.pop(name, None)
        vm = self._cluster.vms.get(name)
        if vm is None or vm.boot_deadline is None:
            return
        vm.guest_ready = True
        vm.boot_deadline = None
        self._persist([vm])
        self._feed.touch("vm", name)
