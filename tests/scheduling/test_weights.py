"""Weights and policies: what each scores, and where a burst of VMs goes under each policy."""

from __future__ import annotations

import pytest

from corral.scheduling.model import Demand, HostLoad, Request
from corral.scheduling.scheduler import Scheduler, SchedulerSettings
from corral.scheduling.weights import POLICIES, WEIGHTS, EvenCount, EvenCpu, EvenMemory, Pack, Weight, policy_weights

from ._factories import host, load, requests

# -- the weights ---------------------------------------------------------------------------


def test_even_cpu_scores_the_cpu_share_with_the_vm() -> None:
    ld = load(host("h", cpu_used_mhz=2_000, memory_used_mb=9_000))
    assert EvenCpu().score(ld, Demand(cpus=4)) == pytest.approx(0.3)  # (2000 + 4 x 250) / 10000
    assert EvenCpu().score(ld, Demand(cpus=0)) == 0.2
    assert EvenCpu.monotone is True


def test_even_memory_scores_the_memory_share_with_the_vm() -> None:
    ld = load(host("h", cpu_used_mhz=9_000, memory_used_mb=2_000, memory_allocated_mb=9_999))
    assert EvenMemory().score(ld, Demand(memory_mb=3_000)) == 0.5  # use, not allocation
    assert EvenMemory.monotone is True


def test_even_count_scores_the_vm_count_with_the_vm() -> None:
    assert EvenCount().score(load(host("h", vm_count=6, memory_used_mb=9_000)), Demand(64, 10**6)) == 7.0
    assert EvenCount.monotone is True


def test_pack_scores_the_negated_mean_use() -> None:
    ld = load(host("h", cpu_used_mhz=1_000, memory_used_mb=6_000))
    assert Pack().score(ld, Demand(cpus=4, memory_mb=1_000)) == pytest.approx(-(0.2 + 0.7) / 2)
    assert Pack.monotone is False


def test_spreading_weights_only_worsen_as_load_is_added() -> None:
    ld = load(host("h", cpu_used_mhz=1_000, memory_used_mb=1_000, vm_count=1))
    d = Demand(cpus=2, memory_mb=512)
    for w in (EvenCpu(), EvenMemory(), EvenCount()):
        before = w.score(ld, d)
        ld.add(d)
        assert w.score(ld, d) > before
    before = Pack().score(ld, d)
    ld.add(d)
    assert Pack().score(ld, d) < before  # packing improves as the host fills


# -- policies ------------------------------------------------------------------------------


def test_policies() -> None:
    assert set(WEIGHTS) == {"cpu", "memory", "count", "pack"}
    assert POLICIES["even"] == {"cpu": 2.0, "memory": 1.0}
    even = policy_weights("even")
    assert [(f, type(w)) for f, w in even] == [(2.0, EvenCpu), (1.0, EvenMemory)]
    assert [(f, type(w)) for f, w in policy_weights("pack")] == [(1.0, Pack)]
    assert [(f, type(w)) for f, w in policy_weights("count")] == [(1.0, EvenCount)]
    assert [(f, type(w)) for f, w in policy_weights()] == [(2.0, EvenCpu), (1.0, EvenMemory)]


@pytest.mark.parametrize(("name", "cls", "monotone"), [
    ("cpu", EvenCpu, True),
    ("memory", EvenMemory, True),
    ("count", EvenCount, True),
    ("pack", Pack, False),
])
def test_every_weight_by_name(name: str, cls: type[Weight], monotone: bool) -> None:
    assert WEIGHTS[name] is cls and cls.name == name and cls.monotone is monotone
    assert cls().expression(Demand()) is not None  # each states its score for the fused function


@pytest.mark.parametrize("policy", sorted(POLICIES))
def test_policies_name_only_known_weights(policy: str) -> None:
    assert set(POLICIES[policy]) <= set(WEIGHTS)
    assert policy_weights(policy)


def test_a_weight_keeps_the_safe_defaults_unless_it_says_otherwise() -> None:
    class Plain(Weight):
        name = "plain"

        def score(self, load: HostLoad, demand: Demand) -> float:
            return 0.0

    assert Plain.monotone is False  # scored again eagerly: always exact
    assert Plain().expression(Demand()) is None


def test_explicit_factors_replace_the_policys() -> None:
    ws = policy_weights("even", {"memory": 3.0, "count": 0.5})
    assert [(f, type(w)) for f, w in ws] == [(0.5, EvenCount), (3.0, EvenMemory)]  # by name
    assert [(f, type(w)) for f, w in policy_weights("pack", {"cpu": 1.0})] == [(1.0, EvenCpu)]
    assert [(f, type(w)) for f, w in policy_weights("even", {})] == [(2.0, EvenCpu), (1.0, EvenMemory)]
    assert [(f, type(w)) for f, w in policy_weights("even", {"cpu": 0.0, "memory": 1.0})] == [(1.0, EvenMemory)]


def test_unknown_policy_is_named() -> None:
    with pytest.raises(ValueError, match="unknown placement policy 'spread'") as e:
        policy_weights("spread")
    assert "even" in str(e.value) and "pack" in str(e.value) and "count" in str(e.value)
    with pytest.raises(ValueError, match="'spread'"):
        policy_weights("spread", {"cpu": 1.0})
    with pytest.raises(ValueError, match="'spread'"):
        Scheduler(SchedulerSettings(policy="spread"))


def test_unknown_weight_is_named() -> None:
    with pytest.raises(ValueError, match="unknown weight 'disk', 'net'") as e:
        policy_weights("even", {"net": 1.0, "cpu": 1.0, "disk": 2.0})
    assert "known: cpu, memory, count, pack" in str(e.value)
    with pytest.raises(ValueError, match="'gpu'"):
        Scheduler(SchedulerSettings(weights={"gpu": 1.0}))


# -- where bursts go -----------------------------------------------------------------------


def both(s: Scheduler, hosts: list, reqs: list[Request]) -> list[str | None]:  # type: ignore[type-arg]
    """place()'s hosts, after checking that the plain greedy agrees."""
    placed = [p.host for p in s.place(hosts, reqs, reserve=False)]
    assert placed == s.place_greedy(s.loads(hosts, reserved=False), reqs)
    return placed


def test_even_puts_a_burst_on_the_least_used_first() -> None:
    hosts = [host("busy", cpu_used_mhz=5_000, memory_used_mb=5_000),
             host("idle", cpu_used_mhz=0, memory_used_mb=0),
             host("half", cpu_used_mhz=2_500, memory_used_mb=2_500)]
    d = Demand(cpus=2, memory_mb=500)  # +5% CPU, +5% memory
    placed = both(Scheduler(), hosts, requests(d, 16))
    assert placed[:5] == ["idle"] * 5  # idle reaches 25% with the 5th VM ...
    # ... then ties with half at 30% (half's name sorts first), and they alternate up to 50%
    assert placed[5:15] == ["half", "idle"] * 5
    assert placed[15] == "busy"  # all three would reach 55%: "busy" sorts first


def test_even_weighs_cpu_twice_as_much_as_memory() -> None:
    # cpu_light: CPU 10%, memory 40% -> 2 x 0.1 + 0.4 = 0.6
    # mem_light: CPU 30%, memory 10% -> 2 x 0.3 + 0.1 = 0.7 (but 0.4 < 0.5 with equal factors)
    hosts = [host("cpu_light", cpu_used_mhz=1_000, memory_used_mb=4_000),
             host("mem_light", cpu_used_mhz=3_000, memory_used_mb=1_000)]
    d = Demand(cpus=0, memory_mb=0)
    assert both(Scheduler(), hosts, requests(d, 1)) == ["cpu_light"]
    assert both(Scheduler(SchedulerSettings(weights={"cpu": 1.0, "memory": 1.0})), hosts, requests(d, 1)) == [
        "mem_light"]
    # and memory still counts: a small CPU edge loses to a large memory one
    hosts = [host("a", cpu_used_mhz=1_000, memory_used_mb=8_000), host("b", cpu_used_mhz=2_000, memory_used_mb=1_000)]
    assert both(Scheduler(), hosts, requests(d, 1)) == ["b"]


def test_explicit_factors_override_the_policy_in_the_scheduler() -> None:
    hosts = [host("cpu_light", cpu_used_mhz=1_000, memory_used_mb=6_000),
             host("mem_light", cpu_used_mhz=6_000, memory_used_mb=1_000)]
    d = Demand(cpus=1, memory_mb=100)
    assert both(Scheduler(SchedulerSettings(policy="even")), hosts, requests(d, 1)) == ["cpu_light"]
    assert both(Scheduler(SchedulerSettings(policy="even", weights={"memory": 1.0})), hosts,
                requests(d, 1)) == ["mem_light"]
    assert both(Scheduler(SchedulerSettings(policy="pack", weights={"cpu": 1.0})), hosts,
                requests(d, 1)) == ["cpu_light"]


def test_pack_fills_the_busiest_host_that_fits_then_moves_on() -> None:
    hosts = [host("a", cpu_used_mhz=2_000, memory_used_mb=2_000),
             host("b", cpu_used_mhz=5_000, memory_used_mb=5_000),
             host("c", cpu_used_mhz=0, memory_used_mb=0)]
    d = Demand(cpus=1, memory_mb=1_000)  # +2.5% CPU, +10% memory: memory meets the 90% limit first
    placed = both(Scheduler(SchedulerSettings(policy="pack")), hosts, requests(d, 22))
    assert placed == ["b"] * 4 + ["a"] * 7 + ["c"] * 9 + [None, None]  # each up to exactly 90%


def test_pack_moves_on_when_the_memory_filter_stops_it() -> None:
    hosts = [host("a", memory_used_mb=0, memory_allocated_mb=8_000), host("b", memory_used_mb=1_000)]
    d = Demand(cpus=0, memory_mb=1_000)
    s = Scheduler(SchedulerSettings(policy="pack", utilization_limit=100.0))
    # a looks emptier by use (0%) but only 2,000 MB is unallocated; b is busier by use
    assert both(s, hosts, requests(d, 12)) == ["b"] * 9 + ["a"] * 2 + [None]


def test_even_spreads_where_pack_piles() -> None:
    hosts = [host(f"h{i}", cpu_used_mhz=100 * i, memory_used_mb=100 * i) for i in range(4)]
    d = Demand(cpus=1, memory_mb=1_000)
    even = both(Scheduler(), hosts, requests(d, 8))
    pack = both(Scheduler(SchedulerSettings(policy="pack")), hosts, requests(d, 8))
    assert sorted(even) == ["h0", "h0", "h1", "h1", "h2", "h2", "h3", "h3"]
    assert pack == ["h3"] * 8


def test_count_evens_the_vm_counts() -> None:
    # c has few VMs but much memory in use: the count policy does not care
    hosts = [host("a", vm_count=4), host("b", vm_count=1), host("c", vm_count=0, memory_used_mb=7_000)]
    d = Demand(cpus=1, memory_mb=100)
    placed = both(Scheduler(SchedulerSettings(policy="count")), hosts, requests(d, 8))
    assert placed == ["c", "b", "c", "b", "c", "b", "c", "a"]
    assert [placed.count(h) + n for h, n in (("a", 4), ("b", 1), ("c", 0))] == [5, 4, 4]


# -- ties ----------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["even", "pack", "count"])
def test_identical_hosts_tie_to_the_lexicographically_first_name(policy: str) -> None:
    names = ["h2", "h10", "h1", "b", "a10", "a9"]
    s = Scheduler(SchedulerSettings(policy=policy))
    for order in (names, list(reversed(names)), sorted(names)):
        hosts = [host(n) for n in order]
        assert both(s, hosts, requests(Demand(), 1)) == ["a10"]  # "a10" < "a9" as strings
        hosts = [host(n) for n in order if n.startswith("h")]
        assert both(s, hosts, requests(Demand(), 1)) == ["h1"]
        hosts = [host(n) for n in order if n in ("h2", "h10")]
        assert both(s, hosts, requests(Demand(), 1)) == ["h10"]


def test_a_burst_over_identical_hosts_goes_round_in_name_order() -> None:
    hosts = [host(n) for n in ("c", "a", "b")]
    for policy in ("even", "count"):
        placed = both(Scheduler(SchedulerSettings(policy=policy)), hosts, requests(Demand(), 6))
        assert placed == ["a", "b", "c", "a", "b", "c"]


def test_zero_factors_leave_only_the_name_order() -> None:
    hosts = [host("z"), host("y", cpu_used_mhz=5_000), host("x", memory_used_mb=8_000)]
    s = Scheduler(weights=[])
    assert both(s, hosts, requests(Demand(cpus=0, memory_mb=500), 3)) == ["x", "x", "y"]  # x full at 90%
