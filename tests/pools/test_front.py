"""The pool service of a process that only answers the API (``owners`` set), beside the pool
service that runs the pools (``look_at``), on one store: what each does with each request."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import pytest
import pytest_asyncio

from corral.domain.models import OndemandRequest, Pool, RequestedPool
from corral.domain.states import VmState
from corral.pools.service import Elsewhere, PoolService, SetSize, Setting, Short, Taken
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.store.sqlite import SqliteStore
from helpers import QUICK_RUNNER, eventually, sim_settings

SETTINGS = ManagerSettings(task_limit=10, check_interval=30, feed_timeout=1.0, runner=QUICK_RUNNER)  # no sweep


class Owners:
    def __init__(self) -> None:
        self.woken: list[str] = []

    def wake(self, pools: Iterable[str]) -> None:
        self.woken.extend(sorted(set(pools)))


class Pair:
    def __init__(self, front: PoolService, owner: PoolService, owners: Owners, store: SqliteStore) -> None:
        self.front, self.owner, self.owners, self.store = front, owner, owners, store

    def states(self, pool: str) -> dict[VmState, int]:
        return self.store.counts().get(pool, {})


@pytest_asyncio.fixture
async def pair(tmp_path: Path) -> AsyncIterator[Pair]:
    pools = [Pool(name="a", template="t/a", size=2, provider="sim"), Pool(name="b", template="t/b", size=1,
                                                                          provider="sim")]
    store = SqliteStore(tmp_path / "corral.db")
    owners = Owners()
    provider = SimProvider("sim", sim_settings())
    owner = PoolService(pools, {"sim": provider}, store, SETTINGS)
    front = PoolService(pools, {"sim": SimProvider("sim", sim_settings())}, store, SETTINGS, owners=owners)
    await owner.start()
    await front.start()
    p = Pair(front, owner, owners, store)
    await eventually(lambda: p.states("a").get(VmState.READY) == 2 and p.states("b").get(VmState.READY) == 1)
    yield p
    await front.stop()
    await owner.stop()
    store.close()


async def test_a_checkout_is_refilled_by_the_owner_when_it_looks(pair: Pair) -> None:
    result = pair.front.checkout({"a": 1, "b": 1})
    assert isinstance(result, Taken)
    assert isinstance(pair.front.checkout({"b": 1}), Short)
    assert pair.owners.woken == []  # a change of stock is announced by the store (RedisStore.waking)
    for pool in ("a", "b"):
        pair.owner.look_at(pool)
    await eventually(lambda: pair.states("a").get(VmState.READY) == 2 and pair.states("b").get(VmState.READY) == 1)


async def test_a_return_is_recorded_here_and_destroyed_by_the_owner(pair: Pair) -> None:
    result = pair.front.checkout({"a": 1})
    assert isinstance(result, Taken)
    [(_, vm)] = result.vms
    assert pair.front.return_vm(vm.name)
    assert pair.store.get_vm(vm.name).state is VmState.COMPLETED  # the front destroys nothing
    assert not pair.front.return_vm(vm.name)
    assert not pair.front.retry_destroy(vm.name)
    pair.owner.look_at("a")
    await eventually(lambda: pair.store.get_vm(vm.name).state is VmState.DESTROYED)


async def test_a_setting_is_stored_here_and_taken_in_by_the_owner(pair: Pair) -> None:
    assert pair.front.change([SetSize("b", 3)]) == 1
    assert pair.front.pool("b").size == 3 and pair.owners.woken == ["b"]
    assert pair.owner.pool("b").size == 1  # until it looks
    pair.owner.look_at("b")  # a wake about stock: the settings are not read
    assert pair.owner.pool("b").size == 1
    pair.owner.look_at("b", settings=True)
    assert pair.owner.pool("b").size == 3
    await eventually(lambda: pair.states("b").get(VmState.READY) == 3)
    pair.front.reset_setting("b", Setting.SIZE)
    pair.owner.look_at("b", settings=True)
    assert pair.front.pool("b").size == 1 and pair.owner.pool("b").size == 1


@pytest.mark.parametrize("ask", [
    lambda s, vm: s.snapshot(vm),
    lambda s, vm: s.revert(vm, "x"),
    lambda s, vm: s.add_disk(vm, 10),
    lambda s, vm: s.reset_pool("a"),
    lambda s, vm: s.submit(OndemandRequest(id="r1", requested=[RequestedPool("a", "a", 1)], created_at=1.0)),
    lambda s, vm: s.delete_request("r1"),
])
async def test_what_needs_the_provider_is_refused_with_a_reason(pair: Pair, ask) -> None:  # type: ignore[no-untyped-def]
    vm = pair.store.list_vms(pool="a", states=[VmState.READY])[0].name
    with pytest.raises(Elsewhere, match="several processes sharing Redis"):
        ask(pair.front, vm)
    assert pair.states("a").get(VmState.READY) == 2  # nothing happened


async def test_the_owner_ignores_a_wake_for_a_pool_it_does_not_run(pair: Pair) -> None:
    pair.owner.look_at("nonesuch")
    pair.front.look_at("a")  # the front runs no pool
    assert pair.states("a").get(VmState.READY) == 2


async def test_two_api_processes_see_each_others_settings(pair: Pair, tmp_path: Path) -> None:
    """A change made through one API process is what another shows and compares against: setting
    a size back through the other is a change, not a no-op against its stale copy."""
    other = PoolService(list(pair.front.configured.values()), {"sim": SimProvider("sim", sim_settings())},
                        pair.store, SETTINGS, owners=Owners())
    await other.start()
    try:
        assert pair.front.change([SetSize("b", 3)]) == 1
        assert other.pool("b").size == 1 and other.pools["b"].size == 3  # reading the pools takes it in
        assert other.change([SetSize("b", 1)]) == 1
        assert pair.store.pool_overrides()["b"]["size"] == 1
        assert {s.name: s.size for s in pair.front.stock().pools}["b"] == 1
    finally:
        await other.stop()
