"""Scheduler.place: exactly the plain greedy, whatever the mix; and why a VM found no host."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from corral.domain.models import HostInfo
from corral.scheduling.filters import CpuCompatible, Filter, MemoryFits, NotInMaintenance
from corral.scheduling.kinds import Kind
from corral.scheduling.model import NO_ROOM, CpuNeed, Demand, HostLoad, Rejection, Request
from corral.scheduling.scheduler import Scheduler, SchedulerSettings

from ._factories import XEON_V3, XEON_V4, host, requests, said, said_all

AVX = frozenset({"avx2", "sse4_2", "aes"})
OLD = frozenset({"sse4_2"})

SETTINGS = {
    "even": SchedulerSettings(),
    "pack": SchedulerSettings(policy="pack"),
    "count": SchedulerSettings(policy="count"),
    "mixed": SchedulerSettings(weights={"cpu": 0.7, "memory": 1.3, "count": 0.01}),
    "mixed-pack": SchedulerSettings(weights={"pack": 1.0, "count": 0.05}),  # not monotone
}


def random_hosts(rng: random.Random, n: int) -> list[HostInfo]:
    hosts: list[HostInfo] = []
    for i in range(n):
        if hosts and rng.random() < 0.25:  # a twin of an earlier host: ties for the name order to break
            twin = rng.choice(hosts)
            hosts.append(HostInfo(**{**{f: getattr(twin, f) for f in HostInfo.__dataclass_fields__},
                                     "name": f"h{rng.randrange(100):02d}-{i}"}))
            continue
        cores = rng.choice([8, 16, 24, 32])
        mhz = rng.choice([2000, 2400, 3000])
        memory = rng.choice([32_768, 65_536, 131_072])
        flagged = rng.random() < 0.6
        hosts.append(host(
            f"h{rng.randrange(100):02d}-{i}", cores=cores, mhz=mhz, memory_mb=memory,
            cpu_used_mhz=round(rng.uniform(0, 0.6) * cores * mhz),
            memory_used_mb=round(rng.uniform(0, 0.6) * memory),
            memory_allocated_mb=rng.choice([None, round(rng.uniform(0.2, 1.0) * memory)]),
            vm_count=rng.randrange(0, 30),
            maintenance=rng.random() < 0.08, up=rng.random() > 0.05,
            health=rng.choice(["green"] * 10 + ["yellow", "red"]), config_issues=int(rng.random() < 0.04),
            cluster=rng.choice(["c1", "c2"]),
            cpu_vendor=rng.choice(["GenuineIntel"] * 4 + ["AuthenticAMD", ""]),
            cpu_family=rng.choice([6, 6, 25, None]),
            cpu_flags=rng.choice([AVX, OLD]) if flagged else frozenset(),
            cpu_model=rng.choice([XEON_V4, XEON_V3, "AMD EPYC 7763 64-Core Processor"]),
        ))
    return hosts


DEMANDS = [
    Demand(1, 1024),
    Demand(2, 4096),
    Demand(8, 16_384),
    Demand(4, 2048, CpuNeed(vendor="GenuineIntel", family=6, flags=frozenset({"avx2"}))),
    Demand(2, 2048, CpuNeed(flags=frozenset({"avx2"}), model="v4")),
    Demand(2, 8192, cluster="c1"),
    Demand(1, 2048, pool="web", max_per_host=2),
    Demand(2, 4096, pool="db", max_per_host=1, cluster="c2"),
    Demand(1, 1024, pool="web", max_per_host=2),  # the same pool with a different size: counts together
    Demand(0, 512),
]


def random_requests(rng: random.Random, hosts: list[HostInfo], n: int) -> list[Request]:
    names = [h.name for h in hosts]
    out = []
    for i in range(n):
        demand = rng.choice(DEMANDS)
        exclude = frozenset(rng.sample(names, rng.randrange(1, 4))) if rng.random() < 0.2 else frozenset()
        # equal but distinct objects too: kinds are found by value, not only by identity
        if rng.random() < 0.3:
            demand = Demand(demand.cpus, demand.memory_mb, demand.cpu, demand.pool, demand.cluster,
                            demand.max_per_host)
        out.append(Request(f"vm{i}", demand, exclude))
    return out


def snapshot(loads: dict[str, HostLoad]) -> dict[str, tuple]:  # type: ignore[type-arg]
    return {n: (ld.cpu_used, ld.mem_used, ld.mem_alloc, ld.vm_count, dict(ld.pools)) for n, ld in loads.items()}


@pytest.mark.parametrize("policy", list(SETTINGS))
def test_place_matches_the_plain_greedy(policy: str) -> None:
    total = Counter[str]()
    for seed in range(8):
        rng = random.Random(f"{policy}-{seed}")
        settings = SETTINGS[policy]
        settings = SchedulerSettings(**{**{f: getattr(settings, f) for f in SchedulerSettings.__dataclass_fields__},
                                        "vcpu_load": rng.choice([0.25, 0.5, 1.0]),
                                        "memory_overcommit": rng.choice([1.0, 1.5]),
                                        "utilization_limit": rng.choice([80.0, 90.0, 100.0])})
        s = Scheduler(settings)
        hosts = random_hosts(rng, rng.randrange(5, 25))
        reqs = random_requests(rng, hosts, rng.randrange(60, 200))
        pool_counts = {"web": {h.name: rng.randrange(0, 3) for h in rng.sample(hosts, 3)},
                       "db": {h.name: 1 for h in rng.sample(hosts, 2)}}
        fast = s.loads(hosts, pool_counts, reserved=False)
        placements = s.place(fast, reqs, reserve=False)
        slow = s.loads(hosts, pool_counts, reserved=False)
        greedy = s.place_greedy(slow, reqs)
        assert [p.host for p in placements] == greedy, f"seed {seed}"
        assert snapshot(fast) == snapshot(slow)
        assert [p.request for p in placements] == reqs
        names = {h.name for h in hosts}
        for p in placements:
            if p.ok:
                assert p.rejected is None
                assert p.host not in p.request.exclude
                total["placed"] += 1
            else:
                assert p.rejected is not None and set(p.rejected) == names  # a reason for every host
                assert all(p.rejected.values()) and NO_ROOM not in p.rejected.values()
                for h in p.request.exclude:
                    assert str(p.rejected[h]) == "excluded: tried already or the VM's own host"
                assert p.why().startswith(f"no host can take a VM of {p.request.demand.describe()} "
                                          f"({len(names)} hosts rejected): ")
                total["failed"] += 1
                total.update(f"reason {r.kind}" for r in p.rejected.values())
        # a host's reason still holds at the end (load only grows): each rejected host still fails
        failed_kinds = {(p.request.demand, p.request.exclude): p for p in placements if not p.ok}
        for (demand, exclude), p in failed_kinds.items():
            kind = Kind(demand, exclude, s.filters, s.weights)
            for name, reason in (p.rejected or {}).items():
                assert kind.rejection(slow[name]) is not None, (name, reason)
        assert s.placed == sum(p.ok for p in placements) and s.failed == len(placements) - s.placed
    # the inputs exercise both outcomes
    assert total["placed"] > 400 and total["failed"] > 200, total
    assert {k for k in total if k.startswith("reason ")} == {
        f"reason {k}" for k in ("in maintenance", "health", "cluster", "cpu", "memory", "utilization",
                                "anti-affinity", "excluded")}


@pytest.mark.parametrize("policy", list(SETTINGS))
def test_place_from_host_list_matches_the_greedy_and_reserves_what_it_placed(policy: str) -> None:
    rng = random.Random(policy)
    hosts = random_hosts(rng, 12)
    reqs = random_requests(rng, hosts, 120)
    s = Scheduler(SETTINGS[policy])
    placements = s.place(hosts, reqs)
    assert [p.host for p in placements] == s.place_greedy(s.loads(hosts, reserved=False), reqs)
    placed = [p for p in placements if p.ok]
    assert 0 < len(placed) < len(placements)
    assert len(s.reservations) == len(placed)
    for p in placed:
        r = s.reservations.get(p.request.name)
        assert r is not None and (r.host, r.demand) == (p.host, p.request.demand)


def test_many_kinds_over_identical_hosts_match_the_greedy() -> None:
    """Ties everywhere: stale heap entries must still break ties by name like the greedy does."""
    for policy in SETTINGS:
        rng = random.Random(policy)
        hosts = [host(f"n{i}", cores=4, mhz=1000, memory_mb=8192) for i in range(7)]
        hosts.append(host("zero", cores=4, mhz=0, memory_mb=8192))  # a vCPU costs it nothing: its CPU score never moves
        demands = [Demand(1, 512), Demand(1, 512, pool="p", max_per_host=3), Demand(0, 1024), Demand(2, 0),
                   Demand(0, 0)]
        reqs = [Request(f"v{i}", rng.choice(demands),
                        frozenset({f"n{rng.randrange(7)}"}) if rng.random() < 0.3 else frozenset())
                for i in range(150)]
        s = Scheduler(SETTINGS[policy])
        got = [p.host for p in s.place(hosts, reqs, reserve=False)]
        assert got == s.place_greedy(s.loads(hosts), reqs), policy
        assert None in got and len(set(got)) == 9


# -- host-only and applies() ---------------------------------------------------------------


class Counting(Filter):
    """Wraps a filter, counting its checks and the demands it was given."""

    def __init__(self, inner: Filter, host_only: bool | None = None) -> None:
        self.inner = inner
        self.name = inner.name  # type: ignore[misc]
        self.dynamic = inner.dynamic  # type: ignore[misc]
        self.host_only = inner.host_only if host_only is None else host_only  # type: ignore[misc]
        self.calls: list[tuple[str, Demand]] = []

    def applies(self, demand: Demand) -> bool:
        return self.inner.applies(demand)

    def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
        self.calls.append((load.name, demand))
        return self.inner.check(load, demand)


def test_host_only_filters_are_checked_once_per_host_per_call() -> None:
    maintenance = Counting(NotInMaintenance(), host_only=True)
    s = Scheduler(filters=[maintenance, MemoryFits()])
    hosts = [host("a"), host("b", maintenance=True), host("c")]
    reqs = [Request(f"v{i}", Demand(cpus=i % 3 + 1, memory_mb=100 * (i % 4 + 1))) for i in range(30)]
    placements = s.place(hosts, reqs)
    assert all(p.host in ("a", "c") for p in placements)
    assert sorted(name for name, _ in maintenance.calls) == ["a", "b", "c"]
    assert {d for _, d in maintenance.calls} == {Demand()}  # host-only: given no demand


def test_a_filter_that_does_not_apply_is_not_asked() -> None:
    cpu = Counting(CpuCompatible())
    s = Scheduler(filters=[cpu], weights=[])  # no weights: the first host by name wins while it passes
    hosts = [host("a", cpu_vendor="AuthenticAMD"), host("b", cpu_vendor="GenuineIntel")]
    assert [p.host for p in s.place(hosts, requests(Demand(), 3))] == ["a", "a", "a"]
    assert cpu.calls == []  # no CPU needs
    intel = Demand(cpu=CpuNeed(vendor="GenuineIntel"))
    assert [p.host for p in s.place(hosts, requests(intel, 2))] == ["b", "b"]
    assert {name for name, _ in cpu.calls} == {"a", "b"}
    assert len(cpu.calls) == 2  # static: once per host for the kind, not once per VM


def test_static_filters_are_checked_once_per_host_and_kind() -> None:
    cpu = Counting(CpuCompatible())
    s = Scheduler(filters=[cpu, MemoryFits()])
    hosts = [host(f"h{i}", cpu_flags=AVX) for i in range(5)]
    a = Demand(cpu=CpuNeed(flags=frozenset({"avx2"})))
    b = Demand(cpu=CpuNeed(flags=frozenset({"aes"})))
    s.place(hosts, [Request(f"v{i}", a if i % 2 else b) for i in range(40)])
    assert len(cpu.calls) == 10


# -- failures and why ----------------------------------------------------------------------


def test_failure_names_maintenance_and_the_memory_shortfall() -> None:
    s = Scheduler()
    hosts = [host("a", memory_used_mb=9_500), host("b", memory_used_mb=9_000), host("m", maintenance=True)]
    [p] = s.place(hosts, [Request("vm", Demand(2, 8192))])
    assert not p.ok and p.host is None
    assert said_all(p.rejected) == {"a": "memory: 500 MB free, needs 8192 MB",
                                      "b": "memory: 1000 MB free, needs 8192 MB",
                                      "m": "in maintenance"}
    why = p.why()
    assert why == ("no host can take a VM of 2 vCPU, 8192 MB, any CPU (3 hosts rejected): "
                   "memory x2 (a: 500 MB free, needs 8192 MB; b: 1000 MB free, needs 8192 MB); "
                   "in maintenance x1 (m)")
    assert (s.placed, s.failed) == (0, 1)
    assert len(s.reservations) == 0  # nothing to hold


def test_failure_reasons_cover_every_filter() -> None:
    s = Scheduler()
    hosts = [
        host("maint", maintenance=True),
        host("down", up=False),
        host("other", cluster="c2"),
        host("amd", cluster="c1", cpu_vendor="AuthenticAMD"),
        host("full", cluster="c1", memory_used_mb=9_000, memory_allocated_mb=9_500),
        host("hot", cluster="c1", cpu_used_mhz=9_000),
        host("crowded", cluster="c1"),
        host("tried", cluster="c1"),
    ]
    d = Demand(1, 1024, CpuNeed(vendor="GenuineIntel"), "web", "c1", 1)
    p = s.place(hosts, [Request("vm", d, frozenset({"tried"}))], pool_counts={"web": {"crowded": 1}})[0]
    assert said_all(p.rejected) == {
        "maint": "in maintenance",
        "down": "health: not responding",
        "other": "cluster: in c2, pool wants c1",
        "amd": "cpu: vendor AuthenticAMD, needs GenuineIntel",
        "full": "memory: 500 MB free, needs 1024 MB",
        "hot": "utilization: CPU would reach 92.5% (limit 90%)",
        "crowded": "anti-affinity: holds 1 VMs of web (limit 1)",
        "tried": "excluded: tried already or the VM's own host",
    }
    why = p.why()
    assert why.startswith("no host can take a VM of 1 vCPU, 1024 MB, GenuineIntel (8 hosts rejected): ")
    for group in ("in maintenance x1 (maint)", "health x1 (down: not responding)",
                  "cluster x1 (other: in c2, pool wants c1)", "cpu x1 (amd: vendor AuthenticAMD, needs GenuineIntel)",
                  "memory x1 (full: 500 MB free, needs 1024 MB)",
                  "utilization x1 (hot: CPU would reach 92.5% (limit 90%))",
                  "anti-affinity x1 (crowded: holds 1 VMs of web (limit 1))",
                  "excluded x1 (tried: tried already or the VM's own host)"):
        assert group in why


def test_hosts_filling_up_fail_the_rest_with_reasons() -> None:
    s = Scheduler()
    hosts = [host("a", memory_mb=4096), host("b", memory_mb=4096)]
    placements = s.place(hosts, requests(Demand(1, 1024), 10))
    # 90% of 4096 MB is 3686 MB: three VMs of 1024 MB per host
    assert [p.host for p in placements] == ["a", "b"] * 3 + [None] * 4
    for p in placements[6:]:
        assert said_all(p.rejected) == {"a": "utilization: memory would reach 100.0% (limit 90%)",
                                          "b": "utilization: memory would reach 100.0% (limit 90%)"}
        assert p.why() == ("no host can take a VM of 1 vCPU, 1024 MB, any CPU (2 hosts rejected): "
                           "utilization x2 (a: memory would reach 100.0% (limit 90%); "
                           "b: memory would reach 100.0% (limit 90%))")
    assert (s.placed, s.failed) == (6, 4)
    # a smaller VM still fits after the big ones failed
    [p] = s.place(hosts, [Request("small", Demand(1, 256))])
    assert p.host == "a"


def test_no_hosts_at_all() -> None:
    s = Scheduler()
    [p] = s.place([], [Request("vm", Demand(2, 2048))])
    assert p.host is None and not p.rejected
    assert p.why() == "no host can take a VM of 2 vCPU, 2048 MB, any CPU: no hosts are up"
    assert s.place_greedy({}, [Request("vm", Demand())]) == [None]


def test_empty_request_list() -> None:
    s = Scheduler()
    assert s.place([host("a")], []) == []
    assert (s.placed, s.failed, len(s.reservations)) == (0, 0, 0)


def test_loads_are_in_name_order_and_updated_in_place() -> None:
    s = Scheduler(SchedulerSettings(vcpu_load=0.5))
    loads = s.loads([host("b"), host("c"), host("a")])
    assert list(loads) == ["a", "b", "c"]
    assert [ld.index for ld in loads.values()] == [0, 1, 2]
    assert loads["a"].vcpu_mhz == 500.0
    s.place(loads, [Request("vm", Demand(2, 1000))], reserve=False)
    assert (loads["a"].cpu_used, loads["a"].mem_used, loads["a"].vm_count) == (1000.0, 1000.0, 1)
    assert len(s.reservations) == 0


# -- one host's answer ---------------------------------------------------------------------


def test_score_and_rejection_of_one_host() -> None:
    s = Scheduler()
    loads = s.loads([host("a", cpu_used_mhz=1_000, memory_used_mb=2_000), host("full", memory_used_mb=9_900)])
    assert s.score(loads["a"], Demand(2, 1000)) == pytest.approx(2 * 0.15 + 0.3)
    assert s.rejection(loads["a"], Demand(2, 1000)) is None
    assert s.score(loads["full"], Demand()) is None
    assert said(s.rejection(loads["full"], Demand())) == "memory: 100 MB free, needs 1024 MB"
    assert s.score(loads["a"], Demand(cluster="elsewhere")) is None


@pytest.mark.parametrize("kw", [{"maintenance": True}, {"up": False}, {"health": "red"}, {"config_issues": 2}])
def test_score_is_none_for_a_host_a_host_only_filter_rejects(kw: dict[str, object]) -> None:
    """Scheduler.score promises None "when a filter rejects it"; rejection() says a filter does."""
    s = Scheduler()
    ld = s.loads([host("h", **kw)])["h"]
    assert s.rejection(ld, Demand()) is not None
    assert s.score(ld, Demand()) is None
