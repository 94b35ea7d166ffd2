"""``corral bench inventory``: the live inventory at vCenter's maximums, against re-polling.

Two systems are measured in one run, each in a fresh process of its own (``python -m
corral.bench.inventory_worker --worker corral|baseline``), so that its resident memory and CPU
are its own. Each process builds the same simulated cluster: ``hosts`` hosts (2,500, vCenter's
published maximum) and ``vms`` powered-on, booted VMs (45,000) spread evenly over the hosts
and over ``pools`` pools, added with the simulator's ``inject_vm`` hook. Then:

- **corral**: a :class:`~corral.inventory.monitor.ProviderMonitor` loads the first full
  snapshot of the change feed into its repository (the *initial load*), then long-polls
  the feed, analyses each answer and publishes the events on an
  :class:`~corral.inventory.bus.EventBus`;
- **baseline**: the old design, :class:`~corral.bench.inventory_baseline.PollingInventory`:
  every ``poll_interval`` seconds a pool of ``threads`` threads fetches every host's VM list
  (one call per host) and diffs it with the previous cycle; the same analyser turns the
  differences into the same events on the same kind of bus. Its initial load is its first
  full cycle. The default interval, 3 s, is oVirt's ``VdsRefreshRate`` (the engine's per-host
  VM status poll).

After the load both processes collect garbage, freeze what is alive and raise the
young-generation threshold, as ``corral serve`` does (``corral.api.app.tune_gc``), and use
uvloop when it is installed, as uvicorn does. Then, in the same process:

1. **idle**: nothing changes for ``idle`` seconds; CPU seconds per wall second. The
   baseline's idle and churn phases start with a poll cycle and last whole poll intervals,
   so that its CPU per second does not depend on where the window falls.
2. **churn**: a driver task wakes every 5 ms and flips the guest of as many random VMs
   as the ``rate`` (2,000 changes/s) asks for by then (``set_guest_ready``: up ↔ booting),
   noting ``time.perf_counter()`` of each change; a driver that fell behind catches up a
   tick's worth at a time, letting the loop run in between, and gives up what is more than
   0.25 s late (so a saturated process shows as a rate not achieved). A bus subscriber takes each
   :class:`~corral.domain.events.VmStateChanged`; its *change-to-event latency* is the time it
   was received minus the time of the change. The driver never changes a VM whose last change
   has not been seen as an event yet (it picks another one): a second flip within one feed
   answer would undo the first and leave nothing to see, so no change coalesces and every
   change must give exactly one event; after the phase the bench waits for the stragglers,
   and a change still unseen then is *missing*. The process's CPU is measured over the phase,
   and the driver's own CPU (its thread's time while it makes changes: the simulator's
   bookkeeping, not the inventory's) is measured too and taken off for the *net* figure
   (the driver's wake-ups themselves, about 1 % of a core at 200 a second, stay in it).
3. **steps** (corral only): the same churn at rising rates (``steps``), ``step_duration``
   seconds each, until one is not *sustained*. A rate is sustained when the driver achieved
   at least 95 % of it, no event went missing, the lag did not grow (p99 of the changes of
   the last third of the step ≤ 2 × the p99 of the first third + 10 ms) and the oldest
   change still unseen when the step ended was at most 250 ms old. The driver, the simulator
   and corral share one process, and so one core: the ceiling found is that of the whole
   process, a lower bound for corral against a remote endpoint.

Resident memory is read from ``/proc/self/status`` (VmRSS, and VmHWM for the peak); it is
the whole process: the interpreter, the simulator with its 45,000 VMs and the inventory.

This module is the parent process, which runs each system's worker and gathers the results
(:func:`run_system`, :func:`run_inventory`). The settings are in
:mod:`corral.bench.inventory_settings`; the results, the targets, the tables and the
``docs/benchmarks.md`` row in :mod:`corral.bench.inventory_report`. The measuring process is
:mod:`corral.bench.inventory_worker`; the baseline is :mod:`corral.bench.inventory_baseline`.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import threading
from dataclasses import asdict
from pathlib import Path

from corral.bench.common import Say, machine, sayer
from corral.bench.inventory_report import InventoryBenchResult, SystemResult
from corral.bench.inventory_settings import InventoryBenchSettings

# -- the parent ----------------------------------------------------------------------------


def _worker_timeout(s: InventoryBenchSettings) -> float:
    phases = s.idle + s.duration + 3 * s.poll_interval + len(s.steps) * (s.step_duration + 5)
    return 180.0 + 3 * phases


def run_system(system: str, settings: InventoryBenchSettings, say: Say) -> SystemResult:
    """Run one system in a fresh process; its progress lines go to ``say``."""
    with tempfile.TemporaryDirectory(prefix="corral-bench-inventory-") as tmp:
        out = Path(tmp) / "result.json"
        args = [sys.executable, "-m", "corral.bench.inventory_worker", "--worker", system,
                "--settings", json.dumps(asdict(settings)), "--result", str(out)]
        process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                                   stdin=subprocess.DEVNULL)
        timer = threading.Timer(_worker_timeout(settings), process.kill)
        timer.start()
        tail: list[str] = []
        try:
            assert process.stderr is not None
            for line in process.stderr:
                line = line.rstrip("\n")
                tail = [*tail[-40:], line]
                say(line)
            process.wait()
        finally:
            timer.cancel()
            if process.poll() is None:
                process.kill()
                process.wait()
        if process.returncode != 0 or not out.exists():
            raise RuntimeError(f"the {system} worker failed ({process.returncode}):\n" + "\n".join(tail))
        return SystemResult.from_dict(json.loads(out.read_text()))


def run_inventory(settings: InventoryBenchSettings, progress: Say | None = None) -> InventoryBenchResult:
    """corral, then the baseline, each in a fresh process."""
    settings.check()
    say = sayer(progress)
    corral = run_system("corral", settings, say)
    baseline = run_system("baseline", settings, say)
    return InventoryBenchResult(settings=settings, corral=corral, baseline=baseline, machine=machine())
