"""The executor: each action of a decision becomes one effect."""

from __future__ import annotations

from typing import Any

import pytest

from corral.domain.models import Pool, ProviderVm, Vm
from corral.domain.states import VmState
from corral.pools import decide
from corral.pools.execute import Executor
from corral.pools.stats import Stats

POOL = Pool("ha", "tpl", 1, "sim", ha=True)


def vm(name: str = "v1", state: VmState = VmState.READY) -> Vm:
    return Vm(name=name, pool="ha", template="tpl", state=state, provider="sim", host="h1")


class Ledger:
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    async def destroy(self, vm: Vm, *, reason: str | None = None) -> bool:
        self.calls.append(("destroy", vm.name, reason))
        return True

    def update(self, name: str, **fields: object) -> None:
        self.calls.append(("update", name, fields))

    def move(self, name: str, expected: tuple[VmState, ...], new: VmState, *, publish: bool = True,
             **fields: object) -> None:
        self.calls.append(("move", name, expected, new, publish, fields))


class Effects:
    def __init__(self) -> None:
        self.ledger = Ledger()
        self.stats = Stats()
        self.spawned: list[str] = []
        self.done: list[tuple[Any, ...]] = []
        self.executor = Executor(self.ledger, self.stats, self.spawn,  # type: ignore[arg-type]
                                 check_ready=self.check_ready,
                                 hand_out=lambda v: self.done.append(("hand_out", v.name)),
                                 restart=lambda a: f"work-{a.vm.name}-{a.avoid}",  # type: ignore[arg-type,return-value]
                                 submit=lambda works: self.done.append(("submit", works)),
                                 adopt_orphan=self.adopt)

    def spawn(self, coro: Any, name: str) -> None:
        self.spawned.append(name)
        try:
            coro.send(None)
        except StopIteration:
            pass

    async def check_ready(self, name: str, *, ask_provider: bool, provider_name: str | None = None) -> None:
        self.done.append(("check_ready", name, ask_provider, provider_name))

    async def adopt(self, seen: ProviderVm, provider: str | None, taken_at: float | None) -> None:
        self.done.append(("adopt", seen.name, provider, taken_at))


CASES = [
    ("destroy", [decide.Destroy(vm(), "why")], ["destroy-v1"], [("destroy", "v1", "why")], [], 0),
    ("lost: counted and destroyed", [decide.Lost(vm(), "gone")], ["destroy-v1"], [("destroy", "v1", "gone")], [], 1),
    ("check ready", [decide.CheckReady("v1", ask_provider=True, provider="sim")], ["ready-v1"], [],
     [("check_ready", "v1", True, "sim")], 0),
    ("record host", [decide.RecordHost("v1", "h2")], [], [("update", "v1", {"host": "h2"})], [], 0),
    ("end a migration, silently", [decide.EndMigration(vm(state=VmState.MIGRATING), "h2")], [],
     [("move", "v1", (VmState.MIGRATING,), VmState.RUNNING, False, {"host": "h2"})], [], 0),
    ("hand out", [decide.HandOut(vm())], [], [], [("hand_out", "v1")], 0),
    ("HA restarts go to the runner together",
     [decide.HaRestart(vm("x"), POOL, "h1"), decide.HaRestart(vm("y"), POOL, "h1")], [], [],
     [("submit", ["work-x-h1", "work-y-h1"])], 0),
    ("adopt an orphan", [decide.AdoptOrphan(ProviderVm("o", "h1", pool="ha"))], ["orphan-o"], [],
     [("adopt", "o", "sim", 7.0)], 0),
]


@pytest.mark.parametrize(("actions", "spawned", "ledger", "done", "vanished"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])
def test_each_action_has_its_effect(actions: list[decide.Action], spawned: list[str], ledger: list[tuple[Any, ...]],
                                    done: list[tuple[Any, ...]], vanished: int) -> None:
    effects = Effects()
    effects.executor.run(actions, provider="sim", taken_at=7.0)
    assert effects.spawned == spawned
    assert effects.ledger.calls == ledger
    assert effects.done == done
    assert effects.stats.vanished == vanished
