"""Reloading the configuration of a running corral: each kind of change, a refused file, and a
reload in the middle of a fill (real pool service, simulator, sqlite)."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from corral.auth import LoginGuard
from corral.auth.passwords import hash_password
from corral.config import ConfigError, load_config
from corral.domain.states import LIVE_STATES, VmState
from corral.providers.base import ProviderError
from corral.runtime import Service, build_service
from helpers import eventually, quick_config

HASH = hash_password("pw-Secret-1", iterations=1000)


class Running:
    """A corral service started from a file under ``tmp_path``; ``edit`` rewrites the file."""

    def __init__(self, tmp_path: Path, document: dict[str, Any]) -> None:
        self.path = tmp_path / "corral.yaml"
        self.document = document
        self.write()
        config, _ = load_config(self.path)
        self.service: Service = build_service(config, path=self.path)

    def write(self) -> None:
        self.path.write_text(yaml.safe_dump(self.document), encoding="utf-8")

    def edit(self, change: Callable[[dict[str, Any]], None]) -> None:
        change(self.document)
        self.write()

    def pool(self, name: str) -> dict[str, Any]:
        return next(p for p in self.document[":pools"] if p["name"] == name)

    @property
    def store(self) -> Any:
        return self.service.pools.store

    def count(self, pool: str, state: VmState) -> int:
        return self.store.counts().get(pool, {}).get(state, 0)

    async def settled(self, sizes: dict[str, int], timeout: float = 15.0) -> None:
        """Every pool has exactly its size ready, nothing pending, and the provider holds exactly
        the VMs the store has live (none leaked, none lost)."""

        def counts() -> list[tuple[int, int]]:
            return [(self.count(pool, VmState.READY), self.count(pool, VmState.PENDING)) for pool in sizes]

        wanted = [(size, 0) for size in sizes.values()]
        deadline = asyncio.get_running_loop().time() + timeout
        while not (counts() == wanted and await self.provider_matches_store()):
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"not settled at {wanted}: {counts()}")
            await asyncio.sleep(0.02)

    async def provider_matches_store(self) -> bool:
        at_provider: set[str] = set()
        for provider in self.service.pools.providers.values():
            try:
                at_provider |= {v.name for v in await provider.list_vms()}
            except ProviderError:  # a new session still connecting
                return False
        live = {v.name for v in self.store.list_vms(states=LIVE_STATES)}
        return at_provider == live


def document(tmp_path: Path, pools: list[dict[str, Any]] | None = None, **config: Any) -> dict[str, Any]:
    return quick_config(tmp_path, pools if pools is not None else [
        {"name": "a", "template": "t-a", "size": 2, "provider": "sim"},
        {"name": "b", "template": "t-b", "size": 2, "provider": "sim"},
    ], **config)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[Running]:
    run = Running(tmp_path, document(tmp_path))
    await run.service.start()
    await run.settled({"a": 2, "b": 2})
    yield run
    await run.service.stop()


async def test_sizes_apply_at_once(running: Running) -> None:
    running.edit(lambda d: (running.pool("a").update(size=4), running.pool("b").update(size=1)))
    answer = await running.service.reload()
    assert answer.diff.pools_changed == {"a": ("size",), "b": ("size",)}
    await running.settled({"a": 4, "b": 1})


async def test_a_pool_added_fills_and_a_pool_removed_drains(running: Running) -> None:
    taken = running.service.pools.checkout({"b": 1})
    assert not hasattr(taken, "short")
    held = taken.vms[0][1].name  # type: ignore[union-attr]
    running.edit(lambda d: (d[":pools"].pop(1), d[":pools"].append({"name": "c", "template": "t-c", "size": 3})))
    answer = await running.service.reload()
    assert (answer.diff.pools_added, answer.diff.pools_removed) == (("c",), ("b",))
    await running.settled({"a": 2, "c": 3, "b": 0})
    assert "b" not in running.service.pools.pools
    vm = running.store.get_vm(held)
    assert vm.state is VmState.RUNNING and vm.lifetime_s == 24 * 3600.0  # a checked-out VM keeps its lifetime
    assert running.service.pools.return_vm(held)
    await eventually(lambda: running.store.get_vm(held).state is VmState.DESTROYED)
    assert running.count("b", VmState.READY) == 0  # a returned VM of a removed pool is not replaced


async def test_a_template_change_replaces_the_stock(running: Running) -> None:
    before = {v.name for v in running.store.list_vms(pool="a", states=(VmState.READY,))}
    running.edit(lambda d: running.pool("a").update(template="t-a2"))
    answer = await running.service.reload()
    assert answer.diff.pools_changed == {"a": ("template",)}

    def replaced() -> bool:
        ready = running.store.list_vms(pool="a", states=(VmState.READY,))
        return len(ready) == 2 and all(v.template == "t-a2" and v.name not in before for v in ready)

    await eventually(replaced, 15)
    await running.settled({"a": 2, "b": 2})


async def test_a_clone_target_applies_to_new_vms(running: Running) -> None:
    running.edit(lambda d: running.pool("a").update(clone_target="sim-cluster-01"))
    answer = await running.service.reload()
    assert answer.diff.pools_changed == {"a": ("clone_target",)}
    assert running.service.pools.pools["a"].clone_target == "sim-cluster-01"


async def test_a_size_set_at_the_api_keeps_its_override(running: Running) -> None:
    from corral.pools.service import SetSize

    running.service.pools.change([SetSize("a", 3)])
    running.edit(lambda d: (running.pool("a").update(size=5), running.pool("b").update(size=3)))
    await running.service.reload()
    assert running.service.pools.pools["a"].size == 3
    await running.settled({"a": 3, "b": 3})


async def test_scheduling_policy_and_auth_are_swapped(running: Running) -> None:
    assert running.service.authenticator is None
    running.edit(lambda d: d.update({":scheduling": {"policy": "pack"},
                                     ":auth": {"provider": "static", "users": {"alice": HASH}}}))
    answer = await running.service.reload()
    assert answer.diff.scheduling == ("policy",) and answer.diff.auth
    placer = running.service.pools.manager.placer
    assert placer.settings.policy == "pack"
    assert all(s.settings.policy == "pack" for s in placer.schedulers.values())
    assert isinstance(running.service.authenticator, LoginGuard)
    assert await running.service.authenticator.login("alice", "pw-Secret-1", None)
    running.edit(lambda d: d.pop(":auth"))
    await running.service.reload()
    assert running.service.authenticator is None


async def test_a_changed_provider_is_reconnected_alone(tmp_path: Path) -> None:
    doc = document(tmp_path, [{"name": "a", "template": "t-a", "size": 2, "provider": "sim"},
                              {"name": "z", "template": "t-z", "size": 2, "provider": "other"}])
    doc[":providers"][":other"] = copy.deepcopy(doc[":providers"][":sim"])
    run = Running(tmp_path, doc)
    await run.service.start()
    try:
        await run.settled({"a": 2, "z": 2})
        sim, other = run.service.pools.providers["sim"], run.service.pools.providers["other"]
        a_vms = {v.name for v in run.store.list_vms(pool="a", states=(VmState.READY,))}
        run.edit(lambda d: d[":providers"][":other"].update(hosts=3))
        answer = await run.service.reload()
        assert answer.diff.providers_changed == {"other": ("hosts",)}
        assert run.service.pools.providers["sim"] is sim  # untouched
        assert run.service.pools.providers["other"] is not other  # a new session
        assert run.service.pools.manager.providers["other"] is run.service.pools.providers["other"]
        await run.settled({"a": 2, "z": 2})
        assert {v.name for v in run.store.list_vms(pool="a", states=(VmState.READY,))} == a_vms
        assert len(await run.service.pools.providers["other"].list_hosts()) == 3
    finally:
        await run.service.stop()


async def test_a_pool_on_a_new_provider_fills(running: Running) -> None:
    running.edit(lambda d: (d[":providers"].update({":more": copy.deepcopy(d[":providers"][":sim"])}),
                            d[":pools"].append({"name": "m", "template": "t-m", "size": 2, "provider": "more"})))
    answer = await running.service.reload()
    assert answer.diff.providers_added == ("more",)
    await running.settled({"a": 2, "b": 2, "m": 2})


async def test_an_invalid_file_is_refused_whole(running: Running) -> None:
    config = running.service.config
    running.edit(lambda d: (running.pool("a").update(size=-1), running.pool("b").update(provider="nowhere"),
                            d[":pools"].append({"name": "c", "template": "t-c", "size": 3})))
    with pytest.raises(ConfigError) as err:
        await running.service.reload()
    problems = "\n".join(err.value.problems)
    assert "pools[0].size" in problems and "nowhere" in problems
    assert len(err.value.problems) >= 2
    assert running.service.config is config
    assert set(running.service.pools.pools) == {"a", "b"}
    assert running.service.pools.pools["a"].size == 2
    await running.settled({"a": 2, "b": 2})


async def test_reload_during_a_fill(tmp_path: Path) -> None:
    doc = document(tmp_path, [{"name": "a", "template": "t-a", "size": 30}, {"name": "b", "template": "t-b",
                                                                              "size": 30}])
    doc[":providers"][":sim"]["latency"] = {"create_call": 5.0, "create_per_vm": 20.0, "boot": 50.0,
                                             "destroy": 1.0, "migrate": 1.0}
    doc[":providers"][":sim"]["hosts"] = 8
    run = Running(tmp_path, doc)
    await run.service.start()
    try:
        await eventually(lambda: 0 < run.count("a", VmState.READY) + run.count("a", VmState.PENDING))
        assert run.count("a", VmState.READY) < 30  # mid-fill
        run.edit(lambda d: (run.pool("a").update(size=5), d[":pools"].pop(1),
                            d[":pools"].append({"name": "c", "template": "t-c", "size": 12})))
        await run.service.reload()
        await run.settled({"a": 5, "b": 0, "c": 12}, timeout=30)
    finally:
        await run.service.stop()


async def test_a_file_that_cannot_be_read_is_refused(running: Running) -> None:
    running.path.unlink()
    with pytest.raises(ConfigError) as err:
        await running.service.reload()
    assert "cannot read" in err.value.problems[0]


async def test_what_needs_a_restart_is_named(running: Running) -> None:
    running.edit(lambda d: (d[":config"].update(task_limit=3), d.update({":runner": {"batch_size": 7}})))
    answer = await running.service.reload()
    assert answer.diff.restart == ("runner", "config.task_limit")
    assert answer.as_dict()["restart_needed"] == ["runner", "config.task_limit"]


VSPHERE = {"provider_class": "vsphere", "server": "vc.example", "username": "u", "password": "p"}


@pytest.mark.parametrize(("change", "rebuilt"), [
    (lambda d: d[":pools"].append({"name": "c", "template": "t", "size": 1, "provider": "sim"}), []),
    (lambda d: d[":pools"].append({"name": "w", "template": "t", "size": 1, "provider": "vs"}), ["vs"]),
    (lambda d: d[":pools"].pop(2), []),
    (lambda d: d[":pools"][2].update(datastore="ds2"), ["vs"]),
    (lambda d: d[":pools"][2].update(folder="f2"), ["vs"]),
    (lambda d: d[":pools"][2].update(size=4), []),
    (lambda d: d[":pools"][2].update(template="t2"), []),
    (lambda d: d[":pools"][0].update(size=9), []),
    (lambda d: d[":providers"][":vs"].update(server="vc2.example"), ["vs"]),
    (lambda d: d[":providers"][":sim"].update(hosts=2), ["sim"]),
], ids=["sim pool added", "vSphere pool added", "vSphere pool removed", "datastore", "folder", "vSphere size",
        "vSphere template", "sim size", "vCenter address", "sim settings"])
def test_which_providers_a_reload_rebuilds(tmp_path: Path, change: Callable[[dict[str, Any]], None],
                                           rebuilt: list[str]) -> None:
    from corral.config import parse_config
    from corral.config.settings import provider_context
    from corral.runtime import reconnected

    doc = document(tmp_path)
    doc[":providers"][":vs"] = dict(VSPHERE)
    doc[":pools"].append({"name": "v", "template": "t-v", "size": 1, "provider": "vs", "folder": "f"})
    old, _ = parse_config(copy.deepcopy(doc))
    change(doc)
    new, _ = parse_config(doc)
    built, names = reconnected(old, new)
    assert names == rebuilt
    seen = {p["name"] for p in provider_context(built, "vs").pools}
    assert "v" in seen  # a pool removed drains: the provider still sees its VMs as its own


async def test_autosizing_keys_apply_at_once(running: Running) -> None:
    # a fixed pool becomes autosized: its size is held within the new bounds (no demand: min_size)
    running.edit(lambda d: running.pool("a").update(min_size=3, max_size=6, scale_down_after=0))
    answer = await running.service.reload()
    assert set(answer.diff.pools_changed["a"]) >= {"min_size", "max_size"}
    await running.settled({"a": 3, "b": 2})
    # its bounds change: the size follows
    running.edit(lambda d: running.pool("a").update(min_size=1, max_size=1))
    await running.service.reload()
    await running.settled({"a": 1, "b": 2})
    # autosizing off again: the fixed size rules
    running.edit(lambda d: [running.pool("a").pop(key) for key in ("min_size", "max_size", "scale_down_after")])
    running.pool("a")["size"] = 2
    running.write()
    await running.service.reload()
    await running.settled({"a": 2, "b": 2})
