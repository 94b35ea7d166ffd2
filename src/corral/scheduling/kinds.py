"""The VMs of one bulk placement that ask the same, and the fused function that scores them.

VMs with the same :class:`Demand` and the same excluded hosts are one :class:`Kind`: they
share the filters that apply to them and one heap of host scores. :func:`fuse` compiles the
dynamic filters' and the weights' expressions into one function per demand, which gives the
same answers (to the last bit of the float) as calling each plug-in in turn.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence

from corral.scheduling.filters import Filter
from corral.scheduling.model import EXCLUDED, LOAD_FIELDS, Demand, HostLoad, Rejection
from corral.scheduling.weights import Weight

Scorer = Callable[[HostLoad], float | None]
Fused = tuple[Scorer, Scorer]

#: What host-only filters are given; they do not look at it.
NO_DEMAND = Demand()


def host_only(f: Filter) -> bool:
    """A static filter whose answer does not depend on the demand: checked once per host."""
    return not f.dynamic and f.host_only


def fuse(dynamic: Sequence[Filter], weights: Sequence[tuple[float, Weight]], demand: Demand) -> Fused | None:
    """Two functions built from the plug-ins' expressions: ``score(load)``, what
    :meth:`Kind.plain_score` computes, and ``take(load)``, which adds one VM of ``demand`` to
    the load (as :meth:`HostLoad.add`) and returns the load's new score.

    None when a plug-in has no expression. The terms are added in the order ``plain_score``
    adds them, so the results are the same floats.
    """
    conditions, terms = [], []
    for f in dynamic:
        condition = f.expression(demand)
        if condition is None:
            return None
        conditions.append(condition)
    total = "0.0"
    for factor, weight in weights:
        term = weight.expression(demand)
        if term is None:
            return None
        terms.append(term)
        total = f"({total} + {factor!r} * ({term}))"
    text = " ".join((*conditions, *terms))
    used = [name for name in LOAD_FIELDS if re.search(rf"\b{name}\b", text)]
    body = [f"    if not ({condition}):\n        return None" for condition in conditions]
    body.append(f"    return {total}")
    added, bound = HostLoad.add_source(demand)
    source = "\n".join([
        "def score(load):", *[f"    {name} = load.{name}" for name in used], *body,
        "def take(load):", *added, *[f"    {name} = load.{name}" for name in used if name not in bound], *body,
    ])
    namespace: dict[str, Scorer] = {}
    exec(compile(source, "<corral.scheduling: fused score>", "exec"), namespace)  # noqa: S102
    return namespace["score"], namespace["take"]


class Kind:
    """The VMs of one bulk call that ask the same: their filters, and a heap of host scores."""

    __slots__ = ("demand", "exclude", "static", "host_only", "dynamic", "checks", "scorers", "fused", "score",
                 "take", "heap", "why")

    def __init__(self, demand: Demand, exclude: frozenset[str], filters: Sequence[Filter],
                 weights: Sequence[tuple[float, Weight]], fused: Fused | None = None, *, fusing: bool = True) -> None:
        """``fused`` is what :func:`fuse` gives for this demand, when the caller has it already
        (``fusing=False`` then, so a None it gives is not fused again)."""
        self.demand = demand
        self.exclude = exclude
        # host-only filters are checked once per call for all kinds (see Scheduler.place)
        self.static = [f for f in filters if not f.dynamic and not host_only(f) and f.applies(demand)]
        self.host_only = [f for f in filters if host_only(f)]
        self.dynamic = [f for f in filters if f.dynamic and f.applies(demand)]
        # bound methods, looked up once: the score is the hot path of a bulk placement
        self.checks = [f.check for f in self.dynamic]
        self.scorers = [(factor, weight.score) for factor, weight in weights]
        self.score: Scorer = self.plain_score
        self.take: Scorer = self.plain_take
        self.fused = fuse(self.dynamic, weights, demand) if fusing and fused is None else fused
        if self.fused is not None:
            self.score, self.take = self.fused
        self.heap: list[tuple[float, int, int]] = []
        self.why: dict[str, Rejection] | None = None  # the rejections, once no host is left

    def passes_static(self, load: HostLoad) -> bool:
        if load.name in self.exclude:
            return False
        demand = self.demand
        for f in self.static:
            if f.check(load, demand) is not None:
                return False
        return True

    def plain_score(self, load: HostLoad) -> float | None:
        """The host's score for one more VM of this kind, or None when a dynamic filter fails.

        ``score`` is this, or the fused function that computes the same faster.
        """
        demand = self.demand
        for check in self.checks:
            if check(load, demand) is not None:
                return None
        total = 0.0
        for factor, score in self.scorers:
            total += factor * score(load, demand)
        return total

    def plain_take(self, load: HostLoad) -> float | None:
        """Add one VM of this kind to ``load``; its score for the next one."""
        load.add(self.demand)
        return self.plain_score(load)

    def rejection(self, load: HostLoad) -> Rejection | None:
        if load.name in self.exclude:
            return EXCLUDED
        demand = self.demand
        for f in (*self.host_only, *self.static, *self.dynamic):
            reason = f.check(load, demand)
            if reason is not None:
                return reason
        return None
