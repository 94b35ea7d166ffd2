"""The floor of ``corral bench vsphere``: the same clones through one bare pyvmomi session.

What bounds a fill on vcsim, read in govmomi's simulator (0.24, Debian's
golang-github-vmware-govmomi-dev) and measured here:

- **Method delays overlap, clone bodies do not.** ``Service.call`` (``simulator.go``) sleeps a
  method's ``-method-delay`` *before* it takes the lock of the object the method is called on
  (``ctx.Map.WithLock(handler, …)``), then runs the method under that lock. Every
  ``CloneVM_Task`` is called on the template, so the clones of one template run their bodies
  one at a time while their 2 s delays overlap: ``task_limit`` clones in flight take one delay
  plus ``task_limit`` clone bodies (a few ms each).
- **Tasks finish inside their call.** ``Task.Run`` (``task.go``) runs the task to its end
  before the method returns: the task a ``*_Task`` call returns is already ``success`` or
  ``error``. A client that reads the task's state right after the call never waits.
- **The change feed ticks every 250 ms.** A waiting ``WaitForUpdatesEx``
  (``property_collector.go``) looks at its collector's updates on a ``time.NewTicker(250 ms)``
  started with the call, so a change reaches a feed 0 to 250 ms after it happened, and a long
  poll issued just after a change reports it no sooner than 250 ms later. Each update set
  also makes vcsim recollect every filter over the whole inventory (CPU time of vcsim).
- **vcsim ignores the clone spec's host, annotation and power-on**: a clone lands on its
  template's host, powered off, not annotated (``CloneVMTask`` in ``virtual_machine.go``).

So the floor is what a minimal client must do for the same result, with nothing else running:
one session (``SmartConnect``), no corral manager, store, runner, placement or change feed;
``task_limit`` threads, each taking the next VM:

1. ``CloneVM_Task`` of the template with corral's clone spec (host and resource pool, the
   notes, the extraConfig that makes vcsim report VMware Tools running, ``powerOn``); hosts
   are taken round robin, the simplest even spread;
2. the task waited for the cheapest correct way: one ``RetrievePropertiesEx`` of its
   ``info``, which on vcsim is always finished; a task still running (a real vCenter) would be
   waited for with pyVim's ``WaitForTask``;
3. one read of the clone's host, power state and notes, and the calls vcsim needs for what it
   ignored, as corral's provider makes them: ``RelocateVM_Task`` when the clone is not on its
   host, ``ReconfigVM_Task`` for the notes, ``PowerOnVM_Task``, each waited for as in 2;
4. the readiness probe, a TCP connect to the benchmark's listener as corral's probe does
   (after the slot is freed, as corral's probe runs outside its call slot). It costs well
   under a millisecond on loopback, so it is kept: it is part of the result, ``ready``.

The clock runs from the login (included, as corral's includes its start) to the last probe.
The VMs' vSphere calls are counted per method at the session's SOAP stub (the login and the
look-up are not, as corral's providers do not count theirs).
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pyVmomi import vim, vmodl

from corral.bench.vcsim import Listener, SessionWatch, Vcsim
from corral.bench.vsphere_timeline import VmTimes


@dataclass
class Target:
    """A host a clone is placed on: its name, reference and resource pool."""

    name: str
    host: Any
    pool: Any


@dataclass
class Place:
    """What the floor's clones need from the vCenter, looked up once after the login."""

    collector: Any  # the session's PropertyCollector
    template_path: str
    template: Any
    folder: Any
    targets: list[Target]


@dataclass
class FloorRun:
    """Everything the floor measured; :func:`corral.bench.vsphere.run_floor` makes a row of it."""

    wall_s: float
    start_s: float  # the login and the look-up
    vms: list[VmTimes]
    calls: dict[str, int]
    peak_in_flight: int
    peak_sessions: int
    session_samples: int
    probes: int
    cpu_s: float
    vcsim_cpu_s: float


class CallCounter:
    """Counts every SOAP call of one pyvmomi session by method name (property reads are ``Fetch``)."""

    def __init__(self, si: Any) -> None:
        self.calls: Counter[str] = Counter()
        self._lock = threading.Lock()
        stub = si._stub
        invoke = stub.InvokeMethod

        def counted(mo: Any, info: Any, args: Any, *rest: Any) -> Any:
            with self._lock:
                self.calls[info.wsdlName] += 1
            return invoke(mo, info, args, *rest)

        stub.InvokeMethod = counted


def look_up(si: Any, template_path: str) -> Place:
    """The template, the datacenter's VM folder and every host with its resource pool."""
    content = si.RetrieveContent()
    datacenter = content.rootFolder.childEntity[0]
    template = content.searchIndex.FindByInventoryPath(f"{datacenter.name}/vm/{template_path}")
    if template is None:
        raise RuntimeError(f"template {template_path!r} not found")
    view = content.viewManager.CreateContainerView(content.rootFolder, [vim.HostSystem], True)
    try:
        spec = vmodl.query.PropertyCollector
        found = content.propertyCollector.RetrievePropertiesEx(
            specSet=[spec.FilterSpec(
                objectSet=[spec.ObjectSpec(obj=view, skip=True, selectSet=[
                    spec.TraversalSpec(name="view", type=vim.view.ContainerView, path="view", skip=False)])],
                propSet=[spec.PropertySpec(type=vim.HostSystem, pathSet=["name", "parent"])])],
            options=spec.RetrieveOptions())
    finally:
        view.DestroyView()
    hosts = sorted(((p["name"], o.obj, p["parent"]) for o in found.objects
                    for p in [{x.name: x.val for x in o.propSet}]), key=lambda h: h[0])
    parents = {parent._moId: parent for _, _, parent in hosts}
    pools = {key: parent.resourcePool for key, parent in parents.items()}
    return Place(collector=content.propertyCollector, template_path=template_path, template=template,
                 folder=datacenter.vmFolder,
                 targets=[Target(name, host, pools[parent._moId]) for name, host, parent in hosts])


def task_info(si: Any, collector: Any, task: Any) -> Any:
    """The finished ``info`` of ``task``: one read, and pyVim's wait when it still runs."""
    spec = vmodl.query.PropertyCollector

    def read() -> Any:
        found = collector.RetrievePropertiesEx(
            specSet=[spec.FilterSpec(objectSet=[spec.ObjectSpec(obj=task)],
                                     propSet=[spec.PropertySpec(type=vim.Task, pathSet=["info"])])],
            options=spec.RetrieveOptions())
        return found.objects[0].propSet[0].val

    info = read()
    if info.state not in ("success", "error"):  # never on vcsim: its tasks end inside their call
        from pyVim.task import WaitForTask

        WaitForTask(task, raiseOnError=False, si=si, pc=collector)
        info = read()
    return info


def clone_spec(target: Target, name: str, template: str, extra_config: dict[str, str], user: str) -> Any:
    """corral's clone spec: host and pool, the notes, the extraConfig, powered on."""
    notes = {"name": name, "pool": "floor", "created_by": user, "base_template": template,
             "creation_timestamp": datetime.now(UTC).isoformat(timespec="seconds")}
    extra = {"guestinfo.hostname": name, **extra_config}
    config = vim.vm.ConfigSpec(annotation=json.dumps(notes),
                               extraConfig=[vim.option.OptionValue(key=k, value=v) for k, v in extra.items()])
    return vim.vm.CloneSpec(location=vim.vm.RelocateSpec(host=target.host, pool=target.pool), config=config,
                            powerOn=True, template=False)


def make_vm(si: Any, place: Place, target: Target, times: VmTimes, extra_config: dict[str, str], user: str) -> None:
    """Clone one VM and make it what corral's provider makes of it (on ``target``, annotated,
    powered on), filling ``times``; a failed task raises ``RuntimeError``."""
    spec = clone_spec(target, times.name, place.template_path, extra_config, user)
    task = place.template.CloneVM_Task(folder=place.folder, name=times.name, spec=spec)
    times.clone_call = time.perf_counter()
    info = task_info(si, place.collector, task)
    if info.state != "success":
        raise RuntimeError(f"clone failed: {info.error}")
    vm = info.result
    times.cloned = time.perf_counter()
    pc = vmodl.query.PropertyCollector
    found = place.collector.RetrievePropertiesEx(
        specSet=[pc.FilterSpec(objectSet=[pc.ObjectSpec(obj=vm)], propSet=[pc.PropertySpec(
            type=vim.VirtualMachine, pathSet=["runtime.host", "runtime.powerState", "config.annotation"])])],
        options=pc.RetrieveOptions())
    props = {p.name: p.val for p in found.objects[0].propSet}
    steps = []
    if getattr(props.get("runtime.host"), "_moId", None) != target.host._moId:
        relocate = vim.vm.RelocateSpec(host=target.host, pool=target.pool)
        steps.append(lambda: vm.RelocateVM_Task(spec=relocate))
    if props.get("config.annotation") != spec.config.annotation:
        steps.append(lambda: vm.ReconfigVM_Task(spec=vim.vm.ConfigSpec(annotation=spec.config.annotation)))
    if props.get("runtime.powerState") != "poweredOn":
        steps.append(vm.PowerOnVM_Task)
    for start in steps:
        task = start()
        began = time.perf_counter()
        info = task_info(si, place.collector, task)
        times.task_waits += time.perf_counter() - began
        if info.state != "success":
            raise RuntimeError(f"{info.descriptionId} failed: {info.error}")
    times.settled = time.perf_counter()


async def _floor(sim: Vcsim, *, template: str, vms: int, task_limit: int, extra_config: dict[str, str],
                 cpu: Callable[[], tuple[float, float]]) -> FloorRun:
    loop = asyncio.get_running_loop()
    listener = Listener()
    await listener.start()
    watch = SessionWatch(sim).start()
    pool = ThreadPoolExecutor(task_limit, thread_name_prefix="vsphere-floor")
    slots = asyncio.Semaphore(task_limit)
    in_flight = peak = 0
    times = [VmTimes(name=f"floor-{i:04d}") for i in range(vms)]
    started = time.perf_counter()
    cpu0 = cpu()
    si = None
    try:
        si = await loop.run_in_executor(pool, sim.connect)
        place = await loop.run_in_executor(pool, look_up, si, template)
        connected = time.perf_counter()
        counter = CallCounter(si)  # the VMs' calls, as corral's providers count theirs (not the login's)

        async def one(i: int) -> None:
            nonlocal in_flight, peak
            vm = times[i]
            target = place.targets[i % len(place.targets)]
            async with slots:
                vm.slot = time.perf_counter()
                in_flight += 1
                peak = max(peak, in_flight)
                try:
                    await loop.run_in_executor(pool, make_vm, si, place, target, vm, extra_config, sim.user)
                except (RuntimeError, vmodl.MethodFault) as exc:
                    vm.error = str(exc)
                    return
                finally:
                    in_flight -= 1
            if await listener.probe(vm.name, 22, 5.0):
                vm.probed = vm.ready = time.perf_counter()

        await asyncio.gather(*(one(i) for i in range(vms)))
        finished = time.perf_counter()
        cpu1 = cpu()
        calls = dict(sorted(counter.calls.items()))
    finally:
        watch.stop()
        try:
            if si is not None:
                await loop.run_in_executor(pool, si.content.sessionManager.Logout)
        finally:
            pool.shutdown(wait=False)
            await listener.close()
    return FloorRun(wall_s=finished - started, start_s=connected - started, vms=times,
                    calls=calls, peak_in_flight=peak, peak_sessions=watch.peak,
                    session_samples=len(watch.counts), probes=len(listener.asked), cpu_s=cpu1[0] - cpu0[0],
                    vcsim_cpu_s=cpu1[1] - cpu0[1])


def measure_floor(sim: Vcsim, *, template: str, vms: int, task_limit: int, extra_config: dict[str, str],
                  cpu: Callable[[], tuple[float, float]]) -> FloorRun:
    """Clone ``vms`` VMs of ``template`` on ``sim``, ``task_limit`` at a time, as described above.

    ``cpu`` gives (this process's, vcsim's) CPU seconds so far.
    """
    return asyncio.run(_floor(sim, template=template, vms=vms, task_limit=task_limit,
                              extra_config=extra_config, cpu=cpu))
