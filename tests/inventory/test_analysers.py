"""The analysers: (old, new) record pairs into domain events, with the host-down grace period."""

from __future__ import annotations

from typing import Any

import pytest

from corral.domain.events import (
    INVENTORY_EVENTS,
    HostDown,
    HostMaintenanceChanged,
    HostOverUtilized,
    HostUp,
    MigrationDone,
    VmCreated,
    VmDisappeared,
    VmMoved,
    VmStateChanged,
)
from corral.domain.models import HostInfo, ProviderVm
from corral.domain.states import PowerState
from corral.inventory import Analyser, AnalyserSettings, Changes

AT = 1_700_000_000.0
OFF = {"powered_on": False}
BOOTING = {"powered_on": True, "guest_ready": False}
UP = {"powered_on": True, "guest_ready": True}


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def mono() -> FakeMonotonic:
    return FakeMonotonic()


@pytest.fixture
def analyser(mono: FakeMonotonic) -> Analyser:
    settings = AnalyserSettings(host_down_grace_s=60.0, over_utilized_percent=80.0, hysteresis_percent=5.0)
    return Analyser("sim", settings, monotonic=mono, clock=lambda: AT)


def vm(name: str = "vm-1", host: str = "h1", pool: str | None = "pool-a", **kw: Any) -> ProviderVm:
    kw = {**UP, **kw}
    return ProviderVm(name=name, host=host, pool=pool, **kw)


def host(name: str = "h1", cpu: float = 10.0, memory: float = 10.0, **kw: Any) -> HostInfo:
    """A host at ``cpu`` / ``memory`` percent use (10 cores of 1000 MHz, 10000 MB)."""
    return HostInfo(name=name, cpu_model="cpu", cores=10, mhz=1000, memory_mb=10_000,
                    cpu_used_mhz=cpu * 100, memory_used_mb=memory * 100, **kw)


def vms(*pairs: tuple[ProviderVm | None, ProviderVm | None]) -> Changes:
    return Changes(vms=list(pairs))


def hosts(*pairs: tuple[HostInfo | None, HostInfo | None]) -> Changes:
    return Changes(hosts=list(pairs))


# -- VMs -----------------------------------------------------------------------------------


@pytest.mark.parametrize("power, state", [(OFF, PowerState.OFF), (BOOTING, PowerState.BOOTING), (UP, PowerState.UP)],
                         ids=["off", "booting", "up"])
def test_a_new_vm_is_vm_created_with_its_power_state(analyser: Analyser, power: dict[str, bool],
                                                      state: PowerState) -> None:
    events = analyser.analyse(vms((None, vm(**power))))
    assert events == [VmCreated(AT, "sim", "vm-1", "pool-a", "h1", state=state)]


@pytest.mark.parametrize("old, new", [(OFF, BOOTING), (BOOTING, UP), (UP, OFF), (UP, BOOTING), (OFF, UP)],
                         ids=["off-booting", "booting-up", "up-off", "up-booting", "off-up"])
def test_a_power_state_change_is_vm_state_changed(analyser: Analyser, old: dict[str, bool],
                                                  new: dict[str, bool]) -> None:
    before, after = vm(**old), vm(**new)
    events = analyser.analyse(vms((before, after)))
    assert events == [VmStateChanged(AT, "sim", "vm-1", "pool-a", "h1", old=before.power_state,
                                     new=after.power_state)]


def test_a_vm_change_that_is_neither_power_nor_host_is_no_event(analyser: Analyser) -> None:
    assert analyser.analyse(vms((vm(), vm(ip="10.0.0.9", pool="pool-b")))) == []
    # a powered-off VM whose guest flag flips is still off
    assert analyser.analyse(vms((vm(powered_on=False), vm(powered_on=False, guest_ready=True)))) == []


def test_a_removed_vm_is_vm_disappeared_with_its_last_pool_and_host(analyser: Analyser) -> None:
    events = analyser.analyse(vms((vm(host="h7", pool="pool-z"), None)))
    assert events == [VmDisappeared(AT, "sim", "vm-1", "pool-z", "h7")]


def test_a_vm_on_another_host_is_vm_moved(analyser: Analyser) -> None:
    events = analyser.analyse(vms((vm(host="h1"), vm(host="h2"))))
    assert events == [VmMoved(AT, "sim", "vm-1", "pool-a", "h2", old_host="h1")]


def test_a_move_with_a_power_change_gives_both_events(analyser: Analyser) -> None:
    events = analyser.analyse(vms((vm(host="h1", **BOOTING), vm(host="h2", **UP))))
    assert [type(e) for e in events] == [VmStateChanged, VmMoved]


def test_every_vm_of_an_update_is_analysed(analyser: Analyser) -> None:
    events = analyser.analyse(vms((None, vm("a")), (vm("b"), None), (vm("c", **BOOTING), vm("c"))))
    assert [(type(e), e.vm) for e in events] == [(VmCreated, "a"), (VmDisappeared, "b"), (VmStateChanged, "c")]


def test_a_move_onto_the_expected_target_is_migration_done(analyser: Analyser, mono: FakeMonotonic) -> None:
    analyser.expect_migration("vm-1", "h2")
    mono.advance(7.5)
    events = analyser.analyse(vms((vm(host="h1"), vm(host="h2"))))
    assert events == [VmMoved(AT, "sim", "vm-1", "pool-a", "h2", old_host="h1"),
                      MigrationDone(AT, "sim", "vm-1", "pool-a", "h2", seconds=7.5)]
    # the expectation is used up: moving there again is a plain move
    analyser.analyse(vms((vm(host="h2"), vm(host="h1"))))
    assert [type(e) for e in analyser.analyse(vms((vm(host="h1"), vm(host="h2"))))] == [VmMoved]


def test_a_move_elsewhere_is_no_migration_done(analyser: Analyser) -> None:
    analyser.expect_migration("vm-1", "h2")
    events = analyser.analyse(vms((vm(host="h1"), vm(host="h3"))))
    assert events == [VmMoved(AT, "sim", "vm-1", "pool-a", "h3", old_host="h1")]
    # still expected: the VM reaching h2 later completes it
    later = analyser.analyse(vms((vm(host="h3"), vm(host="h2"))))
    assert [type(e) for e in later] == [VmMoved, MigrationDone]


def test_a_migration_of_another_vm_is_not_this_ones(analyser: Analyser) -> None:
    analyser.expect_migration("vm-2", "h2")
    assert [type(e) for e in analyser.analyse(vms((vm(host="h1"), vm(host="h2"))))] == [VmMoved]


def test_a_vm_that_disappears_forgets_its_expected_migration(analyser: Analyser) -> None:
    analyser.expect_migration("vm-1", "h2")
    analyser.analyse(vms((vm(host="h1"), None)))
    analyser.analyse(vms((None, vm(host="h1"))))
    assert [type(e) for e in analyser.analyse(vms((vm(host="h1"), vm(host="h2"))))] == [VmMoved]


def test_the_initial_snapshot_gives_no_vm_events(analyser: Analyser) -> None:
    changes = Changes(vms=[(None, vm("a")), (None, vm("b", **OFF))], hosts=[(None, host("h1")), (None, host("h2"))],
                      full=True)
    assert analyser.analyse(changes, initial=True) == []


# -- hosts: maintenance and utilisation ------------------------------------------------------


def test_a_maintenance_change_is_host_maintenance_changed(analyser: Analyser) -> None:
    assert analyser.analyse(hosts((host(), host(maintenance=True)))) == [
        HostMaintenanceChanged(AT, "sim", "h1", maintenance=True)]
    assert analyser.analyse(hosts((host(maintenance=True), host()))) == [
        HostMaintenanceChanged(AT, "sim", "h1", maintenance=False)]


def test_other_host_changes_are_no_event(analyser: Analyser) -> None:
    assert analyser.analyse(hosts((None, host()))) == []
    assert analyser.analyse(hosts((host(), host(cpu=50, memory=60, vm_count=9)))) == []


def test_over_utilisation_fires_once_per_crossing_with_hysteresis(analyser: Analyser) -> None:
    def step(cpu: float, before: float) -> list[Any]:
        return analyser.analyse(hosts((host(cpu=before), host(cpu=cpu))))

    assert step(50, 10) == []
    assert step(85, 50) == [HostOverUtilized(AT, "sim", "h1", cpu_percent=85.0, memory_percent=10.0)]
    assert step(95, 85) == [], "still above: no repeat"
    assert step(77, 95) == [], "below the limit but within the hysteresis: still over"
    assert step(82, 77) == [], "never dropped far enough: no new crossing"
    assert step(74, 82) == [], "dropping below limit - hysteresis is no event"
    assert step(81, 74) == [HostOverUtilized(AT, "sim", "h1", cpu_percent=81.0, memory_percent=10.0)]


def test_memory_alone_makes_a_host_over_utilised(analyser: Analyser) -> None:
    assert analyser.analyse(hosts((None, host(memory=80.04)))) == [
        HostOverUtilized(AT, "sim", "h1", cpu_percent=10.0, memory_percent=80.0)]


def test_over_utilisation_is_per_host(analyser: Analyser) -> None:
    assert [e.host for e in analyser.analyse(hosts((None, host("h1", cpu=90))))] == ["h1"]
    assert [e.host for e in analyser.analyse(hosts((None, host("h2", cpu=90))))] == ["h2"]


def test_a_host_over_utilised_at_load_is_not_reported_as_a_crossing(analyser: Analyser) -> None:
    assert analyser.analyse(hosts((None, host(cpu=90))), initial=True) == []
    assert analyser.analyse(hosts((host(cpu=90), host(cpu=92)))) == []


# -- hosts: down and up ---------------------------------------------------------------------


def test_an_unresponsive_host_is_down_only_after_the_grace_period(analyser: Analyser, mono: FakeMonotonic) -> None:
    assert analyser.analyse(hosts((host(), host(up=False)))) == []
    mono.advance(59.9)
    assert analyser.due() == []
    assert "h1" not in analyser.down
    mono.advance(0.1)
    (event,) = analyser.due()
    assert isinstance(event, HostDown) and event.host == "h1" and event.provider == "sim" and event.at == AT
    assert "not responding" in event.reason
    assert analyser.down == {"h1"}
    mono.advance(600)
    assert analyser.due() == [], "declared down once"
    assert analyser.analyse(hosts((host(up=False), host(up=False, vm_count=3)))) == []


def test_a_host_that_stops_reporting_is_down_after_the_grace_period(analyser: Analyser,
                                                                    mono: FakeMonotonic) -> None:
    assert analyser.analyse(hosts((host(), None))) == []
    mono.advance(60)
    (event,) = analyser.due()
    assert isinstance(event, HostDown) and event.host == "h1"
    assert "stopped reporting" in event.reason


def test_host_down_also_comes_out_of_the_next_analyse(analyser: Analyser, mono: FakeMonotonic) -> None:
    analyser.analyse(hosts((host(), host(up=False))))
    mono.advance(61)
    events = analyser.analyse(vms((None, vm())))
    assert [type(e) for e in events] == [VmCreated, HostDown]


def test_a_host_back_within_the_grace_period_produces_no_event(analyser: Analyser, mono: FakeMonotonic) -> None:
    assert analyser.analyse(hosts((host(), host(up=False)))) == []
    mono.advance(59)
    assert analyser.analyse(hosts((host(up=False), host()))) == []
    assert analyser.next_due_in() is None
    mono.advance(600)
    assert analyser.due() == [] and analyser.down == set()


def test_a_reported_host_back_within_the_grace_period_produces_no_event(analyser: Analyser,
                                                                         mono: FakeMonotonic) -> None:
    analyser.analyse(hosts((host(), None)))
    mono.advance(30)
    assert analyser.analyse(hosts((None, host()))) == []
    mono.advance(600)
    assert analyser.due() == []


def test_updates_while_unresponsive_do_not_restart_the_grace_period(analyser: Analyser,
                                                                    mono: FakeMonotonic) -> None:
    analyser.analyse(hosts((host(), host(up=False))))
    mono.advance(40)
    assert analyser.analyse(hosts((host(up=False), host(up=False, cpu=20)))) == []
    mono.advance(20)
    assert [type(e) for e in analyser.due()] == [HostDown]


def test_a_flapping_host_starts_a_new_grace_period_each_time(analyser: Analyser, mono: FakeMonotonic) -> None:
    for _ in range(5):
        analyser.analyse(hosts((host(), host(up=False))))
        mono.advance(50)
        analyser.analyse(hosts((host(up=False), host())))
        mono.advance(50)
    assert analyser.due() == [] and analyser.down == set()


def test_host_up_comes_only_after_host_down(analyser: Analyser, mono: FakeMonotonic) -> None:
    assert analyser.analyse(hosts((host(), host(cpu=20)))) == [], "an up host staying up is no HostUp"
    analyser.analyse(hosts((host(), host(up=False))))
    mono.advance(60)
    assert [type(e) for e in analyser.due()] == [HostDown]
    assert analyser.analyse(hosts((host(up=False), host()))) == [HostUp(AT, "sim", "h1")]
    assert analyser.down == set()
    assert analyser.analyse(hosts((host(), host(cpu=30)))) == [], "HostUp once"


def test_a_host_declared_down_after_it_stopped_reporting_is_up_when_reported_again(
        analyser: Analyser, mono: FakeMonotonic) -> None:
    analyser.analyse(hosts((host(), None)))
    mono.advance(60)
    analyser.due()
    assert analyser.analyse(hosts((None, host(up=False)))) == [], "reported but still unresponsive"
    assert analyser.analyse(hosts((host(up=False), host()))) == [HostUp(AT, "sim", "h1")]


def test_next_due_in_counts_down_to_the_earliest_grace_end(analyser: Analyser, mono: FakeMonotonic) -> None:
    assert analyser.next_due_in() is None
    analyser.analyse(hosts((host("h1"), host("h1", up=False))))
    assert analyser.next_due_in() == 60.0
    mono.advance(20)
    assert analyser.next_due_in() == 40.0
    analyser.analyse(hosts((host("h2"), None)))
    assert analyser.next_due_in() == 40.0, "h1's grace ends first"
    mono.advance(50)
    assert analyser.next_due_in() == 0.0, "overdue is 0, not negative"
    assert [e.host for e in analyser.due()] == ["h1"]
    assert analyser.next_due_in() == 10.0
    mono.advance(10)
    assert [e.host for e in analyser.due()] == ["h2"]
    assert analyser.next_due_in() is None


# -- the events themselves -------------------------------------------------------------------


def test_events_turn_into_json_ready_dicts_with_their_kind() -> None:
    event = VmStateChanged(AT, "sim", "vm-1", None, "h1", old=PowerState.BOOTING, new=PowerState.UP)
    assert event.as_dict() == {"type": "vm.state", "at": AT, "provider": "sim", "vm": "vm-1", "pool": None,
                               "host": "h1", "old": "booting", "new": "up"}
    assert HostDown(AT, "sim", "h1", reason="x").as_dict() == {"type": "host.down", "at": AT, "provider": "sim",
                                                                "host": "h1", "reason": "x"}


def test_every_inventory_event_has_its_own_kind() -> None:
    kinds = [cls.kind for cls in INVENTORY_EVENTS]
    assert len(set(kinds)) == len(kinds) and "event" not in kinds
