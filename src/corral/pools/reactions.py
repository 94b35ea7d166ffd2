"""How the pool manager reacts to inventory events (its subscriber on the event bus).

- a VM whose guest comes up (or appears already up) is checked and moved pending → ready;
- a ready VM powered off behind corral's back is destroyed and replaced;
- a VM that vanished from the provider is recorded completed and finished off;
- a VM moved by someone else gets its new host recorded;
- a host declared down loses the ready and pending VMs on it, and the pools (and on-demand
  requests) get new ones elsewhere; checked-out VMs of HA pools are restarted on another host
  at the runner's top priority, other checked-out VMs are left to their users.

After an overflow of its queue the manager resyncs: it compares the store with the
repository, which is exactly what it would have learnt from the events it missed.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from corral.domain.events import Event, HostDown, VmCreated, VmDisappeared, VmMoved, VmStateChanged
from corral.domain.states import LIVE_STATES, PowerState, VmState

if TYPE_CHECKING:
    from corral.pools.manager import PoolManager

log = logging.getLogger("corral.pool")

HANDLED = (VmCreated, VmStateChanged, VmDisappeared, VmMoved, HostDown)


def accepts(event: Event) -> bool:
    return isinstance(event, HANDLED)


class Reactions:
    def __init__(self, manager: PoolManager) -> None:
        self.manager = manager
        self.host_drops = 0  # VMs dropped because their host went down

    async def handle(self, event: Event) -> None:
        m = self.manager
        if isinstance(event, (VmCreated, VmStateChanged)):
            state = event.state if isinstance(event, VmCreated) else event.new
            if state is PowerState.UP:
                m.spawn(m.check_ready(event.vm, ask_provider=False, provider_name=event.provider), f"ready-{event.vm}")
            elif state is PowerState.OFF:
                record = m.store.get_vm(event.vm)
                if record is not None and record.state is VmState.READY and not m.busy(event.vm):
                    m.spawn(m.destroy(record, reason="powered off at the provider"), f"destroy-{event.vm}")
        elif isinstance(event, VmDisappeared):
            self.vanished(event.vm)
        elif isinstance(event, VmMoved):
            record = m.store.get_vm(event.vm)
            if record is not None and record.state in LIVE_STATES and record.host != event.host:
                m.store.update_vm(event.vm, host=event.host)
        elif isinstance(event, HostDown):
            self.host_down(event)

    def vanished(self, name: str) -> None:
        """A VM left the provider without corral destroying it."""
        m = self.manager
        if m.busy(name):
            return
        record = m.store.get_vm(name)
        if record is None or record.state not in LIVE_STATES:
            return
        m.stats.vanished += 1
        log.warning("VM vanished at the provider", extra={"pool": record.pool, "vm": name, "state": record.state.value})
        m.spawn(m.destroy(record, reason="vanished at the provider"), f"destroy-{name}")

    def host_down(self, event: HostDown) -> None:
        """Drop the ready and pending VMs on a dead host (refill replaces them); restart the
        checked-out VMs of HA pools elsewhere, at the runner's top priority."""
        m = self.manager
        names = [vm.name for vm in m.inventory[event.provider].repo.vms_on(event.host)]
        dropped = 0
        restarts = []
        for name in names:
            record = m.store.get_vm(name)
            if record is None or m.busy(name):
                continue
            if record.state in (VmState.READY, VmState.PENDING):
                dropped += 1
                m.spawn(m.destroy(record, reason=f"host {event.host} down"), f"destroy-{name}")
            elif record.state is VmState.RUNNING and record.host == event.host:
                pool = m.pools.get(record.pool)
                if pool is not None and pool.ha:
                    restarts.append(m.creator.restart(record, pool, event.host))
        if restarts:
            m.runner.submit(restarts)
        self.host_drops += dropped
        log.warning("host down", extra={"provider": event.provider, "host": event.host, "reason": event.reason,
                                        "dropped": dropped, "ha_restarts": len(restarts)})

    async def resync(self) -> None:
        from corral.pools.recovery import recover

        m = self.manager
        for name, monitor in m.inventory.monitors.items():
            await recover(m, name, list(monitor.repo.vms.values()), taken_at=monitor.as_of)
