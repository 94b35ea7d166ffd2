"""Every dynamic filter's and weight's ``expression`` gives what its ``check``/``score`` gives.

The scheduler fuses the expressions into one function per kind of VM (``kinds.fuse``);
a placement is only exact if that function agrees with the plug-ins to the last bit.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Iterator

import pytest

from corral.scheduling.filters import AntiAffinity, Filter, MemoryFits, UtilizationLimit
from corral.scheduling.kinds import Kind, fuse
from corral.scheduling.model import LOAD_FIELDS, Demand, HostLoad, Rejection
from corral.scheduling.weights import EvenCount, EvenCpu, EvenMemory, Pack, Weight

from ._factories import host

SEED = 20240611
N = 400


def evaluate(expression: str, load: HostLoad) -> object:
    """The expression evaluated over the load's fields, as the fused function sees them."""
    fields = {f: getattr(load, f) for f in LOAD_FIELDS}
    return eval(expression, {"__builtins__": {"float": float}}, fields)  # noqa: S307


def random_load(rng: random.Random) -> HostLoad:
    cores = rng.choice([0, 1, 4, 10, 16, 48])
    mhz = rng.choice([0, 1000, 2100, 2400, 3333])
    memory = rng.choice([0, 1000, 10_000, 65_536, 262_144, 1_000_003])
    info = host(f"h{rng.randrange(10**6)}", cores=cores, mhz=mhz, memory_mb=memory,
                cpu_used_mhz=rng.choice([0.0, rng.uniform(0, 1.2 * cores * mhz), float(cores * mhz)]),
                memory_used_mb=rng.choice([0.0, rng.uniform(0, 1.2 * memory), float(memory)]),
                memory_allocated_mb=rng.choice([None, rng.uniform(0, 2.5 * memory), float(memory)]),
                vm_count=rng.randrange(0, 60))
    ld = HostLoad(info, rng.randrange(100), rng.choice([0.1, 0.25, 0.3, 1.0]))
    for pool in ("web", "db", "o'dd \"pool\""):
        if rng.random() < 0.6:
            ld.pools[pool] = rng.randrange(0, 4)
    return ld


def random_demand(rng: random.Random) -> Demand:
    return Demand(cpus=rng.choice([0, 1, 2, 3, 4, 8, 32]),
                  memory_mb=rng.choice([0, 1, 512, 1024, 4096, 16_384, 100_000]),
                  pool=rng.choice(["web", "db", "o'dd \"pool\"", "none"]),
                  max_per_host=rng.choice([0, 1, 2, 3]))


def boundary_cases() -> Iterator[tuple[HostLoad, Demand, float, float]]:
    """(load, demand, memory overcommit, utilization limit) where the filters sit exactly at their limit."""
    for overcommit in (1.0, 1.5, 2.0):
        for memory_mb in (1, 1024, 4096):
            ld = HostLoad(host("m", memory_mb=10_000), 0, 0.25)
            ld.mem_alloc = 10_000 * overcommit - memory_mb  # exactly full with the VM
            for delta in (0.0, 1.0, -1.0, 0.5):
                edge = HostLoad(ld.info, 0, 0.25)
                edge.mem_alloc = ld.mem_alloc + delta
                yield edge, Demand(memory_mb=memory_mb), overcommit, 90.0
    for limit in (50.0, 80.0, 90.0, 100.0):
        for cpus in (1, 2, 4):
            # capacity 10,000 MHz, a vCPU 250 MHz: cpu_used so that the VM lands exactly on the limit
            exact = 100.0 * limit - cpus * 250.0
            for delta in (0.0, 1.0, -1.0, 1e-9):
                ld = HostLoad(host("c", cpu_used_mhz=exact + delta), 0, 0.25)
                yield ld, Demand(cpus=cpus, memory_mb=0), 1.0, limit
            for delta in (0.0, 1.0, -1.0):
                ld = HostLoad(host("m", memory_used_mb=100.0 * limit - 1000 + delta), 0, 0.25)
                yield ld, Demand(cpus=0, memory_mb=1000), 1.0, limit
    for count in (0, 1, 2, 3):
        for limit in (0, 1, 2, 3):
            ld = HostLoad(host("a"), 0, 0.25)
            ld.pools["web"] = count
            yield ld, Demand(pool="web", max_per_host=limit), 1.0, 90.0


def cases() -> Iterator[tuple[HostLoad, Demand, float, float]]:
    rng = random.Random(SEED)
    yield from boundary_cases()
    for _ in range(N):
        yield (random_load(rng), random_demand(rng), rng.choice([1.0, 1.25, 1.5, 3.0]),
               rng.choice([50.0, 80.0, 90.0, 100.0, 87.3]))


CASES = list(cases())


def test_cases_cover_both_answers_of_every_filter() -> None:
    """The inputs are worth something: each filter both passes and fails hosts, and some sit at the edge."""
    for make in (lambda oc, lim: MemoryFits(oc), lambda oc, lim: UtilizationLimit(lim), lambda oc, lim: AntiAffinity()):
        answers = {make(oc, lim).check(ld, d) is None for ld, d, oc, lim in CASES}
        assert answers == {True, False}
    at_edge = [1 for ld, d, oc, lim in CASES if d.memory_mb == ld.mem_cap * oc - ld.mem_alloc]
    assert len(at_edge) >= 9
    cpu_at_limit = [1 for ld, d, oc, lim in CASES
                    if 100.0 * (ld.cpu_used + d.cpus * ld.vcpu_mhz) / ld.cpu_cap == lim
                    and UtilizationLimit(lim).check(ld, d) is None]
    assert len(cpu_at_limit) >= 12
    at_pool_limit = [1 for ld, d, oc, lim in CASES if d.max_per_host is not None
                     and ld.pools.get(d.pool, 0) == d.max_per_host]
    assert len(at_pool_limit) >= 4


@pytest.mark.parametrize("make", [
    pytest.param(lambda oc, lim: MemoryFits(oc), id="memory"),
    pytest.param(lambda oc, lim: UtilizationLimit(lim), id="utilization"),
    pytest.param(lambda oc, lim: AntiAffinity(), id="anti-affinity"),
])
def test_filter_expression_agrees_with_check(make) -> None:  # type: ignore[no-untyped-def]
    compared = 0
    for ld, demand, overcommit, limit in CASES:
        f = make(overcommit, limit)
        if not f.applies(demand):
            continue  # the scheduler does not ask it (anti-affinity without a limit)
        compared += 1
        passes = f.check(ld, demand) is None
        assert evaluate(f.expression(demand), ld) is passes, (f.expression(demand), demand)
        fused = fuse([f], [], demand)
        assert fused is not None
        assert (fused[0](ld) is not None) is passes, (f.expression(demand), demand)
    assert compared >= N


@pytest.mark.parametrize("weight", [EvenCpu(), EvenMemory(), EvenCount(), Pack()], ids=lambda w: w.name)
def test_weight_expression_gives_the_same_float_as_score(weight) -> None:  # type: ignore[no-untyped-def]
    for ld, demand, _, _ in CASES:
        expected = weight.score(ld, demand)
        assert type(expected) is float
        got = evaluate(weight.expression(demand), ld)
        assert type(got) is float
        assert got == expected, (weight.expression(demand), demand)
        fused = fuse([], [(1.0, weight)], demand)
        assert fused is not None
        assert fused[0](ld) == 0.0 + 1.0 * expected


FACTORS = [
    [(2.0, EvenCpu()), (1.0, EvenMemory())],
    [(1.0, Pack())],
    [(1.0, EvenCount())],
    [(0.1, EvenCount()), (0.7, EvenCpu()), (1.3, EvenMemory()), (0.3, Pack())],
    [(3, EvenMemory()), (1e-3, EvenCpu())],
    [],
]


@pytest.mark.parametrize("weights", FACTORS, ids=lambda ws: "+".join(f"{f}*{w.name}" for f, w in ws) or "none")
def test_fused_score_is_exactly_the_plain_score(weights) -> None:  # type: ignore[no-untyped-def]
    """The scheduler's fused function against Kind.plain_score: same None, same float."""
    passed = failed = 0
    for ld, demand, overcommit, limit in CASES:
        filters = [MemoryFits(overcommit), UtilizationLimit(limit), AntiAffinity()]
        kind = Kind(demand, frozenset(), filters, weights)
        assert kind.fused is not None and (kind.score, kind.take) == kind.fused
        plain = kind.plain_score(ld)
        fused = kind.score(ld)
        assert fused == plain and (fused is None) == (plain is None), (demand, weights)
        if plain is None:
            failed += 1
        else:
            passed += 1
            assert type(fused) is float
        # take: one VM more on the load, then its score; against add() and plain_score()
        one, twin = copy.copy(ld), copy.copy(ld)  # CASES are shared: work on copies
        one.pools, twin.pools = dict(ld.pools), dict(ld.pools)
        taken = kind.take(one)
        plain_taken = kind.plain_take(twin)
        assert taken == plain_taken and (taken is None) == (plain_taken is None), (demand, weights)
        assert {f: getattr(one, f) for f in LOAD_FIELDS} == {f: getattr(twin, f) for f in LOAD_FIELDS}
        assert one.vm_count == ld.vm_count + 1
    assert passed > 50 and failed > 50


def test_fuse_gives_up_on_a_plugin_without_expression() -> None:
    class OpaqueFilter(Filter):
        name = "opaque"
        dynamic = True

        def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
            return None

    class OpaqueWeight(Weight):
        name = "opaque"
        monotone = True

        def score(self, load: HostLoad, demand: Demand) -> float:
            return 0.0

    assert OpaqueFilter().expression(Demand()) is None and OpaqueWeight().expression(Demand()) is None
    assert fuse([OpaqueFilter()], [], Demand()) is None
    assert fuse([], [(1.0, OpaqueWeight())], Demand()) is None
    kind = Kind(Demand(), frozenset(), [OpaqueFilter()], [(1.0, EvenCpu())])
    assert kind.fused is None
    assert kind.score == kind.plain_score
