"""The pool service as a whole: started, stopped and started again on the same store and
provider, it loses no VM and hands none out twice."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from corral.domain.models import Pool
from corral.domain.states import LIVE_STATES, VmState
from corral.pools.service import PoolService, SetSize, Short, SubscriptionClosed, Taken
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider
from corral.store.sqlite import SqliteStore
from helpers import QUICK_RUNNER, eventually, ready_counts, sim_settings

SETTINGS = ManagerSettings(task_limit=10, check_interval=0.05, feed_timeout=1.0, runner=QUICK_RUNNER)


def make_service(tmp_path: Path, provider: SimProvider) -> tuple[PoolService, SqliteStore]:
    store = SqliteStore(tmp_path / "corral.db")
    pools = [Pool(name="a", template="t/a", size=3, provider="sim"),
             Pool(name="b", template="t/b", size=2, provider="sim", alias=("any",))]
    return PoolService(pools, {"sim": provider}, store, SETTINGS), store


async def full(service: PoolService, store: SqliteStore) -> None:
    want = {name: p.size for name, p in service.pools.items()}
    await eventually(lambda: all(ready_counts(store).get(n, 0) == s
                                 and store.counts().get(n, {}).get(VmState.PENDING, 0) == 0 for n, s in want.items()))


async def live_at_provider(provider: SimProvider) -> set[str]:
    """The simulator's VMs (its session is opened for the look, as a stopped service closed it)."""
    await provider.connect()
    try:
        return {v.name for v in await provider.list_vms()}
    finally:
        await provider.close()


def live_in_store(store: SqliteStore) -> set[str]:
    return {v.name for v in store.list_vms(states=LIVE_STATES)}


async def test_start_stop_start_again_keeps_every_vm(tmp_path: Path) -> None:
    provider = SimProvider("sim", sim_settings())
    service, store = make_service(tmp_path, provider)
    assert not service.running
    await service.start()
    await service.start()  # already running: nothing happens
    assert service.running
    first_manager = service.manager
    await full(service, store)

    taken = service.checkout({"a": 1, "any": 1}, token=None, user="u")
    assert isinstance(taken, Taken)
    handed = {vm.name for _, vm in taken.vms}
    assert [label for label, _ in taken.vms] == ["a", "any"]

    await service.stop()
    await service.stop()  # already stopped: nothing happens
    assert not service.running
    assert await live_at_provider(provider) == live_in_store(store)  # nothing lost or leaked by the stop

    await service.start()
    assert service.running and service.manager is not first_manager
    await full(service, store)
    for name in handed:  # still checked out after the restart
        vm = store.get_vm(name)
        assert vm is not None and vm.state is VmState.RUNNING
    again = service.checkout({"a": 3, "b": 2}, token=None, user="u")
    assert isinstance(again, Taken)
    names = [vm.name for _, vm in again.vms]
    assert len(set(names)) == 5 and not set(names) & handed  # none handed out twice
    assert isinstance(service.checkout({"a": 1, "b": 3}, token=None, user="u"), Short | Taken)

    await service.stop()
    assert await live_at_provider(provider) == live_in_store(store)
    service.close()


async def test_settings_changed_before_a_restart_hold_after_it(tmp_path: Path) -> None:
    provider = SimProvider("sim", sim_settings())
    service, store = make_service(tmp_path, provider)
    await service.start()
    await full(service, store)
    assert service.change([SetSize("a", 1), SetSize("b", 2)]) == 1
    await service.stop()
    await service.start()
    assert service.pools["a"].size == 1
    await full(service, store)
    stock = {p.name: p for p in service.stock().pools}
    assert (stock["a"].ready, stock["a"].size, stock["b"].alias) == (1, 1, ("any",))
    monitoring = service.monitoring()
    assert monitoring.providers["sim"].connected
    await service.stop()
    service.close()


async def test_the_event_stream_follows_the_running_manager(tmp_path: Path) -> None:
    provider = SimProvider("sim", sim_settings())
    service, store = make_service(tmp_path, provider)
    await service.start()
    await full(service, store)
    old = service.stream("before")
    await asyncio.gather(service.stop(), service.stop())  # one stop at a time: the second finds it stopped
    with pytest.raises(SubscriptionClosed):  # a stream of the last run ends with it
        while True:
            await old.get()
    await asyncio.gather(service.start(), service.start())
    assert service.running
    sub = service.stream("test")
    taken = service.checkout({"a": 1}, token=None, user=None)
    assert isinstance(taken, Taken)
    seq, event = await sub.get()
    assert seq > 0 and getattr(event, "vm", None) is not None
    sub.close()
    await service.stop()
    service.close()
