"""Guest boots: a powered-on VM's guest becomes ready ``latency.boot`` seconds later.

A boot is a ``loop.call_later`` timer, no thread. Its wall-clock deadline is kept on the VM
(and in the state file), so a simulator reopened after a crash finishes it on time. With the
boot failure rate a boot never finishes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from corral.providers.sim.settings import SimSettings
from corral.providers.sim.world import SimCluster, SimVm


class Boots:
    """The boot timers of the VMs of ``cluster``. ``changed`` saves a changed VM and tells the feed, ``chance``
    draws a failure at a rate and ``scaled`` turns a latency into real seconds (both on the
    provider's one random generator); ``settings`` give the boot latency and failure rate,
    read at each boot."""

    def __init__(self, cluster: SimCluster, settings: SimSettings, changed: Callable[[SimVm], None],
                 chance: Callable[[float], bool], scaled: Callable[[float], float]) -> None:
        self.cluster = cluster
        self.changed = changed
        self.chance = chance
        self.scaled = scaled
        self.settings = settings
        self._timers: dict[str, asyncio.TimerHandle] = {}

    def start(self, vm: SimVm) -> None:
        """Start the guest's boot; with the boot failure rate it never finishes."""
        self.stop(vm)
        if self.chance(self.settings.failure_rates.boot):
            return
        vm.boot_deadline = time.time() + self.scaled(self.settings.latency.boot)
        self.schedule(vm)

    def schedule(self, vm: SimVm) -> None:
        """Finish the boot at the VM's deadline."""
        assert vm.boot_deadline is not None
        delay = max(0.0, vm.boot_deadline - time.time())
        self._timers[vm.name] = asyncio.get_running_loop().call_later(delay, self.finish, vm.name)

    def stop(self, vm: SimVm, *, ready: bool = False) -> None:
        """No boot under way any more: the guest is up (``ready``) or not."""
        self.cancel(vm.name)
        vm.guest_ready = ready
        vm.boot_deadline = None

    def cancel(self, name: str) -> None:
        timer = self._timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def cancel_all(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def finish(self, name: str) -> None:
        """The guest is up (a VM gone or no longer booting meanwhile is left alone)."""
        self._timers.pop(name, None)
        vm = self.cluster.vms.get(name)
        if vm is None or vm.boot_deadline is None:
            return
        vm.guest_ready = True
        vm.boot_deadline = None
        self.changed(vm)
