"""``corral bench soak``: one real ``corral serve`` under a steady checkout/return load, watched
for growth.

The server is a child process (``python -m corral.cli serve``) on the simulator and the sqlite
store in a temporary directory, with ``pools`` pools of ``pool_size`` whose refills take
``ready_s`` real seconds (the simulator's create call, clone and boot at a time scale) and a
short history (``data_ttl_minutes``), so that the store reaches a steady size. Once the pools
are full, checkouts leave on a fixed schedule (``rate`` a second, whatever the answers take; a
pool drawn at random, seeded) over ``clients`` keep-alive HTTP connections; each VM is returned
after a random hold: most within ``hold_s``, a ``long_share`` of them between a third of
``long_hold_s`` and ``long_hold_s``, so that some VMs are always out and every pool always
refills (:mod:`corral.bench.soak_load`). Every ``interval_s`` the server is sampled from /proc
(VmRSS, open fds, threads, CPU), the store's files are measured (all of them, and the WAL
alone) and the checkouts completed since are summarised (p50, p99, errors): a
:class:`~corral.bench.soak_report.Sample`. A progress line a minute. At the end the VMs still
held are returned, the server is asked how many VMs are still checked out, it is stopped, and
its log (JSON lines, warnings and above) is read for errors.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from corral.bench.api_setups import Server
from corral.bench.common import Say, free_port, process_cpu_seconds, sayer
from corral.bench.soak_load import MAX_ERROR_SAMPLES, REQUEST_TIMEOUT_S, Load, Tally, pool_names, schedule
from corral.bench.soak_report import Sample, SoakResult, latency_ms
from corral.bench.soak_settings import SoakSettings, progress_every_s
from corral.providers.sim.settings import SimLatency

FILL_TIMEOUT_S = 120.0
STORE_FILE = "corral.db"


# -- the server -----------------------------------------------------------------------------


def time_scale(settings: SoakSettings) -> float:
    """The simulator's time scale that makes create call + clone + boot take ``ready_s``."""
    latency = SimLatency()
    return settings.ready_s / (latency.create_call + latency.create_per_vm + latency.boot)


def write_config(directory: Path, settings: SoakSettings) -> Path:
    """The server's configuration in ``directory``: the simulator, the pools, sqlite there."""
    doc: dict[str, Any] = {
        ":providers": {":sim": {
            "provider_class": "sim",
            "time_scale": time_scale(settings),
            "hosts": 8,
            "concurrency": 64,
            "template_defaults": {"cpus": 1, "memory_mb": 64},
            "vm_cpu_load": 0.005,
            "seed": settings.seed,
        }},
        ":store": {"type": "sqlite", "path": str(directory / STORE_FILE)},
        ":scheduling": {"vcpu_load": 0.005},
        ":config": {"site_name": "corral soak", "task_limit": 20, "domain": "soak.example", "check_interval": 5,
                    "data_ttl": settings.data_ttl_minutes / 60},
        ":pools": [{"name": name, "template": f"templates/{name}", "size": settings.pool_size, "provider": "sim"}
                   for name in pool_names(settings)],
    }
    path = directory / "soak.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class Probe:
    """What /proc says of a process."""

    rss_kb: int
    fds: int
    threads: int
    cpu_s: float


def probe(pid: int) -> Probe:
    """Resident memory, open descriptors, threads and CPU seconds of process ``pid`` (Linux)."""
    fields: dict[str, str] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        fields[key] = value.strip()
    fds = len(list(Path(f"/proc/{pid}/fd").iterdir()))
    return Probe(rss_kb=int(fields["VmRSS"].split()[0]), fds=fds, threads=int(fields["Threads"]),
                 cpu_s=process_cpu_seconds(pid) or 0.0)


def store_bytes(directory: Path) -> tuple[int, int]:
    """The sqlite store's files together (the database, its WAL and shared memory), and the WAL alone."""
    total = wal = 0
    for path in directory.glob(f"{STORE_FILE}*"):
        try:
            size = path.stat().st_size
        except OSError:
            continue  # a file sqlite removed meanwhile
        total += size
        if path.name.endswith("-wal"):
            wal = size
    return total, wal


def log_problems(log: Path) -> tuple[dict[str, int], list[str]]:
    """The server's log records (JSON lines) at warning and above, counted by level, and the
    first few error messages."""
    counts = {"warning": 0, "error": 0, "critical": 0}
    errors: list[str] = []
    for line in log.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line)
            level = str(record["level"])
        except (ValueError, KeyError, TypeError):
            continue  # not a log record (an interpreter's message at exit, say)
        if level in counts:
            counts[level] += 1
            if level != "warning" and len(errors) < MAX_ERROR_SAMPLES:
                errors.append(f"{record.get('logger', '')}: {record.get('msg', '')}"[:300])
    return counts, errors


def status(url: str) -> dict[str, Any]:
    answer = httpx.get(f"{url}/api/v3/status", params={"view": "queue,pools"}, timeout=REQUEST_TIMEOUT_S)
    answer.raise_for_status()
    body: dict[str, Any] = answer.json()
    return body


def wait_full(server: Server, pools: list[str], size: int) -> float:
    """Wait until every pool has ``size`` ready VMs; the seconds it took."""
    started = time.monotonic()
    ready: dict[str, int] = {}
    while time.monotonic() - started < FILL_TIMEOUT_S:
        if server.process.poll() is not None:
            raise RuntimeError(f"the server exited with {server.process.returncode}:\n"
                               f"{server.log.read_text(errors='replace')[-3000:]}")
        try:
            ready = {name: int(row["ready"]) for name, row in status(server.url)["pools"].items()}
        except (httpx.HTTPError, KeyError, ValueError):
            ready = {}
        if all(ready.get(name, 0) >= size for name in pools):
            return time.monotonic() - started
        time.sleep(0.1)
    raise RuntimeError(f"the pools did not fill within {FILL_TIMEOUT_S:.0f} s: {ready}")


# -- the run ---------------------------------------------------------------------------------


async def drive(settings: SoakSettings, server: Server, directory: Path, say: Say) -> tuple[list[Sample], Tally]:
    """Run the load for ``settings.run_s`` seconds against ``server``, sampling it; then give
    back every VM still held."""
    tally = Tally()
    samples: list[Sample] = []
    pid = server.process.pid
    started = time.monotonic()
    load = Load(server.url, settings.clients, tally, settings.warmup_s, started)

    async def sampler() -> None:
        next_line = progress_every_s(settings.run_s)
        since_line: list[float] = []
        errors_at_line = 0
        for k in range(1, round(settings.run_s / settings.interval_s) + 1):
            await asyncio.sleep(max(0.0, started + k * settings.interval_s - time.monotonic()))
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited with {server.process.returncode}:\n"
                                   f"{server.log.read_text(errors='replace')[-3000:]}")
            now = time.monotonic() - started
            seen = probe(pid)
            ms, errors, empty = tally.take_interval()
            since_line += ms
            store, wal = store_bytes(directory)
            samples.append(Sample(t_s=round(now, 3), rss_kb=seen.rss_kb, fds=seen.fds, threads=seen.threads,
                                  store_bytes=store, wal_bytes=wal, cpu_s=round(seen.cpu_s, 2), checkouts=len(ms),
                                  p50_ms=round(latency_ms(ms, 50), 3), p99_ms=round(latency_ms(ms, 99), 3),
                                  errors=errors, empty=empty))
            if now >= next_line - settings.interval_s / 2:
                last = samples[-1]
                say(f"{_clock(now)} of {_clock(settings.run_s)}: {tally.checkouts:,} checkouts, "
                    f"{len(load.held)} out, RSS {last.rss_kb / 1024:.1f} MB, {last.fds} fds, "
                    f"{last.threads} threads, store {last.store_bytes / 1024 / 1024:.2f} MB, "
                    f"p99 {latency_ms(since_line, 99):.1f} ms, errors {tally.errors - errors_at_line}")
                since_line, errors_at_line = [], tally.errors
                next_line += progress_every_s(settings.run_s)

    sampling = asyncio.create_task(sampler())
    try:
        for order in schedule(settings):
            if sampling.done():
                break
            delay = started + order.at_s - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            load.checkout(order)
        await sampling  # the last sample is taken at the end of the run; raises when the server died
        await load.return_all()
    finally:
        sampling.cancel()
        await load.stop()
    return samples, tally


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}:{int(seconds % 60):02d}"


def run_soak(settings: SoakSettings, progress: Say | None = None) -> SoakResult:
    settings.check()
    say = sayer(progress)
    with tempfile.TemporaryDirectory(prefix="corral-soak-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, settings)
        port = free_port()
        server = Server("corral", [sys.executable, "-m", "corral.cli", "serve", "--config", str(config),
                                   "--port", str(port), "--log-level", "warning", "--log-format", "json"],
                        directory, port=port)
        try:
            server.wait_listening()
            filled = wait_full(server, pool_names(settings), settings.pool_size)
            say(f"corral serve (pid {server.process.pid}) filled {settings.pools} pools of {settings.pool_size} "
                f"in {filled:.1f} s; {settings.minutes:g} minutes of load at {settings.rate:g} checkouts/s")
            samples, tally = asyncio.run(drive(settings, server, directory, say))
            end = status(server.url)
        finally:
            server.stop()
        logged, log_errors = log_problems(server.log)
    queue = end.get("queue", {})
    measured = sorted(tally.measured_ms)
    return SoakResult(
        settings=settings, samples=samples, checkouts=tally.checkouts, returns=tally.returns,
        errors=tally.errors, empty=tally.empty, p50_ms=latency_ms(measured, 50), p99_ms=latency_ms(measured, 99),
        max_ms=measured[-1] if measured else 0.0,
        server={"pid": server.process.pid, "running": int(queue.get("running", 0)),
                "ready": int(queue.get("ready", 0)), "pending": int(queue.get("pending", 0)),
                "exit_code": server.process.returncode, "fill_s": round(filled, 2), "logged": logged,
                "log_errors": log_errors},
        error_samples=tally.error_samples)

