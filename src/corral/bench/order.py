"""``corral bench order``: how long a pool emptied while others refill waits for its first VM.

One VM per create call (the simulator's ``bulk_calls`` off, as vSphere clones), ``task_limit``
(10) calls in flight. Two pools of ``busy_size`` (50) VMs are raised from empty at t0, so their
refills fill the runner's queue; once they are queued, every VM of a third, full pool of
``empty_size`` (5) VMs is checked out. Measured from that checkout: the wait until the emptied
pool's first VM is pending (its first create call leaves, read from the simulator's call log)
and until it is ready again, with ``refill_order: need`` and with ``arrival`` (first come, first
served, the order before), each on a fresh manager and cluster, alternating, ``repeats`` (3)
times; the medians count. Latencies are the simulator's × ``time_scale``; the table gives real
seconds and the same in simulated seconds (÷ ``time_scale``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from corral.bench.common import Say, append_row, quiet_logs, sayer, until
from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider, SimSettings
from corral.runner import Priority, RunnerSettings
from corral.store.sqlite import SqliteStore

ORDERS = ("need", "arrival")
WAIT_LIMIT_S = 120.0  # a run this long has hung


@dataclass(frozen=True)
class OrderSettings:
    busy_size: int = 50
    empty_size: int = 5
    task_limit: int = 10
    time_scale: float = 0.1
    repeats: int = 3

    def check(self) -> None:
        if min(self.busy_size, self.empty_size, self.task_limit, self.repeats) < 1 or self.time_scale <= 0:
            raise ValueError("sizes, task_limit and repeats must be at least 1, time_scale above 0")

    def sim(self) -> SimSettings:
        return SimSettings.model_validate({
            "time_scale": self.time_scale, "hosts": 8, "bulk_calls": False, "concurrency": 64,
            "template_defaults": {"cpus": 1, "memory_mb": 1024},
            "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0},
        })


@dataclass
class OrderRun:
    order: str
    first_pending_s: float  # from the checkout to the emptied pool's first create call
    first_ready_s: float  # ... to its first VM ready again
    queued_ahead: int  # refills of the other pools queued when the pool was emptied


@dataclass
class OrderResult:
    settings: OrderSettings
    runs: list[OrderRun] = field(default_factory=list)

    def median(self, order: str, what: str) -> float:
        return statistics.median(getattr(r, what) for r in self.runs if r.order == order)

    @property
    def ok(self) -> bool:
        return self.median("need", "first_pending_s") < self.median("arrival", "first_pending_s")

    def as_dict(self) -> dict[str, Any]:
        return {"settings": dataclasses.asdict(self.settings), "runs": [dataclasses.asdict(r) for r in self.runs],
                "median": {o: {w: round(self.median(o, w), 4) for w in ("first_pending_s", "first_ready_s")}
                           for o in ORDERS}, "ok": self.ok}

    def tables(self) -> list[Any]:
        return [self.report()]

    def _cell(self, order: str, what: str) -> str:
        med = self.median(order, what)
        runs = ", ".join(f"{getattr(r, what):.3f}" for r in self.runs if r.order == order)
        return f"{med:.3f} ({runs}) = {med / self.settings.time_scale:.1f} sim s"

    def report(self) -> str:
        s = self.settings
        ahead = max(r.queued_ahead for r in self.runs)
        lines = [f"a pool of {s.empty_size} emptied while 2 pools of {s.busy_size} refill ({ahead} refills queued), "
                 f"task_limit {s.task_limit}, one VM per call, time_scale {s.time_scale}"]
        for order in ORDERS:
            lines.append(f"  {order:8} first pending {self._cell(order, 'first_pending_s')}; "
                         f"first ready {self._cell(order, 'first_ready_s')}")
        return "\n".join(lines)

    def summary(self) -> str:
        pending = {o: self.median(o, "first_pending_s") for o in ORDERS}
        return (f"the emptied pool's first VM was pending after {pending['need']:.3f} s in order of need, "
                f"{pending['arrival']:.3f} s first come first served")

    def append_markdown(self, path: Path, command: str) -> None:
        s = self.settings
        row = (f"| {time.strftime('%Y-%m-%d')} | {s.busy_size} + {s.busy_size} | {s.empty_size} | {s.task_limit} | "
               f"{s.time_scale} | {max(r.queued_ahead for r in self.runs)} | "
               + " | ".join(self._cell(o, w) for w in ("first_pending_s", "first_ready_s") for o in ORDERS)
               + f" | `{command}` |\n")
        append_row(path, ORDER_TABLE_HEADER, row, ORDER_INTRO)


ORDER_TABLE_HEADER = (
    "| date | refilling pools | emptied pool | task_limit | time_scale | refills queued | first pending s, need "
    "(runs) | first pending s, arrival (runs) | first ready s, need (runs) | first ready s, arrival (runs) | "
    "command |\n|---|---|---|---|---|---|---|---|---|---|---|\n"
)
ORDER_INTRO = "## `corral bench order`: a pool emptied while others refill\n\n"


def run_order(settings: OrderSettings, progress: Say | None = None) -> OrderResult:
    settings.check()
    say = sayer(progress)
    result = OrderResult(settings)
    with quiet_logs():
        for i in range(settings.repeats):
            for order in ORDERS if i % 2 == 0 else reversed(ORDERS):
                run = asyncio.run(one_run(settings, order))
                say(f"{order}: first pending after {run.first_pending_s:.3f} s, ready after {run.first_ready_s:.3f} s")
                result.runs.append(run)
    return result


async def one_run(s: OrderSettings, order: str) -> OrderRun:
    pools = [Pool(name=n, template=f"tmpl-{n}", size=0, provider="sim") for n in ("busy-a", "busy-b")]
    pools.append(Pool(name="emptied", template="tmpl-emptied", size=s.empty_size, provider="sim"))
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmp:
        store = SqliteStore(Path(tmp) / "bench.db")
        provider = SimProvider("sim", s.sim())
        manager = PoolManager(pools, {"sim": provider}, store, ManagerSettings(
            task_limit=s.task_limit, check_interval=1.0, feed_timeout=5.0, reconcile_interval=3600.0,
            runner=RunnerSettings(refill_order=order)))
        await manager.start()
        try:
            def ready(pool: str) -> int:
                return store.counts().get(pool, {}).get(VmState.READY, 0)

            await until(lambda: ready("emptied") == s.empty_size, "the pool to fill", WAIT_LIMIT_S, 0.005)
            for name in ("busy-a", "busy-b"):
                manager.set_pool_size(name, s.busy_size)
            await until(lambda: manager.runner.queue.by_class[Priority.REFILL] >= s.busy_size,
                        "the refills to queue", WAIT_LIMIT_S)
            ahead = manager.runner.queue.by_class[Priority.REFILL]
            sent_before = len(provider.call_log)
            emptied_at, emptied_perf = time.monotonic(), time.perf_counter()
            if manager.checkout(["emptied"] * s.empty_size) is None:
                raise RuntimeError("the checkout found the pool empty")

            def first_call() -> float | None:
                for call in list(provider.call_log)[sent_before:]:
                    if call.op == "create" and any((vm := store.get_vm(n)) is not None and vm.pool == "emptied"
                                                   for n in call.names):
                        return call.at
                return None

            await until(lambda: first_call() is not None, "the emptied pool's first create", WAIT_LIMIT_S)
            pending_at = first_call()
            assert pending_at is not None
            ready_at = await until(lambda: ready("emptied") > 0, "the emptied pool's first ready VM", WAIT_LIMIT_S)
            return OrderRun(order, pending_at - emptied_at, ready_at - emptied_perf, ahead)
        finally:
            await manager.stop()
            store.close()
