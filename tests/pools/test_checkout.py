"""Checkout's decisions (aliases, weights, plans, shortfalls) and its pool-setting changes,
without a manager or a store."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from corral.domain.models import Pool, Vm
from corral.domain.states import VmState
from corral.pools.checkout import (
    Allocator,
    CheckoutSettings,
    PoolEditor,
    SetCloneTarget,
    SetSize,
    SetTemplate,
    Setting,
    Short,
    Taken,
    backend_weights,
    candidates,
    change,
    plan_checkout,
    preference,
    shortfalls,
    split,
    unknown_labels,
)


def pool(name: str, alias: tuple[str, ...] = (), clone_target: str | None = None, size: int = 2) -> Pool:
    return Pool(name=name, template=f"t-{name}", size=size, provider="sim", alias=alias, clone_target=clone_target)


POOLS = {p.name: p for p in [
    pool("debian", alias=("linux", "deb"), clone_target="c1"),
    pool("ubuntu", alias=("linux",), clone_target="c2"),
    pool("win", clone_target=None),
    pool("linux-own", alias=("linux-own",)),
]}


class FirstChooser:
    """Picks the first candidate, or the one with the highest weight; records what it was asked."""

    def __init__(self) -> None:
        self.asked: list[tuple[tuple[str, ...], tuple[float, ...] | None, int]] = []

    def choice(self, seq: Sequence[str]) -> str:
        self.asked.append((tuple(seq), None, 1))
        return seq[0]

    def choices(self, population: Sequence[str], weights: Sequence[float] | None = None, *, k: int = 1) -> list[str]:
        self.asked.append((tuple(population), tuple(weights) if weights else None, k))
        if weights:
            best = max(range(len(population)), key=lambda i: weights[i])
            return [population[best]] * k
        return [population[i % len(population)] for i in range(k)]


@pytest.mark.parametrize(("label", "expected"), [
    ("debian", ["debian"]),
    ("linux", ["debian", "ubuntu"]),
    ("deb", ["debian"]),
    ("linux-own", ["linux-own"]),  # a pool aliased to its own name counts once
    ("nothing", []),
])
def test_candidates(label: str, expected: list[str]) -> None:
    assert candidates(POOLS, label) == expected


@pytest.mark.parametrize(("labels", "expected"), [
    (["debian", "linux"], []),
    (["debian", "nope", "deb", "x"], ["nope", "x"]),
    ([], []),
])
def test_unknown_labels(labels: list[str], expected: list[str]) -> None:
    assert unknown_labels(POOLS, labels) == expected


@pytest.mark.parametrize(("table", "names", "expected"), [
    ({}, ["debian", "ubuntu"], None),  # no table
    ({"c1": 3.0, "c2": 1.0}, ["debian", "ubuntu"], [3.0, 1.0]),
    ({"c1": 3.0}, ["debian", "ubuntu"], None),  # one candidate without a weight: none is used
    ({"c1": 3.0, "c2": 1.0}, ["debian", "win"], None),  # no clone target
    ({"c1": 0.0, "c2": 2.0}, ["debian", "ubuntu"], [0.0, 2.0]),
])
def test_backend_weights(table: dict[str, float], names: list[str], expected: list[float] | None) -> None:
    assert backend_weights(POOLS, table, names) == expected


@pytest.mark.parametrize(("names", "weights", "expected"), [
    (["a"], None, ["a"]),
    (["a", "b", "c"], None, ["a", "b", "c"]),
    (["a", "b", "c"], [1.0, 5.0, 2.0], ["b", "a", "c"]),
])
def test_preference(names: list[str], weights: list[float] | None, expected: list[str]) -> None:
    assert preference(names, weights, FirstChooser()) == expected


@pytest.mark.parametrize(("names", "weights", "count", "expected"), [
    (["a"], None, 5, {"a": 5}),
    (["a", "b"], None, 5, {"a": 3, "b": 2}),
    (["a", "b"], [1.0, 9.0], 4, {"b": 4}),
])
def test_split(names: list[str], weights: list[float] | None, count: int, expected: dict[str, int]) -> None:
    assert split(names, weights, count, FirstChooser()) == expected


@pytest.mark.parametrize(("wanted", "ready", "picks", "left"), [
    # names of one pool each: the store is not read
    ({"debian": 2, "win": 1}, None, (("debian", "debian"), ("debian", "debian"), ("win", "win")), None),
    # an alias: the preferred pool while it has stock, then the next
    ({"linux": 3}, {"debian": 1, "ubuntu": 5}, (("linux", "debian"), ("linux", "ubuntu"), ("linux", "ubuntu")),
     {"debian": 0, "ubuntu": 3}),
    # no stock anywhere: the preferred pool, counted below 0
    ({"linux": 1}, {}, (("linux", "debian"),), {"debian": -1}),
])
def test_plan_checkout(wanted: dict[str, int], ready: dict[str, int] | None,
                       picks: tuple[tuple[str, str], ...], left: dict[str, int] | None) -> None:
    sources = {label: candidates(POOLS, label) for label in wanted}
    weights = {label: None for label in wanted}
    reads: list[int] = []

    def counts() -> dict[str, int]:
        reads.append(1)
        return dict(ready or {})

    plan = plan_checkout(wanted, sources, weights, counts, FirstChooser())
    assert plan.picks == picks
    assert plan.ready == left
    assert len(reads) == (0 if ready is None else 1)


@pytest.mark.parametrize(("wanted", "ready", "expected"), [
    ({"debian": 1}, {"debian": 1}, {}),
    ({"debian": 2}, {"debian": 1}, {"debian": 1}),
    ({"linux": 3}, {"debian": 1, "ubuntu": 1}, {"linux": 2}),  # every pool of an alias counts
    ({"linux": 2, "win": 1}, {"debian": 2}, {"win": 0}),
])
def test_shortfalls(wanted: dict[str, int], ready: dict[str, int], expected: dict[str, int]) -> None:
    sources = {label: candidates(POOLS, label) for label in wanted}
    assert shortfalls(wanted, sources, ready) == expected


def vm(name: str, pool_name: str) -> Vm:
    return Vm(name=name, pool=pool_name, template=f"t-{pool_name}", state=VmState.RUNNING)


class FakeTake:
    """The manager's checkout: fails the first ``fail`` calls, then hands out VMs."""

    def __init__(self, fail: int = 0) -> None:
        self.fail = fail
        self.calls: list[dict[str, Any]] = []

    def __call__(self, wanted: list[str], *, token: str | None, user: str | None,
                 lifetime_s: float | None) -> list[Vm] | None:
        self.calls.append({"wanted": wanted, "token": token, "user": user, "lifetime_s": lifetime_s})
        if len(self.calls) <= self.fail:
            return None
        return [vm(f"vm{i}", p) for i, p in enumerate(wanted)]


@pytest.mark.parametrize(("token", "lifetime"), [(None, None), ("hash", 7200.0)])
def test_allocator_hands_out_in_request_order(token: str | None, lifetime: float | None) -> None:
    take = FakeTake()
    counts = {"debian": {VmState.READY: 2}, "ubuntu": {VmState.READY: 2}}
    allocator = Allocator(POOLS, take, lambda: counts, CheckoutSettings(), FirstChooser(),
                          lifetime_auth_s=7200.0)
    result = allocator.checkout({"win": 1, "linux": 2}, token=token, user="u" if token else None)
    assert isinstance(result, Taken)
    assert [(label, v.pool) for label, v in result.vms] == [("win", "win"), ("linux", "debian"), ("linux", "debian")]
    assert take.calls[0]["lifetime_s"] == lifetime


@pytest.mark.parametrize(("fail", "counts", "calls", "short"), [
    (3, {"debian": {VmState.READY: 0}}, 1, {"linux": 0}),  # short of stock: no second plan
    (1, {"debian": {VmState.READY: 1}, "ubuntu": {VmState.READY: 1}}, 2, None),  # a race: planned again, served
    (5, {"debian": {VmState.READY: 1}, "ubuntu": {VmState.READY: 1}}, 3, {}),  # lost three races
    (1, {}, 1, {"win": 0}),  # one pool per name: nothing to plan again
])
def test_allocator_plans_again_only_after_a_race(fail: int, counts: dict[str, dict[VmState, int]], calls: int,
                                                 short: dict[str, int] | None) -> None:
    take = FakeTake(fail)
    wanted = {"win": 1} if not counts else {"linux": 1}
    result = Allocator(POOLS, take, lambda: counts, CheckoutSettings(), FirstChooser()).checkout(
        wanted, token=None, user=None)
    assert len(take.calls) == calls
    if short is None:
        assert isinstance(result, Taken)
    else:
        assert result == Short(short)


class FakeSetters:
    def __init__(self, pools: dict[str, Pool]) -> None:
        self.pools = pools
        self.calls: list[tuple[str, str, object]] = []
        self.held: list[bool] = []  # of each size set: whether it holds an autosized pool

    def set_pool_size(self, pool_name: str, size: int, *, held: bool = True) -> None:
        self.calls.append(("size", pool_name, size))
        self.held.append(held)

    def set_pool_template(self, pool_name: str, template: str) -> None:
        self.calls.append(("template", pool_name, template))

    def set_clone_target(self, pool_name: str, clone_target: str | None) -> None:
        self.calls.append(("clone_target", pool_name, clone_target))


class FakeOverrides:
    def __init__(self) -> None:
        self.set: list[tuple[str, str, object]] = []
        self.cleared: list[tuple[str, str]] = []

    def set_pool_override(self, pool_name: str, setting: str, value: object) -> None:
        self.set.append((pool_name, setting, value))

    def clear_pool_override(self, pool_name: str, setting: str) -> bool:
        self.cleared.append((pool_name, setting))
        return True


@pytest.mark.parametrize(("changes", "changed", "applied"), [
    ([SetSize("debian", 2)], 0, []),  # unchanged: nothing stored or applied
    ([SetSize("debian", 5), SetSize("win", 2)], 1, [("size", "debian", 5)]),
    ([SetTemplate("win", "t-new")], 1, [("template", "win", "t-new")]),
    ([SetCloneTarget("win", "c9"), SetCloneTarget("debian", "c1")], 1, [("clone_target", "win", "c9")]),
])
def test_editor_applies_and_stores_what_changes(changes: list[Any], changed: int,
                                                applied: list[tuple[str, str, object]]) -> None:
    setters, store = FakeSetters(dict(POOLS)), FakeOverrides()
    editor = PoolEditor(POOLS, POOLS, setters, store)  # type: ignore[arg-type]
    assert editor.apply(changes) == changed
    assert setters.calls == applied
    assert store.set == [(p, s, v) for s, p, v in applied]


@pytest.mark.parametrize(("setting", "live", "applied"), [
    (Setting.SIZE, pool("debian", size=9), [("size", "debian", 2)]),
    (Setting.SIZE, pool("debian", size=2), []),  # as configured: the override is only dropped
    (Setting.TEMPLATE, Pool("debian", "t-other", 2, "sim"), [("template", "debian", "t-debian")]),
    (Setting.CLONE_TARGET, pool("debian", clone_target="c7"), [("clone_target", "debian", None)]),
])
def test_editor_reset(setting: Setting, live: Pool, applied: list[tuple[str, str, object]]) -> None:
    configured = {"debian": pool("debian")}
    setters, store = FakeSetters({"debian": live}), FakeOverrides()
    result = PoolEditor({"debian": live}, configured, setters, store).reset("debian", setting)  # type: ignore[arg-type]
    assert setters.calls == applied
    assert store.cleared == [("debian", setting.value)]
    assert result.changed == bool(applied)


AUTO = Pool(name="debian", template="t-debian", size=2, provider="sim", min_size=1, max_size=6)


@pytest.mark.parametrize(("step", "stored", "calls", "held", "overrides"), [
    # a size set for an autosized pool is stored and holds it, even when the size does not change
    ("apply", {}, [("size", "debian", 2)], [True], [("debian", "size", 2)]),
    # the reset keeps the size autosizing had reached and lets autosizing go on from there
    ("reset", {}, [("size", "debian", 2)], [False], []),
    # another process's override holds the pool; none lets autosizing go on
    ("sync", {"size": 3}, [("size", "debian", 3)], [True], []),
    ("sync", {}, [("size", "debian", 2)], [False], []),
])
def test_editor_on_an_autosized_pool(step: str, stored: dict[str, object], calls: list[tuple[str, str, object]],
                                     held: list[bool], overrides: list[tuple[str, str, object]]) -> None:
    setters, store = FakeSetters({"debian": AUTO}), FakeOverrides()
    editor = PoolEditor({"debian": AUTO}, {"debian": AUTO}, setters, store)  # type: ignore[arg-type]
    if step == "apply":
        assert editor.apply([SetSize("debian", 2)]) == 1
    elif step == "reset":
        editor.reset("debian", Setting.SIZE)
    else:
        editor.sync("debian", stored)
    assert [c for c in setters.calls if c[0] == "size"] == calls
    assert setters.held == held
    assert store.set == overrides


@pytest.mark.parametrize(("setting", "value", "expected"), [
    (Setting.SIZE, 3, SetSize("p", 3)),
    (Setting.TEMPLATE, "t", SetTemplate("p", "t")),
    (Setting.CLONE_TARGET, None, SetCloneTarget("p", None)),
])
def test_change_of_setting(setting: Setting, value: object, expected: object) -> None:
    assert change(setting, "p", value) == expected
