"""The service switch: one pool service over the pools acted on, the old one stopped first."""

from __future__ import annotations

import asyncio

import pytest

from corral.ha.switch import ServiceSwitch


class Run:
    def __init__(self, pools: frozenset[str], log: list[str], *, fail_stop: bool = False) -> None:
        self.pools, self.log, self.fail_stop = pools, log, fail_stop
        self.looked: list[str] = []
        self.settings: list[str] = []

    async def start(self) -> None:
        await asyncio.sleep(0)
        self.log.append("start " + ",".join(sorted(self.pools)))

    async def stop(self) -> None:
        await asyncio.sleep(0)
        self.log.append("stop " + ",".join(sorted(self.pools)))
        if self.fail_stop:
            raise RuntimeError("provider close failed")

    def look_at(self, pool: str, settings: bool = False) -> None:
        self.looked.append(pool)
        if settings:
            self.settings.append(pool)


def switch(log: list[str], **kw: bool) -> ServiceSwitch:
    return ServiceSwitch(lambda pools: Run(pools, log, **kw))


@pytest.mark.parametrize(("steps", "expected"), [
    ([{"a"}], ["start a"]),
    ([{"a"}, {"a"}], ["start a"]),  # the same set: nothing restarts
    ([{"a"}, {"a", "b"}], ["start a", "stop a", "start a,b"]),  # stopped before the new one starts
    ([{"a", "b"}, {"b"}], ["start a,b", "stop a,b", "start b"]),
    ([{"a"}, set()], ["start a", "stop a"]),
    ([set()], []),
])
async def test_the_service_follows_the_set(steps: list[set[str]], expected: list[str]) -> None:
    log: list[str] = []
    s = switch(log)
    for pools in steps:
        await s.apply(frozenset(pools))
    assert log == expected
    assert s.acting == frozenset(steps[-1])


async def test_concurrent_changes_never_overlap_two_services() -> None:
    log: list[str] = []
    s = switch(log)
    await asyncio.gather(s.apply(frozenset({"a"})), s.apply(frozenset({"b"})), s.apply(frozenset({"c"})))
    running = 0
    for line in log:
        running += 1 if line.startswith("start") else -1
        assert running <= 1, log
    assert s.acting == frozenset({"c"}) and log[-1] == "start c"


async def test_a_failed_stop_does_not_keep_the_next_service_from_starting() -> None:
    log: list[str] = []
    s = switch(log, fail_stop=True)
    await s.apply(frozenset({"a"}))
    await s.apply(frozenset({"b"}))
    assert log == ["start a", "stop a", "start b"] and s.acting == frozenset({"b"})


async def test_each_new_service_is_announced_before_it_starts_and_a_failing_listener_stops_nothing() -> None:
    log: list[str] = []
    s = switch(log)
    s.on_new = lambda run: log.append("new " + ",".join(sorted(run.pools)))  # type: ignore[attr-defined]
    await s.apply(frozenset({"a"}))
    await s.apply(frozenset({"a", "b"}))

    def broken(run: object) -> None:
        raise RuntimeError("listener failed")

    s.on_new = broken
    await s.apply(frozenset({"c"}))
    assert log == ["new a", "start a", "stop a", "new a,b", "start a,b", "stop a,b", "start c"]
    assert s.acting == frozenset({"c"})


async def test_only_pools_acted_on_are_looked_at_once_per_burst_of_wakes() -> None:
    s = switch([])
    s.look_at("a")  # nothing runs yet: nothing to look
    await s.apply(frozenset({"a", "c"}))
    for _ in range(50):  # a burst of checkouts: one look
        s.look_at("a")
    s.look_at("b")
    s.look_at("c")
    assert isinstance(s.service, Run) and s.service.looked == []  # gathering
    await asyncio.sleep(s.gather_s * 3)
    assert s.service.looked == ["a", "c"] and s.looks == 2
    s.look_at("a")
    await asyncio.sleep(s.gather_s * 3)
    assert s.service.looked == ["a", "c", "a"] and s.service.settings == []
    s.look_at("a")
    s.look_at("a", settings=True)  # one look, about the settings too
    s.look_at("a")
    await asyncio.sleep(s.gather_s * 3)
    assert s.service.looked == ["a", "c", "a", "a"] and s.service.settings == ["a"]


async def test_a_pool_handed_over_while_gathering_is_not_looked_at() -> None:
    s = switch([])
    await s.apply(frozenset({"a"}))
    first = s.service
    s.look_at("a")
    await s.apply(frozenset({"b"}))
    await asyncio.sleep(s.gather_s * 3)
    assert isinstance(first, Run) and first.looked == []
    assert isinstance(s.service, Run) and s.service.looked == []
