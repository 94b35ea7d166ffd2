"""The inventory repository: a full snapshot loads and indexes, a delta replaces single records."""

from __future__ import annotations

from typing import Any

from corral.domain.models import HostInfo, ProviderVm
from corral.inventory import Changes, Repository
from corral.providers.base import InventoryUpdate


def vm(name: str, host: str = "h1", pool: str | None = "pool-a", **kw: Any) -> ProviderVm:
    kw.setdefault("id", f"id-{name}")
    return ProviderVm(name=name, host=host, pool=pool, **kw)


def host(name: str, cluster: str = "c1", **kw: Any) -> HostInfo:
    kw.setdefault("id", f"id-{name}")
    return HostInfo(name=name, cpu_model="cpu", cores=8, mhz=2000, memory_mb=16384, cluster=cluster, **kw)


def names(records: list[Any]) -> list[str]:
    return sorted(r.name for r in records)


def loaded() -> Repository:
    """h1, h2 in c1, h3 in c2; a, b on h1 in pool-a, c on h2 in pool-b, d on h3 in no pool."""
    repo = Repository("sim")
    repo.apply(InventoryUpdate(
        version=10, full=True,
        vms=[vm("a"), vm("b"), vm("c", host="h2", pool="pool-b"), vm("d", host="h3", pool=None)],
        hosts=[host("h1"), host("h2"), host("h3", cluster="c2")],
    ))
    return repo


def test_a_new_repository_is_empty_and_not_loaded() -> None:
    repo = Repository("sim")
    assert repo.loaded is False and repo.version is None
    assert repo.vm("a") is None and repo.vm_by_id("id-a") is None and repo.host("h1") is None
    assert repo.vms_on("h1") == [] and repo.vms_in("pool-a") == [] and repo.hosts_in("c1") == []
    assert repo.clusters() == []


def test_a_full_snapshot_loads_and_indexes_every_record() -> None:
    repo = Repository("sim")
    update = InventoryUpdate(
        version=10, full=True,
        vms=[vm("a"), vm("b"), vm("c", host="h2", pool="pool-b"), vm("d", host="h3", pool=None)],
        hosts=[host("h1"), host("h2"), host("h3", cluster="c2")],
    )
    changes = repo.apply(update)
    assert repo.loaded is True and repo.version == 10 and repo.updates == 1
    assert changes.full is True
    assert changes.vms == [(None, v) for v in update.vms]
    assert changes.hosts == [(None, h) for h in update.hosts]
    assert len(changes) == 7
    assert repo.vm("c") is update.vms[2]
    assert repo.vm_by_id("id-c") is update.vms[2]
    assert names(repo.vms_on("h1")) == ["a", "b"] and names(repo.vms_on("h3")) == ["d"]
    assert names(repo.vms_in("pool-a")) == ["a", "b"] and names(repo.vms_in("pool-b")) == ["c"]
    assert repo.host("h2") is update.hosts[1] and repo.host_by_id("id-h3") is update.hosts[2]
    assert names(repo.hosts_in("c1")) == ["h1", "h2"] and names(repo.hosts_in("c2")) == ["h3"]
    assert repo.clusters() == ["c1", "c2"]


def test_a_delta_replaces_exactly_the_changed_vm() -> None:
    repo = loaded()
    before_vms, before_hosts = dict(repo.vms), dict(repo.hosts)
    new_a = vm("a", ip="10.0.0.5", guest_ready=True)
    changes = repo.apply(InventoryUpdate(version=11, vms=[new_a]))
    assert changes.full is False
    assert changes.vms == [(before_vms["a"], new_a)] and changes.hosts == []
    assert repo.vm("a") is new_a and repo.vm_by_id("id-a") is new_a
    for name in ("b", "c", "d"):
        assert repo.vm(name) is before_vms[name]
    for name in before_hosts:
        assert repo.host(name) is before_hosts[name]
    assert names(repo.vms_on("h1")) == ["a", "b"] and names(repo.vms_in("pool-a")) == ["a", "b"]
    assert repo.version == 11 and repo.updates == 2


def test_a_vm_that_changes_host_moves_between_host_indexes() -> None:
    repo = loaded()
    old_b = repo.vm("b")
    moved = vm("b", host="h2")
    changes = repo.apply(InventoryUpdate(version=11, vms=[moved]))
    assert changes.vms == [(old_b, moved)]
    assert names(repo.vms_on("h1")) == ["a"]
    assert names(repo.vms_on("h2")) == ["b", "c"]
    assert names(repo.vms_in("pool-a")) == ["a", "b"], "the pool did not change"


def test_a_vm_that_changes_pool_moves_between_pool_indexes() -> None:
    repo = loaded()
    repo.apply(InventoryUpdate(version=11, vms=[vm("c", host="h2", pool="pool-a")]))
    assert names(repo.vms_in("pool-a")) == ["a", "b", "c"] and repo.vms_in("pool-b") == []
    repo.apply(InventoryUpdate(version=12, vms=[vm("c", host="h2", pool=None)]))
    assert names(repo.vms_in("pool-a")) == ["a", "b"]
    assert repo.vm("c").pool is None and names(repo.vms_on("h2")) == ["c"]


def test_the_last_vm_leaving_a_host_or_pool_leaves_no_empty_index_entry() -> None:
    repo = loaded()
    repo.apply(InventoryUpdate(version=11, vms=[vm("c", host="h1", pool="pool-a")]))
    assert repo.vms_on("h2") == [] and repo.vms_in("pool-b") == []
    assert "h2" not in repo.hosts_with_vms() and "pool-b" not in repo.pools_with_vms()
    assert repo.hosts_with_vms() == ["h1", "h3"] and repo.pools_with_vms() == ["pool-a"]


def test_a_record_equal_to_the_current_one_is_no_change() -> None:
    repo = loaded()
    old_a, old_h1 = repo.vm("a"), repo.host("h1")
    changes = repo.apply(InventoryUpdate(version=11, vms=[vm("a")], hosts=[host("h1")]))
    assert len(changes) == 0 and changes.vms == [] and changes.hosts == []
    assert repo.vm("a") is old_a and repo.host("h1") is old_h1, "the stored record is kept"
    assert repo.version == 11, "the version moves on all the same"


def test_a_new_vm_in_a_delta_is_added_to_every_index() -> None:
    repo = loaded()
    new = vm("e", host="h3", pool="pool-b")
    changes = repo.apply(InventoryUpdate(version=11, vms=[new]))
    assert changes.vms == [(None, new)]
    assert repo.vm("e") is new and repo.vm_by_id("id-e") is new
    assert names(repo.vms_on("h3")) == ["d", "e"] and names(repo.vms_in("pool-b")) == ["c", "e"]


def test_removed_vms_and_hosts_leave_every_index() -> None:
    repo = loaded()
    old_a, old_h3 = repo.vm("a"), repo.host("h3")
    changes = repo.apply(InventoryUpdate(version=11, removed_vms=["a"], removed_hosts=["h3"]))
    assert changes.vms == [(old_a, None)] and changes.hosts == [(old_h3, None)]
    assert repo.vm("a") is None and repo.vm_by_id("id-a") is None
    assert names(repo.vms_on("h1")) == ["b"] and names(repo.vms_in("pool-a")) == ["b"]
    assert repo.host("h3") is None and repo.host_by_id("id-h3") is None
    assert repo.hosts_in("c2") == [] and repo.clusters() == ["c1"]


def test_removing_an_unknown_record_changes_nothing() -> None:
    repo = loaded()
    changes = repo.apply(InventoryUpdate(version=11, removed_vms=["nope"], removed_hosts=["nope"]))
    assert len(changes) == 0 and len(repo.vms) == 4 and len(repo.hosts) == 3


def test_a_host_that_changes_cluster_moves_between_cluster_indexes() -> None:
    repo = loaded()
    old_h2 = repo.host("h2")
    moved = host("h2", cluster="c2")
    changes = repo.apply(InventoryUpdate(version=11, hosts=[moved]))
    assert changes.hosts == [(old_h2, moved)] and changes.vms == []
    assert names(repo.hosts_in("c1")) == ["h1"] and names(repo.hosts_in("c2")) == ["h2", "h3"]
    assert repo.host("h1") is not None and repo.host_by_id("id-h2") is moved


def test_a_vm_whose_id_changes_is_found_by_the_new_id_only() -> None:
    repo = loaded()
    repo.apply(InventoryUpdate(version=11, vms=[vm("a", id="id-a2")]))
    assert repo.vm_by_id("id-a") is None and repo.vm_by_id("id-a2") is repo.vm("a")


def test_an_id_handed_over_to_another_vm_points_to_its_new_owner() -> None:
    repo = loaded()
    # b takes a's id and a gets a new one, in one update (b listed first)
    changes = repo.apply(InventoryUpdate(version=11, vms=[vm("b", id="id-a"), vm("a", id="id-a2")]))
    assert len(changes) == 2
    assert repo.vm_by_id("id-a2") is repo.vm("a")
    assert repo.vm_by_id("id-a") is repo.vm("b")


def test_a_second_full_snapshot_is_diffed_against_the_first() -> None:
    repo = loaded()
    old = dict(repo.vms)
    old_h3 = repo.host("h3")
    b_moved, e_new = vm("b", host="h2"), vm("e", host="h2")
    h1_busier = host("h1", vm_count=5)
    changes = repo.apply(InventoryUpdate(
        version=20, full=True,
        vms=[vm("a"), b_moved, vm("c", host="h2", pool="pool-b"), e_new],  # d is gone
        hosts=[h1_busier, host("h2")],  # h3 is gone
    ))
    assert changes.full is True
    assert sorted(changes.vms, key=lambda p: (p[0] or p[1]).name) == [
        (old["b"], b_moved), (old["d"], None), (None, e_new)]
    assert sorted(changes.hosts, key=lambda p: (p[0] or p[1]).name) == [
        (host("h1"), h1_busier), (old_h3, None)]
    assert repo.vm("a") is old["a"] and repo.vm("c") is old["c"], "unchanged records are kept as they are"
    assert repo.vm("d") is None and repo.vm_by_id("id-d") is None
    assert names(repo.vms_on("h2")) == ["b", "c", "e"] and names(repo.vms_on("h1")) == ["a"]
    assert repo.host("h3") is None and repo.clusters() == ["c1"]
    assert repo.version == 20


def test_an_identical_full_snapshot_changes_nothing() -> None:
    repo = loaded()
    changes = repo.apply(InventoryUpdate(
        version=20, full=True,
        vms=[vm("a"), vm("b"), vm("c", host="h2", pool="pool-b"), vm("d", host="h3", pool=None)],
        hosts=[host("h1"), host("h2"), host("h3", cluster="c2")],
    ))
    assert changes == Changes(full=True) and len(changes) == 0


def test_an_empty_full_snapshot_removes_everything() -> None:
    repo = loaded()
    changes = repo.apply(InventoryUpdate(version=20, full=True))
    assert len(changes.vms) == 4 and all(new is None for _, new in changes.vms)
    assert len(changes.hosts) == 3 and all(new is None for _, new in changes.hosts)
    assert repo.vms == {} and repo.hosts == {} and repo.clusters() == [] and repo.vms_on("h1") == []
