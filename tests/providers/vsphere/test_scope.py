"""Several providers on one vCenter: each reports only its own VMs, and all of them every host."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pyVmomi import vim

from corral.bench.vcsim import Vcsim
from corral.domain.models import VmSpec
from corral.providers.vsphere.cache import ObjectCache
from corral.providers.vsphere.scope import Scope, owns
from corral.providers.vsphere.settings import VspherePool

from ..contract import FeedReader
from .conftest import TEMPLATE, make_provider, pool
from .test_index import DC, OTHER, POOLED, ROOT, VM, update

SCOPE = Scope.of([VspherePool("a", "t", folder="Team A/a"), VspherePool("b", "t", folder="/Team A/b/"),
                  VspherePool("c", "t")])
NO_ROOT = Scope.of([VspherePool("a", "t", folder="Team A/a")])

# (scope, folder, pool the annotation names, cloned here, owned)
OWNS_TABLE: list[tuple[Scope, str | None, str | None, bool, bool]] = [
    (SCOPE, "Team A/a", None, False, True),  # a pool's folder
    (SCOPE, "Team A/b", None, False, True),  # slashes around a configured folder do not matter
    (SCOPE, "Team A/a/sub/deeper", None, False, True),  # below a pool's folder
    (SCOPE, "Team A", None, False, False),  # above it
    (SCOPE, "Team A/ab", None, False, False),  # a sibling whose name starts alike
    (SCOPE, "Team B/a", None, False, False),  # another team's folder
    (SCOPE, "", None, False, True),  # the VM folder itself: pool c has no folder
    (NO_ROOT, "", None, False, False),  # ... and without such a pool it is not ours
    (NO_ROOT, None, None, False, False),  # in no folder at all
    (NO_ROOT, "Team B/x", "a", False, True),  # moved away, but annotated with one of our pools
    (NO_ROOT, "Team B/x", "z", False, False),  # annotated with someone else's pool
    (NO_ROOT, "Team B/x", None, True, True),  # cloned by this provider
    (NO_ROOT, None, None, True, True),
]


@pytest.mark.parametrize(("scope", "folder", "noted", "cloned", "expected"), OWNS_TABLE)
def test_which_vms_are_the_providers(scope: Scope, folder: str | None, noted: str | None, cloned: bool,
                                     expected: bool) -> None:
    assert owns(scope, folder, noted, cloned) is expected


def scoped(scope: Scope) -> ObjectCache:
    cache = ObjectCache(lambda _path: None, scope=scope)
    for u in [update("enter", DC, name="DC0", vmFolder=ROOT), update("enter", ROOT, name="vm", parent=DC),
              update("enter", POOLED, name="Pooled", parent=ROOT), update("enter", OTHER, name="Other", parent=ROOT)]:
        cache.apply(u, set())
    return cache


def touched_by(cache: ObjectCache, u: Any) -> set[tuple[str, str]]:
    touched: set[tuple[str, str]] = set()
    cache.apply(u, touched)
    return {t for t in touched if t[0] == "vm"}


def test_only_the_providers_vms_are_touched_and_a_folder_rename_moves_them_in_or_out() -> None:
    cache = scoped(Scope.of([VspherePool("p", "t", folder="Pooled")]))
    assert touched_by(cache, update("enter", VM, name="mine", parent=POOLED, config_template=False)) == \
        {("vm", "mine")}
    theirs = vim.VirtualMachine("vm-9")
    assert touched_by(cache, update("enter", theirs, name="theirs", parent=OTHER, config_template=False)) == set()
    assert [vm.name for vm in cache.vms()] == ["mine"] and cache.vm("theirs") is None
    assert cache.vm_obj("theirs") is not None  # still known: names clash across providers

    # someone renames the folders: "Other" becomes the pool's folder, "Pooled" is not one any more
    assert touched_by(cache, update("modify", POOLED, name="Old")) == {("vm", "mine")}
    assert cache.vms() == []
    assert touched_by(cache, update("modify", OTHER, name="Pooled")) == {("vm", "theirs")}
    assert [vm.name for vm in cache.vms()] == ["theirs"]
    # a VM moved out of scope is touched (its readers hear it is gone); one moved in, likewise
    assert touched_by(cache, update("modify", theirs, parent=POOLED)) == {("vm", "theirs")}
    assert cache.vms() == []


async def test_two_providers_on_one_vcenter_see_only_their_own_vms(vcsim: Vcsim) -> None:
    team_a = make_provider(vcsim, pools={"a": pool("a", folder="Team A/a")}, create_folders=True)
    team_b = make_provider(vcsim, pools={"b": pool("b", folder="Team B/b")}, create_folders=True)
    await team_a.connect()
    await team_b.connect()
    try:
        reader_a, reader_b = FeedReader(team_a), FeedReader(team_b)
        await reader_a.read()
        await reader_b.read()
        mine = {"a": {"a1", "a2", "a3"}, "b": {"b1", "b2"}}
        results = await asyncio.gather(
            team_a.create_vms("DC0_C0_H0", [VmSpec(name=n, pool="a", template=TEMPLATE) for n in sorted(mine["a"])]),
            team_b.create_vms("DC0_C0_H0", [VmSpec(name=n, pool="b", template=TEMPLATE) for n in sorted(mine["b"])]))
        assert all(r.ok for batch in results for r in batch), results
        for provider, reader, pool_name in ((team_a, reader_a, "a"), (team_b, reader_b, "b")):
            assert {vm.name for vm in await provider.list_vms()} == mine[pool_name]
            await reader.until(lambda f, p=pool_name: set(f.vms) == mine[p], 10)  # type: ignore[misc]
            await asyncio.sleep(0.3)  # whatever else the feed has to say
            await reader.read()
            seen = set().union(*({vm.name for vm in u.vms} | set(u.removed_vms) for u in reader.updates))
            assert seen == mine[pool_name], seen  # deltas too: never a word of the other team's VMs
            assert {vm.pool for vm in reader.vms.values()} == {pool_name}
        # hosts are shared, and their sums count every VM on them, whoever owns it
        hosts_a, hosts_b = await team_a.list_hosts(), await team_b.list_hosts()
        assert {h.name for h in hosts_a} == {h.name for h in hosts_b} == set(vcsim.hosts())
        load_a = {h.name: (h.vm_count, h.memory_allocated_mb) for h in hosts_a}
        assert load_a == {h.name: (h.vm_count, h.memory_allocated_mb) for h in hosts_b}
        assert sum(count for count, _ in load_a.values()) == 5
        assert reader_a.hosts["DC0_C0_H0"].vm_count == reader_b.hosts["DC0_C0_H0"].vm_count == 5
    finally:
        await team_a.close()
        await team_b.close()
