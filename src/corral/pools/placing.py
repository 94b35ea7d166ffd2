"""Where the pool manager's new VMs go: the scheduler fed by the live inventory.

One :class:`~corral.scheduling.Scheduler` per provider endpoint holds that endpoint's pending
reservations. A placement reads the monitor's current hosts (never a stale list), first
releasing the reservations whose VMs the inventory now shows on their hosts. What a pool's
VM asks of a host comes from its template, as the provider describes it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass

from corral.domain.models import Pool, TemplateInfo
from corral.inventory import Inventory
from corral.providers.base import Provider, ProviderError
from corral.scheduling import Demand, Placement, Request, Scheduler, SchedulerSettings

log = logging.getLogger("corral.placement")


@dataclass(frozen=True, slots=True)
class Placed:
    """A VM the placer found a host for (``host``), or did not (``why``)."""

    name: str
    pool: str
    host: str | None
    why: str | None = None


#: The reason counted when no host was up to consider at all.
NO_HOSTS = "no hosts up"


class Placer:
    def __init__(self, providers: Mapping[str, Provider], inventory: Inventory,
                 settings: SchedulerSettings | None = None) -> None:
        self.providers = providers
        self.inventory = inventory
        self.settings = settings or SchedulerSettings()
        self.schedulers = {name: Scheduler(self.settings) for name in providers}
        self.templates: dict[tuple[str, str], TemplateInfo] = {}
        self.failures: dict[str, str] = {}  # pool -> why its last VM could not be placed
        self.rejections: dict[str, int] = {}  # hosts rejected for VMs no host took, by the kind of reason

    async def learn(self, pools: list[Pool]) -> None:
        """Ask the providers about the templates of ``pools`` that are not known yet."""
        for pool in pools:
            key = (pool.provider, pool.template)
            provider = self.providers.get(pool.provider)
            if key in self.templates or provider is None:
                continue
            try:
                info = await provider.template_info(pool.template)
            except ProviderError as exc:
                log.warning("cannot read template", extra={"pool": pool.name, "template": pool.template,
                                                           "error": str(exc)})
                continue
            if info is None:
                log.warning("template unknown to the provider; placing with default sizes",
                            extra={"pool": pool.name, "template": pool.template})
                info = TemplateInfo(pool.template)
            self.templates[key] = info

    def use(self, provider: str) -> None:
        """``provider`` has a new session (or is new): its templates are asked for again."""
        self.schedulers.setdefault(provider, Scheduler(self.settings))
        self.templates = {key: info for key, info in self.templates.items() if key[0] != provider}

    def use_settings(self, settings: SchedulerSettings) -> None:
        """Place with ``settings`` (a policy, weights or limits changed) from now on; the
        reservations held and the counts are kept."""
        self.settings = settings
        for name, old in self.schedulers.items():
            scheduler = Scheduler(settings, reservations=old.reservations)
            scheduler.placed, scheduler.failed = old.placed, old.failed
            self.schedulers[name] = scheduler

    def template(self, pool: Pool) -> TemplateInfo:
        return self.templates.get((pool.provider, pool.template)) or TemplateInfo(pool.template)

    def demand(self, pool: Pool) -> Demand:
        return Demand.of(self.template(pool), pool=pool.name, cluster=pool.clone_target,
                         max_per_host=pool.max_per_host)

    def settle(self, provider: str) -> None:
        """Drop the reservations the inventory has caught up with (or that expired): a VM on a
        host whose figures lag keeps its CPU reserved until they refresh (see reservations.py)."""
        monitor = self.inventory[provider]
        scheduler = self.schedulers[provider]
        if len(scheduler.reservations):
            repo = monitor.repo
            scheduler.reservations.settle(lambda name: (vm.host if (vm := monitor.vm(name)) is not None else None),
                                          lambda name: (h.stats_at if (h := repo.host(name)) is not None else None))

    def pool_counts(self, provider: str, pools: list[Pool]) -> dict[str, Counter[str]]:
        """VMs per host of the pools that limit how many may share a host."""
        repo = self.inventory[provider].repo
        return {p.name: Counter(vm.host for vm in repo.vms_in(p.name)) for p in pools if p.max_per_host}

    def place(self, provider: str, wanted: list[tuple[str, Pool]],
              excludes: Mapping[str, frozenset[str]] | None = None) -> list[Placed]:
        """Hosts for VMs (name, pool), in order; each is reserved until the inventory shows it there.

        ``excludes`` names, per VM, hosts it must not go to (hosts that failed it, a dead host).
        """
        self.settle(provider)
        demands: dict[str, Demand] = {}
        requests = []
        for name, pool in wanted:
            demand = demands.get(pool.name)
            if demand is None:
                demand = demands[pool.name] = self.demand(pool)
            avoid = excludes.get(name) if excludes else None
            requests.append(Request(name, demand, avoid) if avoid else Request(name, demand))
        pools = list({pool.name: pool for _, pool in wanted}.values())
        scheduler = self.schedulers[provider]
        placements = scheduler.place(self.inventory[provider].hosts(), requests,
                                     pool_counts=self.pool_counts(provider, pools))
        out = []
        for (name, pool), placement in zip(wanted, placements, strict=True):
            out.append(self._outcome(name, pool, placement))
        return out

    def _outcome(self, name: str, pool: Pool, placement: Placement) -> Placed:
        if placement.host is not None:
            self.failures.pop(pool.name, None)
            return Placed(name, pool.name, placement.host)
        why = placement.why()
        for reason in (placement.rejected or {}).values():
            self.rejections[reason.kind] = self.rejections.get(reason.kind, 0) + 1
        if not placement.rejected:
            self.rejections[NO_HOSTS] = self.rejections.get(NO_HOSTS, 0) + 1
        if self.failures.get(pool.name) != why:
            log.warning("no host can take a VM", extra={"pool": pool.name, "reason": why})
        self.failures[pool.name] = why
        return Placed(name, pool.name, None, why)

    def release(self, provider: str, name: str) -> None:
        """The VM's create failed (or it was never made): its reservation goes."""
        scheduler = self.schedulers.get(provider)
        if scheduler is not None:
            scheduler.reservations.release(name)

    def reserved(self, provider: str) -> int:
        """Reservations still held (after dropping those the inventory caught up with)."""
        self.settle(provider)
        return len(self.schedulers[provider].reservations)
