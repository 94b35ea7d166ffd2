"""``corral bench load``: many clients, and slow ones, against real corral processes.

Two parts, in one run, each set-up in processes of its own (:mod:`corral.bench.api_setups`):

- **load**: ``clients`` connections checking out and returning back to back for ``seconds``
  (:mod:`corral.bench.api_client`), against one ``--role all`` process on sqlite and against two
  ``--role api`` processes and one ``--role manager`` on a redis-server. Counted: hostnames
  handed out more than once over the whole run (a returned VM is destroyed, so any is a
  duplicate), answers of 500 and above (the target is none), and checkout p50/p99.
- **slow clients**: one process on sqlite; a steady client (:class:`~corral.bench.load_clients.Steady`:
  ``steady_rate`` checkout + return pairs a second) measures checkout p99 while nothing else
  runs (the quiet figure), then while a holding process (:mod:`corral.bench.load_clients`) keeps
  open, each alone and then all together: ``slow`` clients sending a body one byte a second,
  ``idle`` keep-alive connections, ``sse`` event streams (each following one VM, as a CI job
  waiting for its VM does). Each p99 must stay within 2x of the quiet one.

The server's ``:api:`` section for the slow part holds the clients asked for: streams above
``sse``, connections above them all, keep-alives longer than a phase (so idle connections stay),
and the default body timeout (10 s), which cuts each slow body.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.bench.api import run_client
from corral.bench.api_setups import POOL, Deployment, Setup, deploy
from corral.bench.common import Say, counter, sayer
from corral.bench.load_clients import Held, Steady
from corral.bench.load_report import LoadBenchResult, LoadRow, SlowPhase

SETUPS = (Setup("sqlite", 1), Setup("redis", 2))
STEADY_CONNECTIONS = 4


@dataclass
class LoadBenchSettings:
    seconds: float = 60.0
    clients: int = 200
    pool_size: int = 48000  # back-to-back pairs outrun the refill: the pool must last the run
    redis_pool_size: int = 24000  # two API processes on one Redis serve fewer pairs a second than sqlite
    stores: str = "both"  # sqlite, redis or both
    sse: int = 2000
    idle: int = 500
    slow: int = 20
    slow_interval: float = 1.0
    phase_seconds: float = 10.0
    steady_rate: float = 50.0
    warmup: float = 1.0
    body_timeout: float = 10.0
    alone: bool = True  # each kind of slow client alone too, not only all together
    fill_timeout: float = 900.0

    def check(self) -> None:
        if self.seconds <= 0 or self.clients < 1 or self.pool_size < 1 or self.phase_seconds <= 0:
            raise ValueError("need --seconds > 0, --clients >= 1, --pool-size >= 1 and --phase-seconds > 0")
        if min(self.sse, self.idle, self.slow) < 0 or self.steady_rate <= 0 or self.slow_interval <= 0:
            raise ValueError("need --sse, --idle, --slow >= 0, --steady-rate > 0 and --slow-interval > 0")
        if self.stores not in ("sqlite", "redis", "both"):
            raise ValueError(f"--store must be sqlite, redis or both, got {self.stores!r}")

    @property
    def slow_pool(self) -> int:
        """The slow part's pool: enough for the steady client's phases, refilled as it goes."""
        return min(self.pool_size, max(200, int(self.steady_rate * 4)))

    @property
    def setups(self) -> list[Setup]:
        return [s for s in SETUPS if self.stores in ("both", s.store)]

    def slow_api(self) -> dict[str, Any]:
        """The ``:api:`` section of the slow part's server."""
        streams = self.sse + 100
        return {"max_event_streams": streams, "max_connections": streams + self.idle + self.slow + 1000,
                "keepalive_timeout": max(300.0, self.phase_seconds * 10), "body_timeout": self.body_timeout}

    def phases(self) -> list[tuple[str, int, int, int]]:
        """(name, streams, idle connections, slow bodies) of each phase after the quiet one."""
        out = [("slow bodies", 0, 0, self.slow), ("idle keep-alives", 0, self.idle, 0),
               ("event streams", self.sse, 0, 0)] if self.alone else []
        out.append(("all together", self.sse, self.idle, self.slow))
        return [p for p in out if p[1] or p[2] or p[3]]


# -- the slow clients ------------------------------------------------------------------------------


class Holding:
    """The holding process of :mod:`corral.bench.load_clients`, with its clients open."""

    def __init__(self, url: str, sse: int, idle: int, slow: int, interval: float) -> None:
        args = [sys.executable, "-m", "corral.bench.load_clients", "--url", url, "--sse", str(sse),
                "--idle", str(idle), "--slow", str(slow), "--interval", str(interval)]
        self.process = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                        text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            self.process.wait(60)
            err = self.process.stderr.read() if self.process.stderr is not None else ""
            raise RuntimeError(f"the slow clients did not open ({self.process.returncode}):\n{err[-3000:]}")
        self.opened = json.loads(line)

    def finish(self) -> Held:
        out, err = self.process.communicate(input="", timeout=120)
        if self.process.returncode != 0:
            raise RuntimeError(f"the slow clients failed ({self.process.returncode}):\n{err[-3000:]}")
        return Held.from_dict(json.loads(out.strip().splitlines()[-1]))

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


def steady(url: str, settings: LoadBenchSettings) -> Any:
    client = Steady(url, POOL, rate=settings.steady_rate, connections=STEADY_CONNECTIONS)
    return asyncio.run(client.run(settings.phase_seconds, warmup=settings.warmup))


def run_slow(url: str, settings: LoadBenchSettings, say: Say) -> list[SlowPhase]:
    say(f"slow clients: quiet, steady {settings.steady_rate:g} pairs/s for {settings.phase_seconds:g} s ...")
    phases = [SlowPhase("quiet", 0, 0, 0, steady(url, settings), Held())]
    for name, sse, idle, slow in settings.phases():
        say(f"slow clients: {name} ({sse} streams, {idle} idle, {slow} slow bodies) ...")
        holding = Holding(url, sse, idle, slow, settings.slow_interval)
        try:
            result = steady(url, settings)
            held = holding.finish()
        finally:
            holding.kill()
        phases.append(SlowPhase(name, sse, idle, slow, result, held))
        say(f"  checkout p99 {result.p99_ms:.2f} ms (quiet {phases[0].steady.p99_ms:.2f} ms)")
    return phases


# -- one run ---------------------------------------------------------------------------------------


def wait_full(corral: Deployment, size: int, limit: float) -> float:
    """Seconds until ``corral``'s pool has ``size`` ready VMs (a big pool on Redis takes minutes
    to fill); RuntimeError after ``limit`` seconds."""
    started = time.monotonic()
    while True:
        try:
            corral.wait_full(size)
            return time.monotonic() - started
        except RuntimeError:
            if time.monotonic() - started > limit:
                raise


def run_load_bench(settings: LoadBenchSettings, progress: Say | None = None) -> LoadBenchResult:
    settings.check()
    say, count = sayer(progress), counter(progress)
    rows: list[LoadRow] = []
    total = len(settings.setups) + 1
    with tempfile.TemporaryDirectory(prefix="corral-bench-load-") as tmp:
        directory = Path(tmp)
        for setup in settings.setups:
            say(f"{setup.label}: starting ...")
            size = settings.pool_size if setup.store == "sqlite" else min(settings.pool_size,
                                                                          settings.redis_pool_size)
            with deploy(setup, directory / setup.name, size) as corral:
                say(f"  full after {wait_full(corral, size, settings.fill_timeout):.1f} s; "
                    f"{settings.clients} clients for {settings.warmup:g} + {settings.seconds:g} s ...")
                load = run_client(corral, settings.clients, settings.seconds, settings.warmup)
                rows.append(LoadRow(setup.name, load))
                say(f"  {load.pairs_per_s:,.0f} pairs/s, checkout p99 {load.checkout_p99_ms:.2f} ms, "
                    f"{len(load.duplicates)} duplicates, {load.server_errors} answers >= 500")
            count(len(rows), total)
        say("slow clients: starting sqlite, 1 process ...")
        with deploy(Setup("sqlite", 1), directory / "slow", settings.slow_pool, api=settings.slow_api()) as corral:
            wait_full(corral, settings.slow_pool, settings.fill_timeout)
            phases = run_slow(corral.urls[0], settings, say)
        count(total, total)
    return LoadBenchResult(settings=settings.__dict__.copy(), rows=rows, phases=phases)
