"""The placement model: CPU needs, demands, host loads and placements."""

from __future__ import annotations

import pytest

from corral.domain.models import TemplateInfo
from corral.scheduling.model import CpuNeed, Demand, HostLoad, Placement, Rejection, Request, model_word

from ._factories import XEON_V3, XEON_V4, host, load

# -- model_word --------------------------------------------------------------------------


@pytest.mark.parametrize(("description", "word"), [
    (XEON_V4, "v4"),
    (XEON_V3, "v3"),
    ("AMD EPYC 7763 64-Core Processor", "Processor"),
    ("  Intel(R)   Xeon(R)\tCPU  E5-2690   v2  ", "v2"),  # any whitespace separates words
    ("Intel(R) Xeon(R) CPU E5-2680", ""),  # four words: no fifth
    ("", ""),
])
def test_model_word_is_the_fifth_word(description: str, word: str) -> None:
    assert model_word(description) == word


# -- CpuNeed -------------------------------------------------------------------------------


def test_cpu_need_of_template_copies_every_cpu_field() -> None:
    t = TemplateInfo("t", cpus=4, memory_mb=2048, cpu_vendor="GenuineIntel", cpu_family=6,
                     cpu_flags=frozenset({"avx2", "aes"}), cpu_model="v4")
    assert CpuNeed.of(t) == CpuNeed("GenuineIntel", 6, frozenset({"avx2", "aes"}), "v4")
    assert CpuNeed.of(TemplateInfo("plain")) == CpuNeed()


def test_to_stay_on_takes_the_hosts_vendor_and_model_word_when_the_host_has_no_flags() -> None:
    h = host("h", cpu_vendor="GenuineIntel", cpu_model=XEON_V3)
    need = CpuNeed.to_stay_on(h, CpuNeed(family=6))
    assert need == CpuNeed("GenuineIntel", 6, frozenset(), "v3")


def test_to_stay_on_with_host_flags_does_not_ask_for_the_model_word() -> None:
    h = host("h", cpu_vendor="AuthenticAMD", cpu_flags=frozenset({"sse4_2", "avx2"}), cpu_model=XEON_V3)
    need = CpuNeed.to_stay_on(h, CpuNeed(flags=frozenset({"avx2"})))
    assert need == CpuNeed("AuthenticAMD", None, frozenset({"avx2"}), "")


def test_to_stay_on_keeps_the_templates_own_vendor_and_model() -> None:
    h = host("h", cpu_vendor="AuthenticAMD", cpu_model=XEON_V3)
    need = CpuNeed.to_stay_on(h, CpuNeed(vendor="GenuineIntel", model="v4"))
    assert need.vendor == "GenuineIntel"
    assert need.model == "v4"


def test_to_stay_on_a_host_with_a_short_description_and_no_vendor_asks_for_nothing() -> None:
    h = host("h", cpu_model="Virtual CPU")
    assert CpuNeed.to_stay_on(h, CpuNeed()) == CpuNeed()


def test_cpu_need_describe() -> None:
    assert CpuNeed().describe() == "any CPU"
    assert CpuNeed("GenuineIntel", 6, frozenset({"sse4_2", "avx2"}), "v4").describe() == (
        "GenuineIntel family 6 model v4 flags avx2,sse4_2")
    assert CpuNeed(family=0).describe() == "family 0"  # family 0 is a family, not "nothing"
    assert CpuNeed(flags=frozenset({"aes"})).describe() == "flags aes"


# -- Demand --------------------------------------------------------------------------------


def test_demand_of_template() -> None:
    t = TemplateInfo("t", cpus=4, memory_mb=8192, cpu_vendor="GenuineIntel")
    d = Demand.of(t, pool="web", cluster="c1", max_per_host=2)
    assert d == Demand(4, 8192, CpuNeed("GenuineIntel"), "web", "c1", 2)
    assert Demand.of(TemplateInfo("t")) == Demand(1, 1024, CpuNeed(), "", None, None)


def test_demand_describe() -> None:
    assert Demand().describe() == "1 vCPU, 1024 MB, any CPU"
    assert Demand(4, 8192, CpuNeed(vendor="AuthenticAMD", flags=frozenset({"avx2"}))).describe() == (
        "4 vCPU, 8192 MB, AuthenticAMD flags avx2")


def test_demands_that_ask_the_same_are_equal_and_hash_alike() -> None:
    a = Demand(2, 2048, CpuNeed(flags=frozenset({"a", "b"})), "p", None, 1)
    b = Demand(2, 2048, CpuNeed(flags=frozenset({"b", "a"})), "p", None, 1)
    assert a == b and hash(a) == hash(b)
    assert a != Demand(2, 2048, CpuNeed(flags=frozenset({"a"})), "p", None, 1)


# -- HostLoad ------------------------------------------------------------------------------


def test_host_load_reads_the_host() -> None:
    h = host("h", cores=8, mhz=2500, memory_mb=65536, cpu_used_mhz=5000, memory_used_mb=16384, vm_count=7)
    ld = HostLoad(h, 3, 0.5)
    assert (ld.name, ld.index, ld.info) == ("h", 3, h)
    assert ld.cpu_cap == 20000.0
    assert ld.cpu_used == 5000.0
    assert ld.vcpu_mhz == 1250.0
    assert ld.mem_cap == 65536.0
    assert ld.mem_used == ld.mem_alloc == 16384.0  # no allocation reported: the use stands in
    assert ld.vm_count == 7
    assert ld.pools == {}
    assert ld.cpu_percent == 25.0
    assert ld.memory_percent == 25.0


def test_host_load_uses_the_reported_allocation() -> None:
    ld = load(host("h", memory_used_mb=1000, memory_allocated_mb=15000))
    assert ld.mem_used == 1000.0
    assert ld.mem_alloc == 15000.0
    assert load(host("h", memory_used_mb=1000, memory_allocated_mb=0)).mem_alloc == 0.0  # 0 is not "unknown"


def test_host_load_of_an_empty_host_has_non_zero_capacities() -> None:
    ld = load(host("h", cores=0, mhz=0, memory_mb=0))
    assert ld.cpu_cap == 1.0 and ld.mem_cap == 1.0
    assert ld.cpu_percent == 0.0 and ld.memory_percent == 0.0


def test_host_load_add_and_remove() -> None:
    ld = load(host("h", cpu_used_mhz=1000, memory_used_mb=2000, memory_allocated_mb=3000, vm_count=2))
    d = Demand(cpus=4, memory_mb=512)
    ld.add(d)
    assert (ld.cpu_used, ld.mem_used, ld.mem_alloc, ld.vm_count) == (2000.0, 2512.0, 3512.0, 3)
    assert ld.pools == {}  # a pool without max_per_host is not counted
    ld.add(d, -1)
    assert (ld.cpu_used, ld.mem_used, ld.mem_alloc, ld.vm_count) == (1000.0, 2000.0, 3000.0, 2)
    anti = Demand(pool="web", max_per_host=2)
    ld.add(anti)
    ld.add(anti)
    assert ld.pools == {"web": 2}
    ld.add(anti, -1)
    assert ld.pools == {"web": 1}


# -- Rejection -----------------------------------------------------------------------------


@pytest.mark.parametrize(("rejection", "line"), [
    (Rejection("in maintenance"), "in maintenance"),
    (Rejection("health", "not responding"), "health: not responding"),
    (Rejection("memory", "500 MB free, needs 4096 MB"), "memory: 500 MB free, needs 4096 MB"),
    (Rejection("cpu", "model v3 ('Xeon: v3'), needs v4"), "cpu: model v3 ('Xeon: v3'), needs v4"),
    (Rejection("excluded", "tried already or the VM's own host"), "excluded: tried already or the VM's own host"),
    (Rejection("no room"), "no room"),
])
def test_rejection_reads_as_kind_and_detail(rejection: Rejection, line: str) -> None:
    assert str(rejection) == line and f"{rejection}" == line
    assert line.startswith(rejection.kind)


@pytest.mark.parametrize(("a", "b", "equal"), [
    (Rejection("memory", "x"), Rejection("memory", "x"), True),
    (Rejection("memory", "x"), Rejection("memory", "y"), False),
    (Rejection("memory"), Rejection("memory", ""), True),
    (Rejection("cpu", "x"), Rejection("memory", "x"), False),
])
def test_rejections_are_values(a: Rejection, b: Rejection, equal: bool) -> None:
    assert (a == b) is equal
    assert not equal or hash(a) == hash(b)


def test_a_detail_with_a_colon_stays_in_its_group() -> None:
    """The kind is a field, not the text before the first colon: details may hold colons."""
    rejected = {"a": Rejection("cpu", "model ? ('AMD: EPYC'), needs v4"), "b": Rejection("cpu", "lacks avx")}
    why = Placement(Request("vm", Demand()), None, rejected).why()
    assert why.endswith("cpu x2 (a: model ? ('AMD: EPYC'), needs v4; b: lacks avx)")


# -- Placement -----------------------------------------------------------------------------


def test_placement_ok_and_why_when_placed() -> None:
    p = Placement(Request("vm", Demand()), "h1")
    assert p.ok
    assert p.why() == "placed on h1"
    assert not Placement(Request("vm", Demand()), None, {}).ok


@pytest.mark.parametrize("rejected", [None, {}])
def test_placement_why_with_no_hosts_at_all(rejected: dict[str, Rejection] | None) -> None:
    p = Placement(Request("vm", Demand(2, 4096)), None, rejected)
    assert p.why() == "no host can take a VM of 2 vCPU, 4096 MB, any CPU: no hosts are up"


def test_placement_why_groups_reasons_by_kind_largest_group_first() -> None:
    rejected = {
        "m1": Rejection("in maintenance"),
        "a": Rejection("memory", "500 MB free, needs 4096 MB"),
        "b": Rejection("memory", "0 MB free, needs 4096 MB"),
        "c": Rejection("health", "status red"),
    }
    why = Placement(Request("vm", Demand(2, 4096)), None, rejected).why()
    assert why == (
        "no host can take a VM of 2 vCPU, 4096 MB, any CPU (4 hosts rejected): "
        "memory x2 (a: 500 MB free, needs 4096 MB; b: 0 MB free, needs 4096 MB); "
        "health x1 (c: status red); in maintenance x1 (m1)")


def test_placement_why_shows_at_most_limit_hosts_per_group() -> None:
    rejected = {f"h{i}": Rejection("utilization", f"CPU would reach {91 + i}.0% (limit 90%)") for i in range(5)}
    rejected["x"] = Rejection("in maintenance")
    why = Placement(Request("vm", Demand()), None, rejected).why(limit=2)
    assert "utilization x5 (h0: CPU would reach 91.0% (limit 90%); " \
           "h1: CPU would reach 92.0% (limit 90%); and 3 more)" in why
    assert "h2" not in why and "h4" not in why
    assert why.endswith("; in maintenance x1 (x)")
    assert "(and" not in Placement(Request("vm", Demand()), None, rejected).why(limit=5)


def test_pools_asking_the_same_share_one_demand() -> None:
    t = TemplateInfo("t", cpus=2, memory_mb=4096)
    assert Demand.of(t, pool="a") == Demand.of(t, pool="b") and Demand.of(t, pool="a").pool == ""
    assert Demand.of(t, pool="a", max_per_host=1) != Demand.of(t, pool="b", max_per_host=1)
