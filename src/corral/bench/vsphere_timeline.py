"""Where a VM's time goes in ``corral bench vsphere``: one timeline per VM, for corral's runs and
the floor alike, and the mean of each step.

corral's runs are timed from outside the provider: :class:`Timeline` wraps the provider's
``create_vms`` (one VM per call on vSphere), its session's ``call`` and its feed's
``wait_task`` on the instance, and the readiness probe; the store gives the move to ready.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from corral.domain.models import VmSpec
from corral.providers.base import CreateResult

Probe = Callable[[str, int, float], Awaitable[bool]]


@dataclass
class VmTimes:
    """One VM's moments, in seconds on ``time.perf_counter``; None when it never got there."""

    name: str
    slot: float | None = None  # its create call started (the floor: a thread took it)
    clone_call: float | None = None  # CloneVM_Task returned
    cloned: float | None = None  # the clone's task seen finished
    settled: float | None = None  # the create call returned: on its host, annotated, powered on
    task_waits: float = 0.0  # of the settling: waiting for its tasks to be seen finished
    probed: float | None = None  # the readiness probe connected
    ready: float | None = None  # ready in the store (the floor: probed)
    error: str | None = None


STEPS = {  # step: (from, to), means over the VMs that have both
    "clone_call_s": ("slot", "clone_call"),
    "clone_wait_s": ("clone_call", "cloned"),
    "settle_s": ("cloned", "settled"),
    "probe_s": ("settled", "probed"),
    "store_s": ("probed", "ready"),
    "vm_s": ("slot", "ready"),
}


def mean_steps(vms: list[VmTimes]) -> dict[str, float]:
    """The mean seconds of each step of :data:`STEPS`, and ``settle_waits_s``, the part of the
    settling spent waiting for tasks."""
    out = {}
    for step, (start, end) in STEPS.items():
        spans = [b - a for v in vms if (a := getattr(v, start)) is not None and (b := getattr(v, end)) is not None]
        out[step] = round(sum(spans) / len(spans), 4) if spans else 0.0
    settled = [v.task_waits for v in vms if v.settled is not None]
    out["settle_waits_s"] = round(sum(settled) / len(settled), 4) if settled else 0.0
    return out


def slot_use(vms: list[VmTimes], slots: int, wall_s: float) -> float:
    """The share of ``slots`` × ``wall_s`` the create calls held a slot (slot to settled)."""
    held = sum(v.settled - v.slot for v in vms if v.slot is not None and v.settled is not None)
    return round(held / (slots * wall_s), 3) if slots and wall_s > 0 else 0.0


class Timeline:
    """The :class:`VmTimes` of every VM corral's providers create, by name, and the create calls
    under way in them all (``in_flight``, ``peak``)."""

    def __init__(self) -> None:
        self.vms: dict[str, VmTimes] = {}
        self.in_flight = 0
        self.peak = 0
        self._current: ContextVar[VmTimes | None] = ContextVar("vm", default=None)

    def watch(self, provider: Any) -> None:
        """Time ``provider``'s create calls, the clone call and the task waits in them."""
        create, call, wait_task = provider.create_vms, provider.session.call, provider.feed.wait_task

        async def timed_create(host: str, specs: list[VmSpec]) -> list[CreateResult]:
            vm = self.vms.setdefault(specs[0].name, VmTimes(specs[0].name)) if len(specs) == 1 else None
            token = self._current.set(vm)
            if vm is not None:
                vm.slot = time.perf_counter()
            self.in_flight += 1
            self.peak = max(self.peak, self.in_flight)
            try:
                results = await create(host, specs)
            finally:
                self.in_flight -= 1
                self._current.reset(token)
            if vm is not None:
                vm.settled = time.perf_counter()
                vm.error = None if results[0].ok else results[0].error
            return results

        async def timed_call(label: str, fn: Callable[..., Any], *args: Any) -> Any:
            result = await call(label, fn, *args)
            vm = self._current.get()
            if vm is not None and label == "CloneVM_Task":
                vm.clone_call = time.perf_counter()
            return result

        async def timed_wait(task: Any, timeout: float) -> Any:
            began = time.perf_counter()
            outcome = await wait_task(task, timeout)
            vm = self._current.get()
            if vm is not None:
                if vm.cloned is None:
                    vm.cloned = time.perf_counter()
                else:
                    vm.task_waits += time.perf_counter() - began
            return outcome

        provider.create_vms = timed_create
        provider.session.call = timed_call
        provider.feed.wait_task = timed_wait

    def probe(self, probe: Probe) -> Probe:
        """``probe``, noting when it first reached each VM (its address is the VM's name)."""
        async def timed(address: str, port: int, timeout: float) -> bool:
            ok = await probe(address, port, timeout)
            vm = self.vms.get(address)
            if ok and vm is not None and vm.probed is None:
                vm.probed = time.perf_counter()
            return ok

        return timed

    def readied(self, ready_at: dict[str, float], offset: float) -> None:
        """The store's ``ready_at`` (unix seconds) of each VM, on ``perf_counter`` by ``offset``
        (``time.time() - time.perf_counter()`` taken at the start)."""
        for name, at in ready_at.items():
            vm = self.vms.get(name)
            if vm is not None:
                vm.ready = at - offset
