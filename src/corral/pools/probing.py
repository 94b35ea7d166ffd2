"""Readiness: a pending VM becomes ready when it is reachable.

The change feed saying the guest is up is enough for a provider whose readiness is no more than
that; one that ``probes_readiness`` (vSphere connects to port 22, as vmpooler does) is asked all
the same, and asked again a second later when the guest is up but not yet listening.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from corral.domain.models import Vm
from corral.domain.states import VmState
from corral.inventory import Inventory
from corral.pools.ledger import Ledger
from corral.providers.base import Provider, ProviderError, VmNotFound
from corral.store.base import Store

log = logging.getLogger("corral.pool")


class ReadyChecks:
    """``became_ready`` is told of each VM moved to ready."""

    def __init__(self, store: Store, ledger: Ledger, providers: Mapping[str, Provider], inventory: Inventory,
                 spawn: Callable[[Coroutine[Any, Any, object], str], None], became_ready: Callable[[Vm], None],
                 *, retry_s: float) -> None:
        self.store = store
        self.ledger = ledger
        self.providers = providers
        self.inventory = inventory
        self.spawn = spawn
        self.became_ready = became_ready
        self.retry_s = retry_s

    async def check_ready(self, name: str, *, ask_provider: bool, provider_name: str | None = None) -> None:
        """Move a pending VM to ready if it is reachable.

        ``ask_provider`` is False when the change feed already said the guest is up; a
        provider whose readiness is more than that is asked all the same.
        """
        if self.ledger.busy(name):
            return
        provider = self.providers.get(provider_name or "")
        if provider is None or ask_provider or provider.probes_readiness:
            # the feed's word is not enough: look at the record first (the compare-and-set
            # in mark_ready is the real check; this only avoids useless provider calls)
            vm = self.store.get_vm(name)
            if vm is None or vm.state is not VmState.PENDING:
                return
            provider_name, provider = vm.provider, self.providers[vm.provider]
        assert provider_name is not None
        probing = provider.probes_readiness
        ask_provider = ask_provider or probing
        with self.ledger.holding(name):
            try:
                ready = True if not ask_provider else await provider.vm_ready(name)
                seen = self.inventory[provider_name].vm(name)
                ip = seen.ip if seen is not None else None
            except VmNotFound:
                return  # the feed or the sweep deals with vanished VMs
            except ProviderError as exc:
                log.debug("readiness check failed", extra={"vm": name, "error": str(exc)})
                return
            if not ready:
                if probing and seen is not None and seen.guest_ready:
                    # the guest is up but not yet listening: probe again soon, not only at the sweep
                    self.spawn(self._probe_again(name, provider_name), f"ready-{name}")
                return
            done = self.ledger.mark_ready(name, ip)
            if done is not None:
                log.info("ready", extra={"pool": done.pool, "vm": name, "host": done.host,
                                         "duration": (done.ready_at or 0.0) - done.created_at})
                self.became_ready(done)

    async def _probe_again(self, name: str, provider_name: str) -> None:
        await asyncio.sleep(self.retry_s)
        await self.check_ready(name, ask_provider=True, provider_name=provider_name)

    def recheck(self, provider_name: str, name: str) -> None:
        """A clone call returned: if the inventory already saw the guest up, check it now."""
        vm = self.inventory[provider_name].vm(name)
        if vm is not None and vm.powered_on and vm.guest_ready:
            self.spawn(self.check_ready(name, ask_provider=False, provider_name=provider_name), f"ready-{name}")
