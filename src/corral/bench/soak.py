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
import json
import random
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from corral.bench.api_client import HttpError, host_port, read_response
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

    def checked_out(self, ms: float, *, measured: bool) -> None:
        """A checkout answered with a VM after ``ms``; ``measured``: after the warm-up."""
        self.checkouts += 1
        self.interval_ms.append(ms)
        if measured:
            self.measured_ms.append(ms)

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


class Connection:
    """One keep-alive HTTP/1.1 connection to the server (opened on first use, again after an error)."""

    def __init__(self, url: str) -> None:
        self.host, self.port = host_port(url)
        self.host_header = f"{self.host}:{self.port}".encode()
        self.streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def request(self, method: str, path: str) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.streams
        try:
            writer.write(b"%s %s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n"
                         % (method.encode(), path.encode(), self.host_header))
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await read_response(reader)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


@dataclass(frozen=True)
class Job:
    """A request waiting for a connection: a checkout (``order``) or a return (``hostname``), and
    when it was asked for (monotonic), from which its latency counts."""

    asked: float
    order: Order | None = None
    hostname: str | None = None


class Load:
    """Checkouts and returns carried by ``clients`` connections, each taking the next request
    from one queue; a checked-out VM's return is queued when its hold ends, or at once when the
    run is over (:meth:`return_all`). A checkout's latency counts from when it was due, so time
    spent waiting for a free connection counts too."""

    def __init__(self, url: str, clients: int, tally: Tally, warmup_s: float, started: float) -> None:
        self.tally = tally
        self.warmup_s = warmup_s
        self.started = started
        self.queue: asyncio.Queue[Job] = asyncio.Queue()
        self.held: dict[str, asyncio.TimerHandle | None] = {}  # hostname: its return's timer, the VMs out now
        self.connections = [Connection(url) for _ in range(clients)]
        self.workers = [asyncio.create_task(self._work(c)) for c in self.connections]

    def checkout(self, order: Order) -> None:
        self.queue.put_nowait(Job(time.monotonic(), order=order))

    def _return_later(self, hostname: str, hold_s: float) -> None:
        loop = asyncio.get_running_loop()
        self.held[hostname] = loop.call_later(hold_s, self._return_now, hostname)

    def _return_now(self, hostname: str) -> None:
        timer = self.held.get(hostname)
        if timer is not None:
            timer.cancel()
        self.held[hostname] = None  # queued
        self.queue.put_nowait(Job(time.monotonic(), hostname=hostname))

    async def return_all(self) -> None:
        """Give back every VM still out (their holds cut short), and wait for every request queued."""
        for hostname, timer in list(self.held.items()):
            if timer is not None:
                self._return_now(hostname)
        await self.queue.join()
        for hostname in [h for h, timer in self.held.items() if timer is None]:  # a return that failed: once more
            self._return_now(hostname)
        await self.queue.join()

    async def stop(self) -> None:
        for worker in self.workers:
            worker.cancel()
        await asyncio.gather(*self.workers, return_exceptions=True)
        for connection in self.connections:
            connection.close()

    async def _work(self, connection: Connection) -> None:
        while True:
            job = await self.queue.get()
            try:
                if job.order is not None:
                    await self._checkout(connection, job.asked, job.order)
                elif job.hostname is not None:
                    await self._give_back(connection, job.hostname)
            finally:
                self.queue.task_done()

    async def _give_back(self, connection: Connection, hostname: str) -> None:
        try:
            status, body = await connection.request("DELETE", f"/api/v3/vm/{hostname}")
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                TimeoutError) as exc:
            self.tally.error(f"DELETE {hostname}: {type(exc).__name__}: {exc}")
            return
        if status == 200:
            self.held.pop(hostname, None)
            self.tally.returns += 1
        else:
            self.tally.error(f"DELETE {hostname} {status}: {body[:200].decode(errors='replace')}")

    async def _checkout(self, connection: Connection, asked: float, order: Order) -> None:
        pool = order.pool
        try:
            status, body = await connection.request("POST", f"/api/v3/vm/{pool}")
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                TimeoutError) as exc:
            self.tally.error(f"POST {pool}: {type(exc).__name__}: {exc}")
            return
        answered = time.monotonic()
        if status != 200:
            self.tally.error(f"POST {pool} {status}: {body[:200].decode(errors='replace')}", empty=status == 503)
            return
        try:
            hostname = str(json.loads(body)[pool]["hostname"])
        except (ValueError, KeyError, TypeError):
            self.tally.error(f"POST {pool} 200 without a hostname: {body[:200].decode(errors='replace')}")
            return
        self.tally.checked_out((answered - asked) * 1000.0, measured=answered - self.started >= self.warmup_s)
        self._return_later(hostname, order.hold_s)


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

