"""One provider's change feed, as the pool manager consumes it.

The watcher long-polls :meth:`Provider.wait_for_updates`, keeps the latest view of the
provider's hosts and VMs (one record per object, updated in place), and turns changes into
lifecycle steps: a guest that finished booting is checked for readiness at once, a VM that
vanished or was powered off behind corral's back is cleaned up.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from corral.domain.states import VmState
from corral.providers.base import HostInfo, InventoryUpdate, Provider, ProviderError, ProviderVm

if TYPE_CHECKING:
    from corral.pools.manager import PoolManager

log = logging.getLogger("corral.feed")

LIVE = (VmState.PENDING, VmState.READY, VmState.RUNNING, VmState.MIGRATING)


class FeedWatcher:
    def __init__(self, manager: PoolManager, provider_name: str, provider: Provider) -> None:
        self.manager = manager
        self.provider_name = provider_name
        self.provider = provider
        self.version: int | None = None
        self.hosts: dict[str, HostInfo] = {}
        self.vms: dict[str, ProviderVm] = {}
        self.updates = 0

    async def first_snapshot(self) -> list[ProviderVm]:
        """The full inventory, read once at start-up."""
        self.apply(await self.provider.wait_for_updates(None, 0.0))
        return list(self.vms.values())

    async def run(self) -> None:
        backoff = 0.5
        while True:
            try:
                update = await self.provider.wait_for_updates(self.version, self.manager.settings.feed_timeout)
                backoff = 0.5
                if update.empty:
                    self.version = update.version
                    continue
                gone = self.apply(update)
                self.react(update, gone)
            except ProviderError as exc:
                log.warning("change feed failed, retrying", extra={"provider": self.provider_name,
                                                                   "error": str(exc), "retry_in": backoff})
            except Exception:  # a bug must not stop the feed for good; the sweep covers meanwhile
                log.exception("change feed handling failed, retrying", extra={"provider": self.provider_name})
            else:
                continue
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 30.0)

    def apply(self, update: InventoryUpdate) -> list[str]:
        """Fold an update into the view; returns the names of VMs that left."""
        self.updates += 1
        if update.full:
            gone = [n for n in self.vms if n not in {v.name for v in update.vms}]
            self.vms = {v.name: v for v in update.vms}
            self.hosts = {h.name: h for h in update.hosts}
        else:
            gone = list(update.removed_vms)
            for name in update.removed_vms:
                self.vms.pop(name, None)
            for name in update.removed_hosts:
                self.hosts.pop(name, None)
            self.vms.update((v.name, v) for v in update.vms)
            self.hosts.update((h.name, h) for h in update.hosts)
        self.version = update.version
        return gone

    def react(self, update: InventoryUpdate, gone: list[str]) -> None:
        manager = self.manager
        for vm in update.vms:
            if vm.powered_on and vm.guest_ready:
                manager.spawn(manager.check_ready(vm.name, ask_provider=False, provider_name=self.provider_name),
                              f"ready-{vm.name}")
            elif not vm.powered_on:
                record = manager.store.get_vm(vm.name)
                if record is not None and record.state is VmState.READY:
                    manager.spawn(manager.destroy(record, reason="powered off at the provider"), f"destroy-{vm.name}")
        for name in gone:
            self.vanished(name)

    def vanished(self, name: str) -> None:
        """A VM left the provider without corral destroying it."""
        manager = self.manager
        if manager.busy(name):
            return
        record = manager.store.get_vm(name)
        if record is None or record.state not in LIVE:
            return
        manager.stats.vanished += 1
        log.warning("VM vanished at the provider", extra={"pool": record.pool, "vm": name, "state": record.state.value})
        manager.spawn(manager.destroy(record, reason="vanished at the provider"), f"destroy-{name}")

    def recheck(self, name: str) -> None:
        """A clone call returned: if the feed already saw the guest up, check it now."""
        vm = self.vms.get(name)
        if vm is not None and vm.powered_on and vm.guest_ready:
            self.manager.spawn(self.manager.check_ready(name, ask_provider=False, provider_name=self.provider_name),
                               f"ready-{name}")

    def vm_ip(self, name: str) -> str | None:
        vm = self.vms.get(name)
        return vm.ip if vm else None
