"""Each filter: the hosts it passes, the hosts it rejects, and what its reason says."""

from __future__ import annotations

import pytest

from corral.domain.models import HostHealth
from corral.scheduling.filters import (
    FILTERS,
    AntiAffinity,
    CpuCompatible,
    Filter,
    Healthy,
    InCluster,
    MemoryFits,
    NotInMaintenance,
    UtilizationLimit,
    default_filters,
)
from corral.scheduling.model import CpuNeed, Demand, HostLoad, Rejection, Request
from corral.scheduling.scheduler import Scheduler

from ._factories import XEON_V3, XEON_V4, host, load, said, said_all

AVX = frozenset({"avx2", "sse4_2", "aes"})


def cpu(need: CpuNeed, **host_kw: object) -> str | None:
    return said(CpuCompatible().check(load(host("h", **host_kw)), Demand(cpu=need)))


# -- CpuCompatible -------------------------------------------------------------------------


def test_cpu_applies_only_to_demands_that_ask_something() -> None:
    f = CpuCompatible()
    assert not f.applies(Demand())
    assert f.applies(Demand(cpu=CpuNeed(vendor="GenuineIntel")))
    assert f.applies(Demand(cpu=CpuNeed(family=0)))  # family 0 is a request
    assert f.applies(Demand(cpu=CpuNeed(flags=frozenset({"avx2"}))))
    assert f.applies(Demand(cpu=CpuNeed(model="v4")))
    assert f.dynamic is False
    assert not f.host_only  # its answer depends on the demand


def test_cpu_any_cpu_passes_every_host() -> None:
    assert cpu(CpuNeed(), cpu_vendor="AuthenticAMD", cpu_family=25) is None
    assert cpu(CpuNeed(), cpu_model="") is None


def test_cpu_vendor() -> None:
    assert cpu(CpuNeed(vendor="GenuineIntel"), cpu_vendor="GenuineIntel") is None
    assert cpu(CpuNeed(vendor="GenuineIntel"), cpu_vendor="AuthenticAMD") == (
        "cpu: vendor AuthenticAMD, needs GenuineIntel")
    assert cpu(CpuNeed(vendor="GenuineIntel"), cpu_vendor="") is None  # an unknown vendor is not held against it


def test_cpu_family() -> None:
    assert cpu(CpuNeed(family=6), cpu_family=6) is None
    assert cpu(CpuNeed(family=6), cpu_family=25) == "cpu: family 25, needs 6"
    assert cpu(CpuNeed(family=0), cpu_family=6) == "cpu: family 6, needs 0"
    assert cpu(CpuNeed(family=6), cpu_family=None) is None


def test_cpu_vendor_is_checked_before_family() -> None:
    reason = cpu(CpuNeed(vendor="GenuineIntel", family=6), cpu_vendor="AuthenticAMD", cpu_family=25)
    assert reason == "cpu: vendor AuthenticAMD, needs GenuineIntel"


def test_cpu_flags() -> None:
    assert cpu(CpuNeed(flags=frozenset({"avx2"})), cpu_flags=AVX) is None
    assert cpu(CpuNeed(flags=AVX), cpu_flags=AVX) is None
    reason = cpu(CpuNeed(flags=frozenset({"avx512f", "avx2", "amx"})), cpu_flags=AVX)
    assert reason == "cpu: lacks amx,avx512f"  # only the missing ones, sorted


def test_cpu_host_without_flags_cannot_prove_it_has_them() -> None:
    reason = cpu(CpuNeed(flags=frozenset({"sse4_2", "avx2"})), cpu_flags=frozenset())
    assert reason == "cpu: reports no flags, needs avx2,sse4_2"


def test_cpu_host_without_flags_is_judged_by_the_model_word() -> None:
    need = CpuNeed(flags=frozenset({"avx2"}), model="v4")
    assert cpu(need, cpu_model=XEON_V4) is None
    assert cpu(need, cpu_model=XEON_V3) == f"cpu: model v3 ({XEON_V3!r}), needs v4"
    assert cpu(need, cpu_model="Intel Xeon") == "cpu: model ? ('Intel Xeon'), needs v4"


def test_cpu_model_word_is_the_fifth_word_not_any_word() -> None:
    # "v4" appears, but as the fourth word: vmpooler's rule looks at the fifth only
    assert cpu(CpuNeed(model="v4"), cpu_model="Intel Xeon CPU v4 E5-2680") == (
        "cpu: model E5-2680 ('Intel Xeon CPU v4 E5-2680'), needs v4")


def test_cpu_host_with_flags_is_judged_by_flags_not_model() -> None:
    need = CpuNeed(flags=frozenset({"avx2"}), model="v4")
    assert cpu(need, cpu_flags=AVX, cpu_model=XEON_V3) is None
    assert cpu(CpuNeed(flags=frozenset({"avx512f"}), model="v3"), cpu_flags=AVX, cpu_model=XEON_V3) == (
        "cpu: lacks avx512f")


def test_cpu_model_alone_is_checked_on_every_host() -> None:
    assert cpu(CpuNeed(model="v4"), cpu_flags=AVX, cpu_model=XEON_V4) is None
    assert cpu(CpuNeed(model="v4"), cpu_flags=AVX, cpu_model=XEON_V3) == f"cpu: model v3 ({XEON_V3!r}), needs v4"


def test_cpu_need_to_stay_on_passes_its_own_host_and_rejects_another_generation() -> None:
    own = host("own", cpu_vendor="GenuineIntel", cpu_model=XEON_V4)
    need = CpuNeed.to_stay_on(own, CpuNeed())
    f = CpuCompatible()
    assert f.check(load(own), Demand(cpu=need)) is None
    older = host("older", cpu_vendor="GenuineIntel", cpu_model=XEON_V3)
    assert said(f.check(load(older), Demand(cpu=need))) == f"cpu: model v3 ({XEON_V3!r}), needs v4"
    amd = host("amd", cpu_vendor="AuthenticAMD", cpu_model=XEON_V4)
    assert said(f.check(load(amd), Demand(cpu=need))) == "cpu: vendor AuthenticAMD, needs GenuineIntel"


# -- NotInMaintenance and Healthy: host-only ----------------------------------------------


def test_maintenance() -> None:
    f = NotInMaintenance()
    assert f.host_only is True and f.dynamic is False
    assert f.check(load(host("h")), Demand()) is None
    assert said(f.check(load(host("h", maintenance=True)), Demand())) == "in maintenance"


@pytest.mark.parametrize(("kw", "reason"), [
    ({}, None),
    ({"up": False}, "health: not responding"),
    ({"up": False, "health": "red"}, "health: not responding"),  # down comes first
    ({"health": "yellow"}, "health: status yellow"),
    ({"health": "red"}, "health: status red"),
    ({"health": "gray"}, "health: status gray"),
    ({"config_issues": 1}, "health: 1 configuration issue"),
    ({"config_issues": 3}, "health: 3 configuration issues"),
    ({"health": "yellow", "config_issues": 3}, "health: status yellow"),
])
def test_healthy(kw: dict[str, object], reason: str | None) -> None:
    f = Healthy()
    assert f.host_only is True and f.dynamic is False
    assert said(f.check(load(host("h", **kw)), Demand())) == reason


def test_host_only_filters_ignore_the_demand() -> None:
    ill = load(host("h", maintenance=True, health=HostHealth.RED))
    for demand in (Demand(), Demand(64, 10**6, CpuNeed(vendor="x"), "p", "c", 1)):
        assert said(NotInMaintenance().check(ill, demand)) == "in maintenance"
        assert said(Healthy().check(ill, demand)) == "health: status red"


# -- InCluster -----------------------------------------------------------------------------


def test_cluster() -> None:
    f = InCluster()
    assert not f.applies(Demand())
    assert f.applies(Demand(cluster="c1"))
    assert f.applies(Demand(cluster=""))  # "" is a cluster name, None is "any"
    assert f.check(load(host("h", cluster="c2")), Demand()) is None
    assert f.check(load(host("h", cluster="c1")), Demand(cluster="c1")) is None
    assert said(f.check(load(host("h", cluster="c2")), Demand(cluster="c1"))) == "cluster: in c2, pool wants c1"
    assert said(f.check(load(host("h", cluster="")), Demand(cluster="c1"))) == "cluster: in (none), pool wants c1"


# -- MemoryFits ----------------------------------------------------------------------------


def test_memory_fits_up_to_exactly_the_hosts_memory() -> None:
    f = MemoryFits()
    assert f.dynamic is True
    ld = load(host("h", memory_mb=10_000, memory_used_mb=6_000))
    assert f.check(ld, Demand(memory_mb=4_000)) is None  # exactly full
    assert said(f.check(ld, Demand(memory_mb=4_001))) == "memory: 4000 MB free, needs 4001 MB"


def test_memory_counts_the_allocation_not_the_use() -> None:
    f = MemoryFits()
    ld = load(host("h", memory_mb=10_000, memory_used_mb=1_000, memory_allocated_mb=9_500))
    assert f.check(ld, Demand(memory_mb=500)) is None
    assert said(f.check(ld, Demand(memory_mb=1_000))) == "memory: 500 MB free, needs 1000 MB"


def test_memory_overcommit_lets_allocations_exceed_physical_memory() -> None:
    ld = load(host("h", memory_mb=10_000, memory_used_mb=4_000, memory_allocated_mb=14_000))
    assert said(MemoryFits(1.0).check(ld, Demand(memory_mb=1))) == "memory: 0 MB free, needs 1 MB"  # never negative
    assert MemoryFits(1.5).check(ld, Demand(memory_mb=1_000)) is None  # 15,000 exactly
    assert said(MemoryFits(1.5).check(ld, Demand(memory_mb=1_001))) == "memory: 1000 MB free, needs 1001 MB"
    assert MemoryFits(2.0).check(ld, Demand(memory_mb=6_000)) is None


def test_memory_fits_counts_placed_vms() -> None:
    f = MemoryFits()
    ld = load(host("h", memory_mb=4_096))
    d = Demand(memory_mb=1_024)
    for _ in range(4):
        assert f.check(ld, d) is None
        ld.add(d)
    assert said(f.check(ld, d)) == "memory: 0 MB free, needs 1024 MB"


# -- UtilizationLimit ----------------------------------------------------------------------


def test_utilization_cpu_exactly_at_the_limit_passes_just_above_fails() -> None:
    f = UtilizationLimit(90.0)
    assert f.dynamic is True
    # capacity 10 x 1000 MHz; one vCPU is 250 MHz (vcpu_load 0.25)
    ld = load(host("h", cpu_used_mhz=8_500))
    assert f.check(ld, Demand(cpus=2, memory_mb=0)) is None  # 9,000 MHz: 90.0%
    assert said(f.check(ld, Demand(cpus=3, memory_mb=0))) == "utilization: CPU would reach 92.5% (limit 90%)"
    above = load(host("h", cpu_used_mhz=8_501))
    assert said(f.check(above, Demand(cpus=2, memory_mb=0))) == "utilization: CPU would reach 90.0% (limit 90%)"


def test_utilization_memory_exactly_at_the_limit_passes_just_above_fails() -> None:
    f = UtilizationLimit(80.0)
    ld = load(host("h", memory_used_mb=7_000))
    assert f.check(ld, Demand(cpus=0, memory_mb=1_000)) is None  # 80.0%
    assert said(f.check(ld, Demand(cpus=0, memory_mb=1_050))) == "utilization: memory would reach 80.5% (limit 80%)"


def test_utilization_counts_the_vcpus_at_the_hosts_vcpu_load() -> None:
    f = UtilizationLimit(50.0)
    d = Demand(cpus=4, memory_mb=0)
    assert f.check(load(host("h"), vcpu_load=1.25), d) is None  # 4 x 1250 MHz: 50%
    assert said(f.check(load(host("h"), vcpu_load=1.5), d)) == "utilization: CPU would reach 60.0% (limit 50%)"


def test_utilization_reports_cpu_before_memory_and_formats_the_limit() -> None:
    ld = load(host("h", cpu_used_mhz=9_900, memory_used_mb=9_900))
    assert said(UtilizationLimit(97.5).check(ld, Demand(cpus=1, memory_mb=100))) == (
        "utilization: CPU would reach 101.5% (limit 97.5%)")
    ld = load(host("h", memory_used_mb=9_900))
    assert said(UtilizationLimit().check(ld, Demand(cpus=1, memory_mb=100))) == (
        "utilization: memory would reach 100.0% (limit 90%)")


def test_utilization_default_limit_is_90() -> None:
    assert UtilizationLimit().limit == 90.0


# -- AntiAffinity --------------------------------------------------------------------------


def test_anti_affinity_applies_only_with_a_limit() -> None:
    f = AntiAffinity()
    assert f.dynamic is True
    assert not f.applies(Demand(pool="web"))
    assert f.applies(Demand(pool="web", max_per_host=1))
    assert f.applies(Demand(pool="web", max_per_host=0))
    assert f.check(load(host("h")), Demand(pool="web")) is None


def test_anti_affinity_counts_the_pools_vms() -> None:
    f = AntiAffinity()
    d = Demand(pool="web", max_per_host=2)
    ld = load(host("h"))
    ld.pools["db"] = 5  # another pool's VMs do not count
    assert f.check(ld, d) is None
    ld.add(d)
    assert f.check(ld, d) is None
    ld.add(d)
    assert said(f.check(ld, d)) == "anti-affinity: holds 2 VMs of web (limit 2)"
    assert f.check(ld, Demand(pool="web", max_per_host=3)) is None
    assert said(f.check(load(host("h")), Demand(pool="web", max_per_host=0))) == (
        "anti-affinity: holds 0 VMs of web (limit 0)")


def test_anti_affinity_counts_the_inventorys_vms_and_reserved_vms() -> None:
    s = Scheduler()
    d = Demand(pool="web", max_per_host=2)
    s.reservations.reserve("web-1", "h1", d)
    loads = s.loads([host("h1"), host("h2")], {"web": {"h1": 1, "h2": 1}, "db": {"h2": 9}})
    assert loads["h1"].pools == {"web": 2}
    assert loads["h2"].pools == {"web": 1, "db": 9}
    f = AntiAffinity()
    assert said(f.check(loads["h1"], d)) == "anti-affinity: holds 2 VMs of web (limit 2)"
    assert f.check(loads["h2"], d) is None
    [p] = s.place([host("h1"), host("h2")], [Request("web-2", d)], pool_counts={"web": {"h1": 1, "h2": 1}})
    assert p.host == "h2"
    [p] = s.place([host("h1"), host("h2")], [Request("web-3", d)], pool_counts={"web": {"h1": 1, "h2": 1}})
    assert p.host is None
    assert said_all(p.rejected) == {"h1": "anti-affinity: holds 2 VMs of web (limit 2)",
                                      "h2": "anti-affinity: holds 2 VMs of web (limit 2)"}


# -- the default set -----------------------------------------------------------------------


@pytest.mark.parametrize(("name", "cls", "dynamic", "host_only", "expressed"), [
    ("maintenance", NotInMaintenance, False, True, False),
    ("health", Healthy, False, True, False),
    ("cluster", InCluster, False, False, False),
    ("cpu", CpuCompatible, False, False, False),
    ("memory", MemoryFits, True, False, True),
    ("utilization", UtilizationLimit, True, False, True),
    ("anti-affinity", AntiAffinity, True, False, True),
])
def test_every_filter_by_name(name: str, cls: type[Filter], dynamic: bool, host_only: bool, expressed: bool) -> None:
    assert FILTERS[name] is cls and cls.name == name
    assert (cls.dynamic, cls.host_only) == (dynamic, host_only)
    demand = Demand(cpu=CpuNeed(vendor="x"), pool="p", cluster="c", max_per_host=1)
    assert cls().applies(demand)
    assert (cls().expression(demand) is not None) is expressed  # every dynamic filter states its rule


def test_a_filter_keeps_the_defaults_unless_it_says_otherwise() -> None:
    class Plain(Filter):
        name = "plain"

        def check(self, load: HostLoad, demand: Demand) -> Rejection | None:
            return None

    f = Plain()
    assert (f.dynamic, f.host_only, f.applies(Demand()), f.expression(Demand())) == (False, False, True, None)



def test_default_filters_cheap_static_ones_first() -> None:
    fs = default_filters(utilization_limit=75.0, memory_overcommit=1.5)
    assert [type(f) for f in fs] == [NotInMaintenance, Healthy, InCluster, CpuCompatible, MemoryFits,
                                     UtilizationLimit, AntiAffinity]
    assert [f.dynamic for f in fs] == [False] * 4 + [True] * 3
    mem = next(f for f in fs if isinstance(f, MemoryFits))
    util = next(f for f in fs if isinstance(f, UtilizationLimit))
    assert mem.overcommit == 1.5 and util.limit == 75.0


def test_scheduler_rejection_reports_the_first_failing_filter_in_order() -> None:
    s = Scheduler()
    sick = load(host("h", maintenance=True, health=HostHealth.RED, cluster="c2", memory_used_mb=10_000))
    d = Demand(memory_mb=4096, cluster="c1")
    assert said(s.rejection(sick, d)) == "in maintenance"
    assert said(s.rejection(load(host("h", health=HostHealth.RED, cluster="c2")), d)) == "health: status red"
    assert said(s.rejection(load(host("h", cluster="c2", memory_used_mb=10_000)), d)) == "cluster: in c2, pool wants c1"
    assert said(s.rejection(load(host("h", cluster="c1", memory_used_mb=10_000)), d)) == (
        "memory: 0 MB free, needs 4096 MB")
    assert s.rejection(load(host("h", cluster="c1")), d) is None
