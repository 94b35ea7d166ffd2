"""How the pool manager reacts to inventory events (its subscriber on the event bus).

- a VM whose guest comes up (or appears already up) is checked and moved pending → ready;
- a ready VM powered off behind corral's back is destroyed and replaced;
- a VM that vanished from the provider is recorded completed and finished off;
- a VM moved by someone else gets its new host recorded;
- a host declared down loses the ready and pending VMs on it, and the pools (and on-demand
  requests) get new ones elsewhere; checked-out VMs of HA pools are restarted on another host
  at the runner's top priority, other checked-out VMs are left to their users.

What each event asks for is decided by :func:`corral.pools.decide.react` and
:func:`corral.pools.decide.host_down`. After an overflow of its queue the manager resyncs: it
compares the store with the repository, which is exactly what it would have learnt from the
events it missed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from corral.domain.events import Event, HostDown, VmEvent
from corral.domain.models import Pool
from corral.inventory import Inventory
from corral.pools import decide
from corral.pools.execute import Executor
from corral.pools.ledger import Ledger
from corral.store.base import Store

log = logging.getLogger("corral.pool")


def accepts(event: Event) -> bool:
    return isinstance(event, decide.HANDLED)


class Reactions:
    def __init__(self, pools: Mapping[str, Pool], store: Store, ledger: Ledger, inventory: Inventory,
                 executor: Executor) -> None:
        self.pools = pools
        self.store = store
        self.ledger = ledger
        self.inventory = inventory
        self.executor = executor
        self.host_drops = 0  # VMs dropped because their host went down

    async def handle(self, event: Event) -> None:
        if isinstance(event, HostDown):
            self.host_down(event)
            return
        if not isinstance(event, VmEvent):
            return
        busy = self.ledger.busy(event.vm)
        record = self.store.get_vm(event.vm) if decide.needs_record(event, busy) else None
        actions = decide.react(event, record, busy)
        for action in actions:
            if isinstance(action, decide.Lost):
                log.warning("VM vanished at the provider", extra={"pool": action.vm.pool, "vm": action.vm.name,
                                                                  "state": action.vm.state.value})
        self.executor.run(actions)

    def host_down(self, event: HostDown) -> None:
        """Drop the ready and pending VMs on a dead host (refill replaces them); restart the
        checked-out VMs of HA pools elsewhere, at the runner's top priority."""
        names = [vm.name for vm in self.inventory[event.provider].repo.vms_on(event.host)]
        records = [r for r in (self.store.get_vm(name) for name in names) if r is not None]
        actions = decide.host_down(event, records, self.ledger.busy_among(names), self.pools)
        self.executor.run(actions)
        dropped = sum(isinstance(a, decide.Destroy) for a in actions)
        restarts = sum(isinstance(a, decide.HaRestart) for a in actions)
        self.host_drops += dropped
        log.warning("host down", extra={"provider": event.provider, "host": event.host, "reason": event.reason,
                                        "dropped": dropped, "ha_restarts": restarts})

