"""``corral bench api``: checkout + return pairs over HTTP, against the HTTP stack's ceiling.

One run measures, each in processes of its own on free loopback ports
(:mod:`corral.bench.api_setups` starts them):

- **baseline**: a raw ASGI app answering the same two requests with canned JSON
  (``api_server baseline``), served by uvicorn with the same settings (uvloop, httptools,
  no access log): what the HTTP stack alone can do on this machine;
- **corral** in each chosen set-up (``--store``, ``--processes``): one ``--role all`` process
  on sqlite; one on a redis-server with persistence; N ``--role api`` processes and one
  ``--role manager`` on such a redis-server. Its pool is big enough not to run dry and full
  at the start of every measurement.

For each client count a separate client process (:mod:`corral.bench.api_client`) holds
that many keep-alive connections (spread round robin over a set-up's API processes), each
doing ``POST /api/v3/vm/<pool>`` then ``DELETE /api/v3/vm/<hostname>`` back to back: first
against the baseline at every client count, then against each set-up in turn. The CPU of
every server-side process (corral's, the redis-server) is read around each client run. Any
error or non-200 answer makes the run not ``ok``. The results, the comparisons, the targets,
the tables and the ``docs/benchmarks.md`` rows are in :mod:`corral.bench.api_report`.
"""

from __future__ import annotations

import json
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from io import StringIO
from pathlib import Path

from corral.bench.api_client import LoadResult
from corral.bench.api_report import ApiBenchResult, ApiRow
from corral.bench.api_setups import POOL, Deployment, Setup, baseline, deploy
from corral.bench.common import Say, counted, counter, process_cpu_seconds, sayer


def _cpu(pids: dict[str, int]) -> dict[str, float | None]:
    return {name: process_cpu_seconds(pid) for name, pid in pids.items()}


def run_client(target: Deployment, clients: int, duration: float, warmup: float) -> LoadResult:
    """One load run in a client process of its own, its connections spread over ``target``'s
    URLs; the CPU every server-side process of ``target`` used meanwhile is added to the
    result. Profiling servers profile the measured part."""
    args = [sys.executable, "-m", "corral.bench.api_client", "--pool", POOL, "--clients", str(clients),
            "--duration", str(duration), "--warmup", str(warmup)]
    for url in target.urls:
        args += ["--url", url]
    pids = target.pids()
    cpu_before = _cpu(pids)
    client = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if target.profiling:
            time.sleep(warmup + 0.2)  # the client's start-up and warm-up
            for server in target.profiling:
                server.process.send_signal(signal.SIGUSR1)
        out, err = client.communicate(timeout=duration + warmup + 120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        for server in target.profiling:
            server.process.send_signal(signal.SIGUSR2)
    cpu_after = _cpu(pids)
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed ({client.returncode}):\n{err[-3000:]}")
    result = LoadResult.from_dict(json.loads(out.strip().splitlines()[-1]))
    used = {name: round(after - before, 3) for name, after in cpu_after.items()
            if after is not None and (before := cpu_before[name]) is not None}
    result.process_cpu_s = used
    checkouts = result.statuses.get("POST 200", 0)  # the pairs of warm-up and measured part
    if len(used) == len(pids) and checkouts:
        result.server_cpu_ms_per_pair = round(sum(used.values()) * 1000.0 / checkouts, 3)
    return result


# -- one run -------------------------------------------------------------------------------


def check_settings(clients: list[int], duration: float, warmup: float, pool_size: int) -> None:
    """Raise ValueError, saying what is wrong, for settings a run cannot use."""
    if not clients or min(clients) < 1 or duration <= 0 or warmup < 0 or pool_size < 1:
        raise ValueError("need client counts >= 1, duration > 0, warmup >= 0 and pool_size >= 1")


def _said(say: Say, load: LoadResult) -> LoadResult:
    say(f"  {load.pairs_per_s:,.0f} pairs/s, p99 {load.p99_ms:.2f} ms, {counted(load.errors, 'error')}")
    return load


def run_api(*, clients: list[int], setups: list[Setup] | None = None, duration: float = 5.0,
            warmup: float = 1.0, pool_size: int = 2000, profile: Path | None = None,
            progress: Say | None = None) -> ApiBenchResult:
    """Measure the baseline at each client count, then each set-up (by default sqlite in one
    process) at each client count."""
    check_settings(clients, duration, warmup, pool_size)
    setups = setups or [Setup("sqlite", 1)]
    say, count = sayer(progress), counter(progress)
    runs = len(clients) * (1 + len(setups))
    rows = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-api-") as tmp:
        directory = Path(tmp)
        with baseline(directory) as base:
            baselines = {}
            for n in clients:
                say(f"baseline: {counted(n, 'client')} for {warmup:g} + {duration:g} s ...")
                baselines[n] = _said(say, run_client(base, n, duration, warmup))
                count(len(baselines), runs)
            for setup in setups:
                say(f"{setup.label}: starting ...")
                with deploy(setup, directory / setup.name, pool_size, profile) as corral:
                    for n in clients:
                        say(f"{setup.name}: waiting for {pool_size} ready VMs ...")
                        say(f"  full after {corral.wait_full(pool_size):.1f} s")
                        say(f"{setup.name}: {counted(n, 'client')} for {warmup:g} + {duration:g} s ...")
                        ours = _said(say, run_client(corral, n, duration, warmup))
                        rows.append(ApiRow(clients=n, corral=ours, baseline=baselines[n], setup=setup.name))
                        count(len(baselines) + len(rows), runs)
    return ApiBenchResult(duration_s=duration, warmup_s=warmup, pool_size=pool_size, rows=rows)


def profile_summary(path: Path, limit: int = 30) -> str:
    """The top of a cProfile dump: by own time, then by cumulative time."""
    out = StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()
