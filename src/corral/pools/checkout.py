"""Checkout: which pools a requested name is served from, how VMs are spread over them, and
all-or-nothing allocation; and the pool settings that can be changed at run time.

The choices are pure functions of the pools, ``backend_weight`` and the ready counts (the
random draws come from a ``Chooser`` passed in); :class:`Allocator` and :class:`PoolEditor`
carry them out with what they are given: the checkout call and the store.
"""

from __future__ import annotations

import dataclasses
import random
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from corral.domain.models import Pool, Vm
from corral.domain.states import VmState
from corral.store.base import Store


class Chooser(Protocol):
    """Random draws (the :mod:`random` module, or a seeded :class:`random.Random`)."""

    def choice(self, seq: Sequence[str]) -> str: ...

    def choices(self, population: Sequence[str], weights: Sequence[float] | None = None, *,
                k: int = 1) -> list[str]: ...


@dataclass(frozen=True, slots=True)
class CheckoutSettings:
    backend_weight: Mapping[str, float] = field(default_factory=dict)  # by clone target (``:config:``)


# -- pools and aliases (pure) ----------------------------------------------------------------------
def candidates(pools: Mapping[str, Pool], label: str) -> list[str]:
    """The pools a requested name can be served from: the pool of that name, then alias targets."""
    found = [label] if label in pools else []
    return found + [p.name for p in pools.values() if label in p.alias and p.name != label]


def unknown_labels(pools: Mapping[str, Pool], labels: Sequence[str]) -> list[str]:
    return [label for label in labels if not candidates(pools, label)]


def backend_weights(pools: Mapping[str, Pool], table: Mapping[str, float], names: Sequence[str]) -> list[float] | None:
    """``backend_weight`` by each pool's clone target, when every one of ``names`` has one."""
    found = [table.get(pools[p].clone_target or "") for p in names]
    if not table or any(w is None for w in found):
        return None
    return [w for w in found if w is not None]


def preference(names: Sequence[str], weights: Sequence[float] | None, rng: Chooser) -> list[str]:
    """The candidates in the order to try them: one picked by weight (or at random) first."""
    if len(names) == 1:
        return list(names)
    first = rng.choices(names, weights=weights)[0] if weights else rng.choice(names)
    return [first] + [p for p in names if p != first]


def split(names: Sequence[str], weights: Sequence[float] | None, count: int, rng: Chooser) -> dict[str, int]:
    """Spread ``count`` VMs over ``names`` (one name takes them all)."""
    if len(names) == 1:
        return {names[0]: count}
    return dict(Counter(rng.choices(names, weights=weights, k=count) if weights else rng.choices(names, k=count)))


@dataclass(frozen=True, slots=True)
class Plan:
    """(requested name, pool) per VM, in request order; ``ready`` is what the plan leaves in
    each pool it counted (None when every name had one pool: nothing was counted)."""

    picks: tuple[tuple[str, str], ...]
    ready: Mapping[str, int] | None


def plan_checkout(wanted: Mapping[str, int], sources: Mapping[str, Sequence[str]],
                  weights: Mapping[str, Sequence[float] | None], ready: Callable[[], Mapping[str, int]],
                  rng: Chooser) -> Plan:
    """Which pool each VM asked for comes from: a name with several pools takes, per VM, the
    first of its :func:`preference` order that still has a ready VM (else the first one).
    ``ready`` is read only when some name has several pools."""
    left: dict[str, int] | None = None
    picks: list[tuple[str, str]] = []
    for label, count in wanted.items():
        pools = sources[label]
        if len(pools) == 1:
            picks += [(label, pools[0])] * count
            continue
        if left is None:
            left = dict(ready())
        for _ in range(count):
            order = preference(pools, weights[label], rng)
            pick = next((p for p in order if left.get(p, 0) > 0), order[0])
            left[pick] = left.get(pick, 0) - 1
            picks.append((label, pick))
    return Plan(tuple(picks), left)


def shortfalls(wanted: Mapping[str, int], sources: Mapping[str, Sequence[str]],
               ready: Mapping[str, int]) -> dict[str, int]:
    """The requested names that cannot be served whole, with the ready VMs they have now (every
    pool a name can be served from counts). Empty when a race, not stock, spoilt the checkout."""
    return {label: have for label, count in wanted.items()
            if (have := sum(ready.get(pool, 0) for pool in sources[label])) < count}


def ready_counts(counts: Mapping[str, Mapping[VmState, int]]) -> dict[str, int]:
    return {p: c.get(VmState.READY, 0) for p, c in counts.items()}


class TakeVms(Protocol):
    def __call__(self, wanted: list[str], *, token: str | None, user: str | None,
                 lifetime_s: float | None) -> list[Vm] | None: ...


@dataclass(frozen=True, slots=True)
class Taken:
    """A checkout that succeeded: (requested name, VM) in request order."""

    vms: tuple[tuple[str, Vm], ...]


@dataclass(frozen=True, slots=True)
class Short:
    """A checkout that failed: the names short of stock with the ready VMs they have (empty
    when other checkouts took the VMs planned for)."""

    short: Mapping[str, int]


class Allocator:
    """All-or-nothing checkout over pools and aliases, with ``take`` (the pool manager's
    checkout: one atomic store move) and ``counts`` (the store's counts by pool and state).
    ``lifetime_auth_s`` is the lifetime of VMs handed to a token's user (``vm_lifetime_auth``)."""

    def __init__(self, pools: Mapping[str, Pool], take: TakeVms,
                 counts: Callable[[], Mapping[str, Mapping[VmState, int]]], settings: CheckoutSettings,
                 rng: Chooser = random, *, lifetime_auth_s: float | None = None) -> None:
        self.pools = pools
        self.take = take
        self.counts = counts
        self.settings = settings
        self.rng = rng
        self.lifetime_auth_s = lifetime_auth_s

    def candidates(self, label: str) -> list[str]:
        return candidates(self.pools, label)

    def unknown(self, labels: Sequence[str]) -> list[str]:
        return unknown_labels(self.pools, labels)

    def split(self, label: str, count: int) -> dict[str, int]:
        """Spread ``count`` VMs asked for as ``label`` over its pools (for on-demand requests)."""
        names = self.candidates(label)
        weights = backend_weights(self.pools, self.settings.backend_weight, names) if len(names) > 1 else None
        return split(names, weights, count, self.rng)

    def checkout(self, wanted: Mapping[str, int], *, token: str | None, user: str | None) -> Taken | Short:
        """Check out every VM asked for, or none. A token's user gets ``lifetime_auth_s``."""
        lifetime = self.lifetime_auth_s if token is not None else None
        sources = {label: self.candidates(label) for label in wanted}
        weights = {label: backend_weights(self.pools, self.settings.backend_weight, names) if len(names) > 1 else None
                   for label, names in sources.items()}
        for _ in range(3):  # a race with another checkout can spoil a plan; plan again
            plan = plan_checkout(wanted, sources, weights, lambda: ready_counts(self.counts()), self.rng)
            vms = self.take([p for _, p in plan.picks], token=token, user=user, lifetime_s=lifetime)
            if vms is not None:
                return Taken(tuple((label, vm) for (label, _), vm in zip(plan.picks, vms, strict=True)))
            if plan.ready is None or any(v < 0 for v in plan.ready.values()):
                break  # short of stock: planning again will not help
        return Short(shortfalls(wanted, sources, ready_counts(self.counts())))


# -- pool settings changed at run time ---------------------------------------------------------------
class Setting(StrEnum):
    """A pool setting that can be changed at run time (the key of its stored override)."""

    SIZE = "size"
    TEMPLATE = "template"
    CLONE_TARGET = "clone_target"


OVERRIDDEN = frozenset(s.value for s in Setting)  # the pool settings stored as overrides at the API


def with_overrides(pool: Pool, stored: Mapping[str, object]) -> Pool:
    """``pool`` with the settings changed at the API (``stored``: its overrides as the store keeps
    them; other keys are left out)."""
    changes = {k: v for k, v in stored.items() if k in OVERRIDDEN}
    return dataclasses.replace(pool, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class SetSize:
    pool: str
    size: int

    setting = Setting.SIZE

    @property
    def value(self) -> int:
        return self.size


@dataclass(frozen=True, slots=True)
class SetTemplate:
    pool: str
    template: str

    setting = Setting.TEMPLATE

    @property
    def value(self) -> str:
        return self.template


@dataclass(frozen=True, slots=True)
class SetCloneTarget:
    pool: str
    clone_target: str | None

    setting = Setting.CLONE_TARGET

    @property
    def value(self) -> str | None:
        return self.clone_target


PoolChange = SetSize | SetTemplate | SetCloneTarget


def change(setting: Setting, pool: str, value: object) -> PoolChange:
    """The change that sets ``setting`` of ``pool`` to ``value`` (already checked)."""
    if setting is Setting.SIZE:
        assert isinstance(value, int)
        return SetSize(pool, value)
    if setting is Setting.TEMPLATE:
        assert isinstance(value, str)
        return SetTemplate(pool, value)
    assert value is None or isinstance(value, str)
    return SetCloneTarget(pool, value)


def current(pool: Pool, setting: Setting) -> object:
    if setting is Setting.SIZE:
        return pool.size
    if setting is Setting.TEMPLATE:
        return pool.template
    return pool.clone_target


class PoolSetters(Protocol):
    """What applies a change to the running pools (the pool manager)."""

    def set_pool_size(self, pool: str, size: int, *, held: bool = True) -> None: ...

    def set_pool_template(self, pool: str, template: str) -> None: ...

    def set_clone_target(self, pool: str, clone_target: str | None) -> None: ...


class RecordOnly:
    """Setters that only record a new value in ``pools`` (changed in place), with no VM touched:
    a process that answers the API while another process runs the pool (the owner takes the
    change in from the store)."""

    def __init__(self, pools: dict[str, Pool]) -> None:
        self.pools = pools

    def set_pool_size(self, pool: str, size: int, *, held: bool = True) -> None:
        self.pools[pool] = dataclasses.replace(self.pools[pool], size=size)

    def set_pool_template(self, pool: str, template: str) -> None:
        self.pools[pool] = dataclasses.replace(self.pools[pool], template=template)

    def set_clone_target(self, pool: str, clone_target: str | None) -> None:
        self.pools[pool] = dataclasses.replace(self.pools[pool], clone_target=clone_target)


@dataclass(frozen=True, slots=True)
class Reset:
    """A setting put back as configured: the configured value and the one before the reset."""

    original: object
    before: object

    @property
    def changed(self) -> bool:
        return self.before != self.original


class PoolEditor:
    """Applies :data:`PoolChange` s: each one that changes a value is stored as an override (so
    it outlives restarts) and applied to the running pools. A size set for an autosized pool is
    stored even when it equals the size now: it holds the pool (autosizing stops) until reset."""

    def __init__(self, pools: Mapping[str, Pool], configured: Mapping[str, Pool], setters: PoolSetters,
                 store: Store) -> None:
        self.pools = pools
        self.configured = configured
        self.setters = setters
        self.store = store

    def _set(self, item: PoolChange, held: bool = True) -> None:
        match item:
            case SetSize(pool, size):
                self.setters.set_pool_size(pool, size, held=held)
            case SetTemplate(pool, template):
                self.setters.set_pool_template(pool, template)
            case SetCloneTarget(pool, target):
                self.setters.set_clone_target(pool, target)

    def apply(self, changes: Sequence[PoolChange]) -> int:
        """Store and apply each change of a value; how many changed."""
        changed = 0
        for item in changes:
            if current(self.pools[item.pool], item.setting) != item.value or self._holds(item.pool, item.setting):
                self.store.set_pool_override(item.pool, item.setting.value, item.value)
                self._set(item)
                changed += 1
        return changed

    def sync(self, pool: str, stored: Mapping[str, object]) -> int:
        """Take in the overrides of ``pool`` as the store holds them now (``stored``: setting ->
        value), set by another process: a setting without one goes back to its configured
        value. How many values changed."""
        changed = 0
        for setting in Setting:
            if self._holds(pool, setting):  # autosized: the size is the autosizer's unless stored
                size = stored.get(setting.value, self.pools[pool].size)
                assert isinstance(size, int)
                changed += current(self.pools[pool], setting) != size
                self._set(SetSize(pool, size), held=setting.value in stored)
                continue
            wanted = stored.get(setting.value, current(self.configured[pool], setting))
            if current(self.pools[pool], setting) != wanted:
                self._set(change(setting, pool, wanted))
                changed += 1
        return changed

    def reset(self, pool: str, setting: Setting) -> Reset:
        """Drop the override of ``setting``: the pool gets its configured value back."""
        before, original = current(self.pools[pool], setting), current(self.configured[pool], setting)
        self.store.clear_pool_override(pool, setting.value)
        if self._holds(pool, setting):
            self._set(SetSize(pool, before if isinstance(before, int) else 0), held=False)  # autosizing resumes
            return Reset(original, before)
        if before != original:
            self._set(change(setting, pool, original))
        return Reset(original, before)

    def _holds(self, pool: str, setting: Setting) -> bool:
        """A size setting of an autosized pool (whose size an override holds, or autosizing sets)."""
        return setting is Setting.SIZE and (live := self.pools.get(pool)) is not None and live.autosized
