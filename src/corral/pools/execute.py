"""Carries out the actions the decisions (:mod:`corral.pools.decide`) return.

Destroys, readiness checks and orphans run in the background; host records and the end of an
interrupted migration are written at once; HA restarts go to the runner together.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterable
from typing import Any, Protocol

from corral.domain.models import ProviderVm, Vm
from corral.domain.states import VmState
from corral.pools.decide import (
    Action,
    AdoptOrphan,
    CheckReady,
    Destroy,
    EndMigration,
    HandOut,
    HaRestart,
    Lost,
    RecordHost,
)
from corral.pools.ledger import Ledger
from corral.pools.stats import Stats
from corral.runner import Work


class CheckReadyFn(Protocol):
    def __call__(self, name: str, *, ask_provider: bool,
                 provider_name: str | None = None) -> Coroutine[Any, Any, None]: ...


class AdoptOrphanFn(Protocol):
    def __call__(self, vm: ProviderVm, provider_name: str, taken_at: float | None) -> Coroutine[Any, Any, None]: ...


class Executor:
    """``check_ready(name, ask_provider=, provider_name=)`` probes a VM; ``hand_out`` gives a ready
    VM to its on-demand request; ``restart`` builds an HA-restart work and ``submit`` queues works
    in the runner; ``adopt_orphan(vm, provider, taken_at)`` records and destroys an orphan."""

    def __init__(self, ledger: Ledger, stats: Stats, spawn: Callable[[Coroutine[Any, Any, object], str], None], *,
                 check_ready: CheckReadyFn, hand_out: Callable[[Vm], None],
                 restart: Callable[[HaRestart], Work], submit: Callable[[list[Work]], None],
                 adopt_orphan: AdoptOrphanFn) -> None:
        self.ledger = ledger
        self.stats = stats
        self.spawn = spawn
        self.check_ready = check_ready
        self.hand_out = hand_out
        self.restart = restart
        self.submit = submit
        self.adopt_orphan = adopt_orphan

    def run(self, actions: Iterable[Action], *, provider: str | None = None, taken_at: float | None = None) -> None:
        """Carry out ``actions``; ``provider`` and ``taken_at`` are the snapshot's, for orphans."""
        restarts: list[Work] = []
        for action in actions:
            if isinstance(action, Destroy):
                self.spawn(self.ledger.destroy(action.vm, reason=action.reason), f"destroy-{action.vm.name}")
            elif isinstance(action, Lost):
                self.stats.vanished += 1
                self.spawn(self.ledger.destroy(action.vm, reason=action.reason), f"destroy-{action.vm.name}")
            elif isinstance(action, CheckReady):
                self.spawn(self.check_ready(action.vm, ask_provider=action.ask_provider,
                                            provider_name=action.provider), f"ready-{action.vm}")
            elif isinstance(action, RecordHost):
                self.ledger.update(action.vm, host=action.host)
            elif isinstance(action, EndMigration):
                self.ledger.move(action.vm.name, (VmState.MIGRATING,), VmState.RUNNING, publish=False,
                                 host=action.host)
            elif isinstance(action, HandOut):
                self.hand_out(action.vm)
            elif isinstance(action, HaRestart):
                restarts.append(self.restart(action))
            elif isinstance(action, AdoptOrphan) and provider is not None:
                self.spawn(self.adopt_orphan(action.vm, provider, taken_at), f"orphan-{action.vm.name}")
        if restarts:
            self.submit(restarts)
