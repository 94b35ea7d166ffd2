"""``corral bench libvirt``: libvirt calls per VM and the time from a domain change to the change
feed, on libvirt's test driver, against a naive libvirt client.

Three hosts are test-driver files written into a temporary directory
(:func:`~corral.bench.libvirt_settings.host_xml`); each side opens its own copies, so each
starts from empty hosts. In one run:

- **corral**: the real :class:`~corral.pools.manager.PoolManager` (sqlite store, the real
  runner, scheduler and inventory) on one
  :class:`~corral.providers.libvirt.provider.LibvirtProvider` fills a pool of ``3 ×
  vms_per_host`` VMs, at most ``vms_per_host`` per host, from empty. The provider's call
  counter (``provider.calls``) is read when the last VM is ``ready`` in the store. The
  readiness probe is a stand-in that says yes (the test driver runs no guests). Then the
  manager stops, leaving the provider connected (:class:`HeldProvider`), and ``changes``
  domain changes are made one at a time through the connection the provider holds
  (``provider.hosts[h].conn.wrapped``, outside its counter), each VM stopped or started in
  turn; each is timed from the call's return until ``wait_for_updates`` reports the VM in its
  new power state.
- **baseline**: :class:`~corral.bench.libvirt_baseline.NaiveClient` makes the same domains
  and volumes from ``task_limit`` threads with one call per operation, and its
  :class:`~corral.bench.libvirt_baseline.Poller` learns what runs by polling every host every
  ``poll_interval``; its fill ends when the poller has seen every VM running. Its timed changes
  are spread over ``poll_rounds`` poll intervals (one at a time would take a poll interval
  each), and each is timed until a poll of its host returns the new state.

After each fill the hosts are read directly (outside the counters): every VM must be a domain
on the host it is recorded on, and nothing else may be there but the template and its volume
(:func:`leftovers`). The results and tables are in :mod:`corral.bench.libvirt_report`.
"""

from __future__ import annotations

import asyncio
import tempfile
import threading
import time
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from corral.bench.common import Say, counter, machine, quiet_logs, ready_vms, sayer
from corral.bench.libvirt_baseline import NaiveClient, Poller
from corral.bench.libvirt_report import Latencies, LibvirtBenchResult, SideResult
from corral.bench.libvirt_settings import HOSTS, STORAGE_POOL, TEMPLATE, TEMPLATE_VOLUME, LibvirtBenchSettings, host_xml
from corral.domain.models import Pool
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool, LibvirtSettings
from corral.store.sqlite import SqliteStore

POOL = "bench"
SEEN_WITHIN_S = 5.0  # a corral change not reported by then is missing


def write_hosts(folder: Path) -> dict[str, str]:
    """The test-driver files of the hosts in ``folder``; host name -> URI."""
    folder.mkdir(parents=True, exist_ok=True)
    uris = {}
    for index in range(1, HOSTS + 1):
        path = folder / f"host{index}.xml"
        path.write_text(host_xml(index))
        uris[path.stem] = f"test://{path.resolve()}"
    return uris


def leftovers(conn: Any, names: set[str]) -> tuple[int, int, int]:
    """What one host holds beyond its template and the VMs ``names`` (read on raw connection
    ``conn``): (domains, volumes, VMs of ``names`` that are not a domain there). A VM's volumes
    are named after it and its disk (``NAME-vda.qcow2``)."""
    domains = {dom.name() for dom in conn.listAllDomains(0)}
    volumes = conn.storagePoolLookupByName(STORAGE_POOL).listVolumes()
    extra_domains = len(domains - names - {TEMPLATE})
    extra_volumes = sum(1 for v in volumes if v != TEMPLATE_VOLUME and v.rsplit("-", 1)[0] not in names)
    return extra_domains, extra_volumes, len(names - domains)


class HeldProvider(LibvirtProvider):
    """The libvirt provider, kept connected through the manager's stop while ``held``: the test
    driver forgets what a connection made when it closes, and the timed changes need the VMs."""

    held = True

    async def close(self) -> None:
        if not self.held:
            await super().close()


async def say_yes(_address: str, _port: int, _timeout: float) -> bool:
    """The readiness stand-in: the test driver runs no guests to connect to."""
    return True


def _limit_s(s: LibvirtBenchSettings) -> float:
    return 120.0 + 0.05 * s.vms  # a fill this long has hung


# -- corral ---------------------------------------------------------------------------------


async def corral_fill(s: LibvirtBenchSettings, folder: Path, say: Say) -> tuple[SideResult, HeldProvider]:
    """Fill the pool through the real manager; the provider comes back still connected."""
    uris = write_hosts(folder / "hosts")
    provider = HeldProvider("libvirt", LibvirtSettings.model_validate({"hosts": list(uris.values())}),
                            {POOL: LibvirtPool(POOL, TEMPLATE)}, probe=say_yes)
    pool = Pool(name=POOL, template=TEMPLATE, size=s.vms, provider="libvirt", max_per_host=s.vms_per_host)
    store = SqliteStore(folder / "bench.db")
    manager = PoolManager([pool], {"libvirt": provider}, store,
                          ManagerSettings(task_limit=s.task_limit, reconcile_interval=3600.0))
    say(f"corral: filling {HOSTS} hosts × {s.vms_per_host} VMs ...")
    count = counter(say)
    started = time.perf_counter()
    try:
        try:
            await manager.start()
            while (ready := ready_vms(store)) < s.vms:
                count(ready, s.vms)
                if time.perf_counter() - started > _limit_s(s):
                    break
                await asyncio.sleep(0.005)
            wall = time.perf_counter() - started
            calls = dict(sorted(provider.calls.items()))
            records = store.list_vms(pool=POOL)
        finally:
            await manager.stop()  # the provider stays connected: held
            store.close()
    except BaseException:
        provider.held = False
        await provider.close()
        raise
    names = {host: {vm.name for vm in records if vm.host == host} for host in uris}
    counts = [leftovers(provider.hosts[host].conn.wrapped, names[host]) for host in uris]
    result = SideResult(label="corral", vms=s.vms, ready=ready, wall_s=wall, calls=calls,
                        per_host={host: len(names[host]) for host in uris},
                        leaked_domains=sum(c[0] for c in counts), leaked_volumes=sum(c[1] for c in counts),
                        lost=sum(c[2] for c in counts))
    say(f"corral: {ready}/{s.vms} ready in {wall:.2f} s, {result.calls_per_vm:.2f} libvirt calls per VM")
    return result, provider


async def corral_changes(s: LibvirtBenchSettings, provider: LibvirtProvider, say: Say) -> Latencies:
    """Stop or start corral's VMs one at a time on the provider's own connections; each change
    timed until ``wait_for_updates`` reports it."""
    latencies = Latencies()
    update = await provider.wait_for_updates(None, 0)  # a snapshot: where the feed stands
    version = update.version
    vms = sorted(update.vms, key=lambda vm: vm.name)
    if not vms:
        return latencies
    handles = {vm.name: provider.hosts[vm.host].conn.wrapped.lookupByName(vm.name) for vm in vms}
    active = {vm.name: vm.powered_on for vm in vms}
    wanted: dict[str, bool] = {}
    seen_at: dict[str, float] = {}
    arrived = asyncio.Event()

    async def follow() -> None:
        nonlocal version
        while True:
            answer = await provider.wait_for_updates(version, 1.0)
            now = time.perf_counter()
            version = answer.version
            for vm in answer.vms:
                if vm.name in wanted and vm.powered_on == wanted[vm.name] and vm.name not in seen_at:
                    seen_at[vm.name] = now
                    arrived.set()

    def change(name: str, start: bool) -> float:
        dom = handles[name]
        dom.create() if start else dom.destroy()
        return time.perf_counter()

    before = sum(provider.calls.values())
    follower = asyncio.create_task(follow(), name="bench-follow")
    say(f"corral: timing {s.changes} domain changes ...")
    count = counter(say)
    try:
        for k in range(s.changes):
            name = vms[k % len(vms)].name
            seen_at.pop(name, None)
            arrived.clear()
            wanted[name] = not active[name]
            returned = await asyncio.to_thread(change, name, wanted[name])
            active[name] = wanted[name]
            latencies.changes += 1
            deadline = returned + SEEN_WITHIN_S
            while name not in seen_at and time.perf_counter() < deadline:
                try:
                    async with asyncio.timeout(max(deadline - time.perf_counter(), 0)):
                        await arrived.wait()
                except TimeoutError:
                    break
                arrived.clear()
            if name in seen_at:
                latencies.seen.append(max(seen_at[name] - returned, 0.0))
            del wanted[name]
            count(k + 1, s.changes)
    finally:
        follower.cancel()
        await asyncio.gather(follower, return_exceptions=True)
    latencies.calls = sum(provider.calls.values()) - before
    return latencies


async def run_corral(s: LibvirtBenchSettings, folder: Path, say: Say) -> SideResult:
    result, provider = await corral_fill(s, folder, say)
    try:
        result.latency = await corral_changes(s, provider, say)
    finally:
        provider.held = False
        await provider.close()
    return result


# -- the baseline ---------------------------------------------------------------------------


class Watch:
    """What the baseline waits to see, and when its poller saw it: (host, VM) -> wanted state."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.wanted: dict[tuple[str, str], bool] = {}
        self.returned: dict[tuple[str, str], float] = {}
        self.seen: list[float] = []  # seconds from each change's call returning to a poll showing it

    def want(self, host: str, name: str, active: bool) -> None:
        with self.lock:
            self.wanted[host, name] = active

    def made(self, host: str, name: str, at: float) -> None:
        with self.lock:
            self.returned[host, name] = at

    def polled(self, host: str, states: Mapping[str, bool], at: float) -> None:
        with self.lock:
            for key in [k for k in self.wanted if k[0] == host]:
                if states.get(key[1]) == self.wanted[key]:
                    del self.wanted[key]
                    self.seen.append(at - self.returned.pop(key, at))

    @property
    def waiting(self) -> int:
        with self.lock:
            return len(self.wanted)


Made = tuple[float, dict[str, set[str]]]


def baseline_fill(s: LibvirtBenchSettings, client: NaiveClient, watch: Watch, say: Say) -> Made:
    """Make every VM with the naive client until its poller has seen them all running; the wall
    seconds and the VMs by host."""
    work = [(host, f"baseline-{host}-{i:05d}") for i in range(s.vms_per_host) for host in client.conns]
    names: dict[str, set[str]] = {host: set() for host in client.conns}
    for host, name in work:
        names[host].add(name)
    for host, name in work:
        watch.want(host, name, True)
    say(f"baseline: filling {HOSTS} hosts × {s.vms_per_host} VMs, one call per operation ...")
    count = counter(say)
    started = time.perf_counter()
    with ThreadPoolExecutor(s.task_limit, thread_name_prefix="baseline-create") as pool:
        for _ in pool.map(lambda job: client.create(*job), work):
            pass
    while watch.waiting and time.perf_counter() - started < _limit_s(s):
        count(s.vms - watch.waiting, s.vms)
        time.sleep(0.005)
    return time.perf_counter() - started, names


def baseline_changes(s: LibvirtBenchSettings, client: NaiveClient, names: dict[str, set[str]], watch: Watch,
                     say: Say) -> Latencies:
    """``changes`` changes spread over ``poll_rounds`` poll intervals, each on a VM whose last
    change the poller has seen; each timed until a poll of its host returns it."""
    latencies = Latencies()
    vms = sorted((host, name) for host, group in names.items() for name in group)
    handles = {vm: client.raw(vm[0]).lookupByName(vm[1]) for vm in vms}
    active = dict.fromkeys(vms, True)
    watch.seen.clear()
    spacing = s.poll_rounds * s.poll_interval / s.changes
    say(f"baseline: {s.changes} domain changes over {s.poll_rounds} poll intervals ...")
    count = counter(say)
    before = sum(client.calls.values())
    started = time.perf_counter()
    turn = 0
    for k in range(s.changes):
        time.sleep(max(0.0, started + k * spacing - time.perf_counter()))
        while True:  # the next VM in turn whose last change has been seen
            vm = vms[turn % len(vms)]
            turn += 1
            with watch.lock:
                free = vm not in watch.wanted
            if free:
                break
            if turn % len(vms) == 0:
                time.sleep(0.001)
        active[vm] = not active[vm]
        watch.want(*vm, active[vm])
        dom = handles[vm]
        dom.create() if active[vm] else dom.destroy()
        watch.made(*vm, time.perf_counter())
        latencies.changes += 1
        count(k + 1, s.changes)
    deadline = time.perf_counter() + 3 * s.poll_interval + SEEN_WITHIN_S
    while watch.waiting and time.perf_counter() < deadline:
        time.sleep(0.005)
    latencies.calls = sum(client.calls.values()) - before
    with watch.lock:
        latencies.seen = list(watch.seen)
    return latencies


def run_baseline(s: LibvirtBenchSettings, folder: Path, say: Say) -> SideResult:
    uris = write_hosts(folder / "baseline-hosts")
    watch = Watch()
    client = NaiveClient(uris)
    poller = Poller(client, s.poll_interval, watch.polled).start()
    try:
        wall, names = baseline_fill(s, client, watch, say)
        calls = dict(sorted(client.calls.items()))
        ready = s.vms - watch.waiting
        counts = [leftovers(client.raw(host), names[host]) for host in names]
        result = SideResult(label="baseline", vms=s.vms, ready=ready, wall_s=wall, calls=calls,
                            per_host={host: len(group) for host, group in names.items()},
                            leaked_domains=sum(c[0] for c in counts), leaked_volumes=sum(c[1] for c in counts),
                            lost=sum(c[2] for c in counts))
        say(f"baseline: {ready}/{s.vms} seen running in {wall:.2f} s, {result.calls_per_vm:.2f} libvirt calls "
            "per VM")
        result.latency = baseline_changes(s, client, names, watch, say)
    finally:
        poller.stop()
        client.close()
    result.poll_interval_s = poller.measured_interval
    result.poll_cycle_s = sum(poller.cycle_seconds) / len(poller.cycle_seconds) if poller.cycle_seconds else 0.0
    return result


def run_libvirt(settings: LibvirtBenchSettings, progress: Say | None = None) -> LibvirtBenchResult:
    """corral, then the baseline, each on fresh copies of the hosts."""
    settings.check()
    say = sayer(progress)
    with quiet_logs(), tempfile.TemporaryDirectory(prefix="corral-bench-libvirt-") as tmp:
        corral = asyncio.run(run_corral(settings, Path(tmp) / "corral", say))
        baseline = run_baseline(settings, Path(tmp), say)
    return LibvirtBenchResult(settings=settings, corral=corral, baseline=baseline, machine=machine())

