"""The load of ``corral bench soak``: its schedule of checkouts (:func:`schedule`, seeded), the
keep-alive connections that carry them and the returns (:class:`Load`), and their tally
(:class:`Tally`): totals, and the latencies and errors of the current sampling interval."""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field

from corral.bench.api_client import HttpError, host_port, read_response
from corral.bench.soak_settings import SoakSettings

REQUEST_TIMEOUT_S = 30.0
MAX_ERROR_SAMPLES = 5
FAILURES = (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError, TimeoutError)


def pool_names(settings: SoakSettings) -> list[str]:
    return [f"soak-{i}" for i in range(1, settings.pools + 1)]


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
        self.stopping = False
        self.connections = [Connection(url) for _ in range(clients)]
        self.workers = [asyncio.create_task(self._work(c)) for c in self.connections]

    def checkout(self, order: Order) -> None:
        """Queue ``order``'s checkout, due ``order.at_s`` after the start."""
        self.queue.put_nowait(Job(self.started + order.at_s, order=order))

    def _return_later(self, hostname: str, hold_s: float) -> None:
        if self.stopping:  # the run is over: no more holds
            self._return_now(hostname)
            return
        loop = asyncio.get_running_loop()
        self.held[hostname] = loop.call_later(hold_s, self._return_now, hostname)

    def _return_now(self, hostname: str) -> None:
        timer = self.held.get(hostname)
        if timer is not None:
            timer.cancel()
        self.held[hostname] = None  # queued
        self.queue.put_nowait(Job(time.monotonic(), hostname=hostname))

    async def return_all(self) -> None:
        """Give back every VM still out (their holds cut short) and those of the checkouts still
        on their way, and wait for every request queued."""
        self.stopping = True
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
        except FAILURES as exc:
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
        except FAILURES as exc:
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
