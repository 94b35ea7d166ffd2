"""``corral bench scheduler``: how fast and how well corral's scheduler places VMs.

**Speed.** ``hosts`` (2,500: vCenter's maximum) heterogeneous hosts, built with a seeded RNG
(:func:`speed_hosts`): 16–64 cores at 2,000–3,400 MHz, 128–1,024 GiB; two vendors
(GenuineIntel family 6, AuthenticAMD family 25) over six CPU models with their flag sets, of
which some lack ``avx2`` or ``avx512f``; about 2 % in maintenance, 2 % with health yellow and
0.5 % with configuration issues; eight clusters; 10–60 % of CPU and of memory in use already.
``vms`` (10,000) requests take one of five templates (:data:`SPEED_TEMPLATES`) in a seeded random
order, interleaved, each request sharing its template's ``Demand``. corral's time is that of
``Scheduler(SchedulerSettings()).place(hosts, requests, reserve=True)`` (default policy "even",
reservations on; a fresh scheduler each repeat, made before the clock starts), best and median
of ``repeats``. The speed part runs with the garbage collector set as ``corral serve`` sets it
(:func:`corral.bench.common.server_gc`), where the scheduler runs. In the same run:

- the *numpy greedy* (:func:`~corral.bench.scheduler_baselines.numpy_greedy`): one vectorised
  scan of every host per VM; its time includes ``Scheduler.loads(hosts)``, the arrays and the
  static masks, as corral's includes its loads and filters;
- the *plain greedy*: ``Scheduler.place_greedy`` (plain Python, every filter and weight for
  every host and VM), timed on the first ``plain_vms`` requests only, as it is slow; the greedy's
  first choices do not depend on the requests after them.

corral's placements must be the numpy greedy's for every request and the plain greedy's for
the prefix (compared host by host); the run fails otherwise.

**Quality.** ``quality_hosts`` (64) hosts of one CPU model (:func:`quality_hosts`), of widely
varying size (8–96 cores before scaling, 4–16 GiB a core) and 0–40 % in use already, scaled
so that the ``quality_vms`` (2,000) VMs of six sizes bring the cluster to about 76 % of its
memory and 64 % of its CPU (memory binds; a VM's CPU is ``cpus × host MHz × vcpu_load``,
0.25), so that everything fits under the 90 % limit if it is placed well. Each VM is placed
one by one, in the same order, by three rules, on the same load accounting
(:class:`~corral.scheduling.model.HostLoad`): the host with the fewest VMs; vmpooler's
least-used hosts, round-robin, re-selected every ``refresh`` clones; and corral's
``Scheduler.place``. The run fails if corral's highest host use (the larger of
CPU % and memory %) is not the lowest of the three, if a host ends above the limit under
corral, or if corral leaves a VM unplaced.

The settings are in :mod:`corral.bench.scheduler_settings`; the results, tables and
``docs/benchmarks.md`` rows in :mod:`corral.bench.scheduler_report`.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Sequence

from corral.bench.common import Say, counted, machine, sayer, server_gc
from corral.bench.scheduler_baselines import (
    numpy_greedy,
    place_by_count,
    place_least_used,
    plain_greedy,
)
from corral.bench.scheduler_report import (
    QualityResult,
    QualityRow,
    SchedulerBenchResult,
    SpeedResult,
    Timing,
)
from corral.bench.scheduler_settings import SchedulerBenchSettings
from corral.domain.models import HostInfo
from corral.scheduling.model import CpuNeed, Demand, HostLoad, Request
from corral.scheduling.scheduler import Scheduler, SchedulerSettings

GIB = 1024

_BASE_FLAGS = ["fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "sep", "mtrr", "pge", "mca",
               "cmov", "pat", "pse36", "clflush", "mmx", "fxsr", "sse", "sse2", "ht", "syscall", "nx", "pdpe1gb",
               "rdtscp", "lm", "constant_tsc", "nopl", "xtopology", "pni", "pclmulqdq", "ssse3", "cx16", "sse4_1",
               "sse4_2", "x2apic", "popcnt", "aes", "xsave", "avx", "f16c", "rdrand", "hypervisor", "lahf_lm"]
_AVX2 = ["avx2", "fma", "bmi1", "bmi2", "movbe", "abm"]
_AVX512 = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"]

# (vendor, family, the CPU's description, its flags, how often it is drawn)
CPU_MODELS: tuple[tuple[str, int, str, frozenset[str], int], ...] = (
    ("GenuineIntel", 6, "Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", frozenset(_BASE_FLAGS), 1),
    ("GenuineIntel", 6, "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", frozenset(_BASE_FLAGS + _AVX2), 3),
    ("GenuineIntel", 6, "Intel(R) Xeon(R) Gold 6148 CPU @ 2.40GHz", frozenset(_BASE_FLAGS + _AVX2 + _AVX512), 3),
    ("GenuineIntel", 6, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz",
     frozenset(_BASE_FLAGS + _AVX2 + _AVX512 + ["avx512_vnni", "sha_ni"]), 2),
    ("AuthenticAMD", 25, "AMD EPYC 7763 64-Core Processor", frozenset(_BASE_FLAGS + _AVX2 + ["sha_ni"]), 3),
    ("AuthenticAMD", 25, "AMD EPYC 9554 64-Core Processor",
     frozenset(_BASE_FLAGS + _AVX2 + _AVX512 + ["sha_ni", "avx512_vnni"]), 2),
)

SPEED_TEMPLATES: tuple[Demand, ...] = (
    Demand(1, 2 * GIB, pool="small"),
    Demand(2, 4 * GIB, pool="medium"),
    Demand(4, 8 * GIB, CpuNeed(vendor="GenuineIntel", family=6), pool="intel"),
    Demand(2, 4 * GIB, CpuNeed(flags=frozenset({"avx2"})), pool="avx2"),
    Demand(8, 32 * GIB, CpuNeed(flags=frozenset({"avx512f"})), pool="avx512"),
)

# (vCPUs, GiB, share of the VMs) of the quality set: small to large, memory-heavy, CPU-heavy
QUALITY_SIZES: tuple[tuple[int, int, int], ...] = ((1, 2, 30), (2, 4, 25), (4, 8, 15), (8, 16, 10), (2, 16, 10),
                                                   (8, 8, 10))
QUALITY_MEMORY_TARGET = 0.76  # the cluster's memory in use once every VM is placed (memory binds)
QUALITY_CPU_TARGET = 0.64


# -- the workloads -------------------------------------------------------------------------


def speed_hosts(count: int, seed: int) -> list[HostInfo]:
    """``count`` heterogeneous hosts, in a shuffled order (the scheduler sorts them by name)."""
    rng = random.Random(seed)
    weights = [m[4] for m in CPU_MODELS]
    hosts = []
    for i in range(count):
        vendor, family, description, flags, _ = rng.choices(CPU_MODELS, weights)[0]
        cores = rng.choice((16, 24, 32, 48, 64))
        mhz = rng.randrange(2000, 3401, 100)
        memory = rng.choice((128, 192, 256, 384, 512, 768, 1024)) * GIB
        cpu_used = cores * mhz * rng.uniform(0.10, 0.60)
        memory_used = round(memory * rng.uniform(0.10, 0.60))
        roll = rng.random()
        hosts.append(HostInfo(
            name=f"esx-{i:05d}.dc1", cpu_model=description, cores=cores, mhz=mhz, memory_mb=memory,
            cpu_used_mhz=cpu_used, memory_used_mb=memory_used, memory_allocated_mb=memory_used,
            maintenance=roll < 0.02, health="yellow" if 0.02 <= roll < 0.04 else "green",
            config_issues=1 if 0.04 <= roll < 0.045 else 0, vm_count=round(memory_used / (8 * GIB)),
            cluster=f"cluster-{rng.randrange(8) + 1}", cpu_vendor=vendor, cpu_family=family, cpu_flags=flags,
        ))
    rng.shuffle(hosts)
    return hosts


def speed_requests(count: int, seed: int) -> list[Request]:
    """``count`` requests over :data:`SPEED_TEMPLATES` in a random order, sharing their Demands."""
    rng = random.Random(seed + 1)
    return [Request(f"vm-{i:05d}", rng.choice(SPEED_TEMPLATES)) for i in range(count)]


def quality_requests(count: int, seed: int) -> list[Request]:
    rng = random.Random(seed + 2)
    sizes = [Demand(cpus, memory * GIB, pool=f"{cpus}x{memory}") for cpus, memory, _ in QUALITY_SIZES]
    shares = [share for *_, share in QUALITY_SIZES]
    return [Request(f"q-{i:05d}", rng.choices(sizes, shares)[0]) for i in range(count)]


def quality_hosts(count: int, requests: Sequence[Request], seed: int, vcpu_load: float = 0.25) -> list[HostInfo]:
    """``count`` hosts of one CPU model and widely varying size, 0–40 % in use, scaled so that
    ``requests`` bring the cluster to :data:`QUALITY_MEMORY_TARGET` of its memory and about
    :data:`QUALITY_CPU_TARGET` of its CPU.

    A VM's share of a host's CPU is ``cpus × vcpu_load / cores`` whatever the host's MHz, so
    the CPU is sized in cores.
    """
    rng = random.Random(seed + 3)
    vendor, family, description, flags, _ = CPU_MODELS[2]
    shapes = []
    for _ in range(count):
        cores = rng.choice((8, 12, 16, 24, 32, 48, 64, 96))
        gib_per_core = rng.choice((4, 6, 8, 12, 16))  # as real hosts are bought: 4–16 GiB a core
        shapes.append((cores, rng.randrange(2000, 3601, 100), cores * gib_per_core, rng.uniform(0.0, 0.4),
                       rng.uniform(0.0, 0.4)))
    cpu_need = sum(r.demand.cpus for r in requests) * vcpu_load  # cores
    mem_need = sum(r.demand.memory_mb for r in requests) / GIB
    cores_total = sum(s[0] for s in shapes)
    gib_total = sum(s[2] for s in shapes)
    cpu_pre = sum(s[0] * s[3] for s in shapes) / cores_total
    mem_pre = sum(s[2] * s[4] for s in shapes) / gib_total
    cpu_scale = cpu_need / (cores_total * (QUALITY_CPU_TARGET - cpu_pre))
    mem_scale = mem_need / (gib_total * (QUALITY_MEMORY_TARGET - mem_pre))
    hosts = []
    for i, (cores, mhz, gib, cpu_used, mem_used) in enumerate(shapes):
        cores = max(4, round(cores * cpu_scale))
        memory = max(16, round(gib * mem_scale)) * GIB
        used = round(memory * mem_used)
        hosts.append(HostInfo(
            name=f"host-{i:03d}", cpu_model=description, cores=cores, mhz=mhz, memory_mb=memory,
            cpu_used_mhz=cores * mhz * cpu_used, memory_used_mb=used, memory_allocated_mb=used,
            vm_count=round(used / (7 * GIB)), cpu_vendor=vendor, cpu_family=family, cpu_flags=flags,
        ))
    return hosts


# -- speed ---------------------------------------------------------------------------------


def _timed(run: Callable[[], tuple[float, list[str | None]]], repeats: int) -> tuple[list[float], list[str | None]]:
    """``run`` ``repeats`` times (it times itself); every repeat must give the same answer."""
    times: list[float] = []
    answer: list[str | None] = []
    for _ in range(repeats):
        gc.collect()
        seconds, out = run()
        times.append(seconds)
        if answer and out != answer:
            raise RuntimeError("two repeats of the same placement gave different answers")
        answer = out
    return times, answer


def run_speed(settings: SchedulerBenchSettings, say: Say) -> SpeedResult:
    s = settings
    hosts = speed_hosts(s.hosts, s.seed)
    requests = speed_requests(s.vms, s.seed)

    def corral() -> tuple[float, list[str | None]]:
        scheduler = Scheduler(SchedulerSettings())  # made before the clock starts
        start = time.perf_counter()
        placements = scheduler.place(hosts, requests, reserve=True)
        return time.perf_counter() - start, [p.host for p in placements]

    def vectorised() -> tuple[float, list[str | None]]:
        scheduler = Scheduler(SchedulerSettings())
        start = time.perf_counter()
        out = numpy_greedy(scheduler.loads(hosts), requests)
        return time.perf_counter() - start, out

    with server_gc():
        say(f"speed: {counted(s.hosts, 'host')}, {counted(s.vms, 'VM')}; corral, {counted(s.repeats, 'repeat')}")
        corral_times, ours = _timed(corral, s.repeats)
        say(f"speed: numpy greedy, {counted(s.numpy_repeats, 'repeat')}")
        numpy_times, theirs = _timed(vectorised, s.numpy_repeats)
        say(f"speed: plain greedy on the first {s.plain_vms:,} VMs")
        scheduler = Scheduler(SchedulerSettings())
        loads = scheduler.loads(hosts)
        gc.collect()
        start = time.perf_counter()
        plain = plain_greedy(scheduler, loads, requests[:s.plain_vms], say)
        plain_s = time.perf_counter() - start
    return SpeedResult(
        hosts=s.hosts, usable_hosts=sum(1 for h in hosts if h.up and not h.maintenance and h.health == "green"
                                        and not h.config_issues),
        vms=s.vms, templates=[d.describe() for d in SPEED_TEMPLATES], placed=sum(1 for h in ours if h is not None),
        corral=Timing.of(corral_times, s.vms), numpy=Timing.of(numpy_times, s.vms),
        plain=Timing.of([plain_s], s.plain_vms),
        numpy_mismatches=sum(1 for a, b in zip(ours, theirs, strict=True) if a != b),
        plain_mismatches=sum(1 for a, b in zip(ours[:len(plain)], plain, strict=True) if a != b),
    )


# -- quality -------------------------------------------------------------------------------


def _row(rule: str, label: str, loads: dict[str, HostLoad], placed: Sequence[str | None], limit: float) -> QualityRow:
    cpu = [load.cpu_percent for load in loads.values()]
    memory = [load.memory_percent for load in loads.values()]
    return QualityRow(
        rule=rule, label=label, max_cpu=max(cpu), max_memory=max(memory), std_cpu=statistics.pstdev(cpu),
        std_memory=statistics.pstdev(memory),
        above_limit=sum(1 for c, m in zip(cpu, memory, strict=True) if max(c, m) > limit),
        unplaced=sum(1 for host in placed if host is None),
    )


def run_quality(settings: SchedulerBenchSettings, say: Say) -> QualityResult:
    s = settings
    config = SchedulerSettings()
    requests = quality_requests(s.quality_vms, s.seed)
    hosts = quality_hosts(s.quality_hosts, requests, s.seed, config.vcpu_load)
    say(f"quality: {s.quality_hosts} hosts, {s.quality_vms:,} VMs")
    limit = config.utilization_limit
    rows = []
    loads = Scheduler(config).loads(hosts)
    rows.append(_row("count", "fewest VMs", loads, place_by_count(loads, requests), limit))
    loads = Scheduler(config).loads(hosts)
    placed = place_least_used(loads, requests, limit=limit, refresh=s.refresh)
    rows.append(_row("least_used", f"vmpooler least-used (list every {s.refresh})", loads, placed, limit))
    scheduler = Scheduler(config)
    loads = scheduler.loads(hosts)
    placements = scheduler.place(loads, requests, reserve=True)
    rows.append(_row("corral", "corral", loads, [p.host for p in placements], limit))
    start = Scheduler(config).loads(hosts).values()
    vm_cpu = sum(r.demand.cpus for r in requests) * config.vcpu_load
    return QualityResult(
        hosts=s.quality_hosts, vms=s.quality_vms, refresh=s.refresh, limit=limit,
        start_cpu=100.0 * sum(h.cpu_used for h in start) / sum(h.cpu_cap for h in start),
        start_memory=100.0 * sum(h.mem_used for h in start) / sum(h.mem_cap for h in start),
        demand_cpu=100.0 * (sum(h.cpu_used_mhz / h.mhz for h in hosts) + vm_cpu) / sum(h.cores for h in hosts),
        demand_memory=100.0 * (sum(h.memory_used_mb for h in hosts) + sum(r.demand.memory_mb for r in requests))
        / sum(h.memory_mb for h in hosts),
        rows=rows,
    )


def run_scheduler(settings: SchedulerBenchSettings, progress: Say | None = None) -> SchedulerBenchResult:
    settings.check()
    say = sayer(progress)
    speed = run_speed(settings, say)
    quality = run_quality(settings, say)
    return SchedulerBenchResult(settings=settings, speed=speed, quality=quality, machine=machine())
