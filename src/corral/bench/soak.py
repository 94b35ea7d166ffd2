"""``corral bench soak``: one real ``corral serve`` under a steady checkout/return load, watched
for growth.

The server is a child process (``python -m corral.cli serve``) on the simulator and the sqlite
store in a temporary directory, with ``pools`` pools of ``pool_size`` whose refills take
``ready_s`` real seconds (the simulator's create call, clone and boot at a time scale) and a
short history (``data_ttl_minutes``), so that the store reaches a steady size. Once the pools
are full, checkouts leave on a fixed schedule (``rate`` a second, whatever the answers take;
a pool drawn at random, seeded) over ``clients`` keep-alive HTTP connections; each VM is
returned after a random hold: most within ``hold_s``, a ``long_share`` of them between a third
of ``long_hold_s`` and ``long_hold_s``, so that some VMs are always out and every pool always
refills. Every ``interval_s`` the server is sampled from /proc (VmRSS, open fds, threads, CPU),
the store's files are measured and the checkouts completed since are summarised (p50, p99,
errors): a :class:`~corral.bench.soak_report.Sample`. A progress line a minute. At the end
the VMs still held are returned, the server is asked how many VMs are still checked out, and
it is stopped.
"""

from __future__ import annotations

import asyncio
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from corral.bench.api_setups import Server
from corral.bench.common import Say, free_port, process_cpu_seconds, sayer
from corral.bench.soak_report import Sample, SoakResult, latency_ms
from corral.bench.soak_settings import SoakSettings, progress_every_s
from corral.providers.sim.settings import SimLatency

FILL_TIMEOUT_S = 120.0
REQUEST_TIMEOUT_S = 30.0
MAX_ERROR_SAMPLES = 5
STORE_FILE = "corral.db"


# -- the server -----------------------------------------------------------------------------


def pool_names(settings: SoakSettings) -> list[str]:
    return [f"soak-{i}" for i in range(1, settings.pools + 1)]


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


def store_bytes(directory: Path) -> int:
    """The sqlite store's files together: the database, its WAL and shared memory."""
    total = 0
    for path in directory.glob(f"{STORE_FILE}*"):
        try:
            total += path.stat().st_size
        except OSError:
            pass  # a file sqlite removed meanwhile
    return total


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


# -- the load ------------------------------------------------------------------------------


@dataclass
class Tally:
    """The checkouts and returns so far, and those of the current sampling interval."""

    checkouts: int = 0
    returns: int = 0
    errors: int = 0
    empty: int = 0
    error_samples: list[str] = field(default_factory=list)
    measured_ms: list[float] = field(default_factory=list)  # after the warm-up, for the run's percentiles
    interval_ms: list[float] = field(default_factory=list)
    interval_errors: int = 0
    interval_empty: int = 0

    def error(self, what: str, *, empty: bool = False) -> None:
        self.errors += 1
        self.interval_errors += 1
        if empty:
            self.empty += 1
            self.interval_empty += 1
        if len(self.error_samples) < MAX_ERROR_SAMPLES:
            self.error_samples.append(what)

    def take_interval(self) -> tuple[list[float], int, int]:
        taken = (self.interval_ms, self.interval_errors, self.interval_empty)
        self.interval_ms, self.interval_errors, self.interval_empty = [], 0, 0
        return taken


@dataclass(frozen=True)
class Order:
    """One scheduled checkout: when (seconds after the start), from which pool, held how long."""

    at_s: float
    pool: str
    hold_s: float


def schedule(settings: SoakSettings) -> list[Order]:
    """Every checkout of the run, from the seed: one every 1/``rate`` s, a pool at random, a hold
    of up to ``hold_s``, or for a ``long_share`` between a third of ``long_hold_s`` and it."""
    rng = random.Random(settings.seed)
    pools = pool_names(settings)
    count = int(settings.run_s * settings.rate)
    orders = []
    for k in range(count):
        if rng.random() < settings.long_share:
            hold = rng.uniform(settings.long_hold_s / 3, settings.long_hold_s)
        else:
            hold = rng.uniform(0, settings.hold_s)
        orders.append(Order(k / settings.rate, rng.choice(pools), hold))
    return orders


class Load:
    def __init__(self, client: httpx.AsyncClient, tally: Tally, warmup_s: float, started: float) -> None:
        self.client = client
        self.tally = tally
        self.warmup_s = warmup_s
        self.started = started
        self.held: dict[str, str] = {}  # hostname: pool, the VMs out now

    async def give_back(self, hostname: str) -> None:
        try:
            answer = await self.client.delete(f"/api/v3/vm/{hostname}")
        except httpx.HTTPError as exc:
            self.tally.error(f"DELETE {hostname}: {type(exc).__name__}: {exc}")
            return
        if answer.status_code == 200:
            self.held.pop(hostname, None)
            self.tally.returns += 1
        else:
            self.tally.error(f"DELETE {hostname} {answer.status_code}: {answer.text[:200]}")

    async def one(self, order: Order) -> None:
        sent = time.perf_counter()
        try:
            answer = await self.client.post(f"/api/v3/vm/{order.pool}")
        except httpx.HTTPError as exc:
            self.tally.error(f"POST {order.pool}: {type(exc).__name__}: {exc}")
            return
        took_ms = (time.perf_counter() - sent) * 1000.0
        if answer.status_code != 200:
            self.tally.error(f"POST {order.pool} {answer.status_code}: {answer.text[:200]}",
                             empty=answer.status_code == 503)
            return
        try:
            hostname = str(answer.json()[order.pool]["hostname"])
        except (ValueError, KeyError, TypeError):
            self.tally.error(f"POST {order.pool} 200 without a hostname: {answer.text[:200]}")
            return
        self.held[hostname] = order.pool
        self.tally.checkouts += 1
        self.tally.interval_ms.append(took_ms)
        if time.monotonic() - self.started >= self.warmup_s:
            self.tally.measured_ms.append(took_ms)
        await asyncio.sleep(order.hold_s)
        await self.give_back(hostname)


async def drive(settings: SoakSettings, server: Server, directory: Path, say: Say) -> tuple[list[Sample], Tally]:
    """Run the load for ``settings.run_s`` seconds against ``server``, sampling it; then give
    back every VM still held."""
    tally = Tally()
    samples: list[Sample] = []
    pid = server.process.pid
    limits = httpx.Limits(max_connections=settings.clients, max_keepalive_connections=settings.clients)
    async with httpx.AsyncClient(base_url=server.url, limits=limits, timeout=REQUEST_TIMEOUT_S) as client:
        started = time.monotonic()
        load = Load(client, tally, settings.warmup_s, started)
        tasks: set[asyncio.Task[None]] = set()

        async def sampler() -> None:
            next_line = progress_every_s(settings.run_s)
            since_line: list[float] = []
            errors_at_line = 0
            while True:
                await asyncio.sleep(settings.interval_s - (time.monotonic() - started) % settings.interval_s)
                if server.process.poll() is not None:
                    raise RuntimeError(f"the server exited with {server.process.returncode}:\n"
                                       f"{server.log.read_text(errors='replace')[-3000:]}")
                now = time.monotonic() - started
                seen = probe(pid)
                ms, errors, empty = tally.take_interval()
                since_line += ms
                samples.append(Sample(t_s=round(now, 3), rss_kb=seen.rss_kb, fds=seen.fds, threads=seen.threads,
                                      store_bytes=store_bytes(directory), cpu_s=seen.cpu_s, checkouts=len(ms),
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
                task = asyncio.create_task(load.one(order))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
            remaining = started + settings.run_s - time.monotonic()
            if remaining > 0 and not sampling.done():
                await asyncio.wait([sampling], timeout=remaining)
        finally:
            if sampling.done():
                sampling.result()  # the server died: say so
            sampling.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for hostname in list(load.held):  # the VMs still held go back now
            await load.give_back(hostname)
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
                                   "--port", str(port), "--log-level", "warning"], directory, port=port)
        try:
            server.wait_listening()
            filled = wait_full(server, pool_names(settings), settings.pool_size)
            say(f"corral serve (pid {server.process.pid}) filled {settings.pools} pools of {settings.pool_size} "
                f"in {filled:.1f} s; {settings.minutes:g} minutes of load at {settings.rate:g} checkouts/s")
            samples, tally = asyncio.run(drive(settings, server, directory, say))
            end = status(server.url)
        finally:
            server.stop()
    queue = end.get("queue", {})
    measured = sorted(tally.measured_ms)
    return SoakResult(
        settings=settings, samples=samples, checkouts=tally.checkouts, returns=tally.returns,
        errors=tally.errors, empty=tally.empty, p50_ms=latency_ms(measured, 50), p99_ms=latency_ms(measured, 99),
        max_ms=measured[-1] if measured else 0.0,
        server={"pid": server.process.pid, "running": int(queue.get("running", 0)),
                "ready": int(queue.get("ready", 0)), "pending": int(queue.get("pending", 0)),
                "exit_code": server.process.returncode, "fill_s": round(filled, 2)},
        error_samples=tally.error_samples)

