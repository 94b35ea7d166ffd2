"""The clients of ``corral bench load``'s slow-client part, on raw asyncio streams.

- :func:`slow_bodies`: clients that send a request's body one byte every ``interval``; each
  waits for the server to answer or cut it, and starts again, until stopped;
- :func:`idle_keepalives`: connections that make one request and then sit idle, kept open;
- :func:`event_streams`: ``GET /api/v3/events`` streams, read (and drained) until stopped;
- :class:`Steady`: the steady client: checkout + return pairs at a fixed rate on a few
  keep-alive connections, timing each checkout and keeping every hostname handed out.

Run as ``python -m corral.bench.load_clients --url URL [--sse N] [--idle N] [--slow N]``, it opens
the slow clients asked for, prints one JSON line once they are all open (``opened``), holds them
until its standard input closes, then prints one JSON line of what they saw (:class:`Held`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.bench.api_client import HttpError, host_port, read_response
from corral.bench.common import percentile

OPEN_TIMEOUT_S = 30.0


def _status_of(head: bytes) -> int:
    try:
        return int(head[9:12])
    except ValueError:
        return 0


@dataclass
class Held:
    """What the slow clients saw. ``statuses`` counts the answers each kind got (``sse 200``,
    ``idle 200``, ``slow 408``); ``slow_cut_s`` is how long each slow body ran before the server
    answered or closed; ``idle_closed`` counts idle connections the server closed."""

    sse_open: int = 0
    idle_open: int = 0
    idle_closed: int = 0
    slow_started: int = 0
    slow_cut_s: list[float] = field(default_factory=list)
    statuses: dict[str, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Held:
        return cls(**data)


class Holder:
    """Slow clients of every kind against one server, until :meth:`stop`."""

    def __init__(self, url: str) -> None:
        self.host, self.port = host_port(url)
        self.held = Held()
        self.statuses: Counter[str] = Counter()
        self.stopping = asyncio.Event()
        self.writers: list[asyncio.StreamWriter] = []
        self.tasks: list[asyncio.Task[None]] = []

    def _error(self, what: str) -> None:
        if len(self.held.errors) < 10:
            self.held.errors.append(what)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        reader, writer = await asyncio.open_connection(self.host, self.port)
        self.writers.append(writer)
        return reader, writer

    # -- event streams -------------------------------------------------------------------------
    async def _sse(self, path: str, opened: asyncio.Event) -> None:
        reader, writer = await self._connect()
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nAccept: text/event-stream\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        status = _status_of(head)
        self.statuses[f"sse {status}"] += 1
        if status == 200:
            self.held.sse_open += 1
        opened.set()
        if status != 200:
            writer.close()
            return
        while await reader.read(65536):  # drain until the server ends it
            pass

    async def event_streams(self, count: int, path: str = "/api/v3/events?vm=nothing-waits-here") -> None:
        """Open ``count`` streams, a few at a time; return once each has its answer's head."""
        await self._open_many(count, lambda opened: self._sse(path, opened))

    # -- idle keep-alive connections -------------------------------------------------------------
    async def _idle(self, opened: asyncio.Event) -> None:
        reader, writer = await self._connect()
        writer.write(f"GET /api/v3/status?view=status HTTP/1.1\r\nHost: {self.host}\r\n\r\n".encode())
        status, _ = await read_response(reader)
        self.statuses[f"idle {status}"] += 1
        self.held.idle_open += 1
        opened.set()
        if not await reader.read(1):  # nothing more is asked: an answer is only the server closing it
            self.held.idle_closed += 1

    async def idle_keepalives(self, count: int) -> None:
        await self._open_many(count, self._idle)

    # -- slow bodies -------------------------------------------------------------------------------
    async def _slow_once(self, interval: float, length: int) -> None:
        reader, writer = await self._connect()
        self.held.slow_started += 1
        started = time.monotonic()
        writer.write((f"POST /api/v3/vm HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
                      f"Content-Length: {length}\r\n\r\n").encode())
        answer = asyncio.ensure_future(reader.readuntil(b"\r\n\r\n"))
        body = b'{"slow": "' + b"x" * length
        try:
            for i in range(length):
                if answer.done():
                    break
                writer.write(body[i:i + 1])
                await asyncio.wait([answer], timeout=interval)
            head = await answer
            self.statuses[f"slow {_status_of(head)}"] += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            self.statuses["slow closed"] += 1
        finally:
            answer.cancel()
            self.held.slow_cut_s.append(round(time.monotonic() - started, 3))
            writer.close()
            with contextlib.suppress(ValueError):
                self.writers.remove(writer)

    async def _slow(self, interval: float, length: int, opened: asyncio.Event) -> None:
        opened.set()
        while not self.stopping.is_set():
            await self._slow_once(interval, length)

    async def slow_bodies(self, count: int, interval: float = 1.0, length: int = 1000) -> None:
        await self._open_many(count, lambda opened: self._slow(interval, length, opened))

    # -- all of them -------------------------------------------------------------------------------
    async def _open_many(self, count: int, one: Any, at_once: int = 50) -> None:
        """Start ``count`` clients, ``at_once`` at a time, each one's task kept; return once each
        has said it is open (or failed)."""
        for start in range(0, count, at_once):
            batch = []
            for _ in range(min(at_once, count - start)):
                opened = asyncio.Event()
                task = asyncio.ensure_future(self._guarded(one(opened), opened))
                self.tasks.append(task)
                batch.append(opened.wait())
            async with asyncio.timeout(OPEN_TIMEOUT_S):
                await asyncio.gather(*batch)

    async def _guarded(self, client: Any, opened: asyncio.Event) -> None:
        try:
            await client
        except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError) as exc:
            self._error(f"{type(exc).__name__}: {exc}")
        finally:
            opened.set()

    async def stop(self) -> Held:
        self.stopping.set()
        for writer in self.writers:
            writer.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        self.held.statuses = dict(self.statuses)
        return self.held


# -- the steady client ---------------------------------------------------------------------------


@dataclass
class SteadyResult:
    """The steady client's checkouts: latencies in milliseconds, every status, hostnames handed
    out more than once."""

    checkouts: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[str, int]
    duplicates: list[str]
    errors: list[str]

    @property
    def server_errors(self) -> int:
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5"))

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "server_errors": self.server_errors}


class Steady:
    """Checkout + return pairs at ``rate`` pairs/s in all, over ``connections`` keep-alive
    connections to ``url``, each checkout timed."""

    def __init__(self, url: str, pool: str, rate: float = 50.0, connections: int = 4) -> None:
        self.host, self.port = host_port(url)
        self.pool = pool
        self.rate = rate
        self.connections = connections
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.handed: Counter[str] = Counter()
        self.errors: list[str] = []
        self.measuring = False

    async def _one(self, index: int, until: float) -> None:
        period = self.connections / self.rate
        next_at = time.perf_counter() + period * index / self.connections
        reader: asyncio.StreamReader | None = None
        writer: asyncio.StreamWriter | None = None
        post = f"POST /api/v3/vm/{self.pool} HTTP/1.1\r\nHost: {self.host}\r\nContent-Length: 0\r\n\r\n".encode()
        try:
            while (now := time.perf_counter()) < until:
                if next_at > now:
                    await asyncio.sleep(next_at - now)
                next_at += period
                try:
                    async with asyncio.timeout(10):
                        if writer is None or reader is None:
                            reader, writer = await asyncio.open_connection(self.host, self.port)
                        started = time.perf_counter()
                        writer.write(post)
                        status, body = await read_response(reader)
                        took = time.perf_counter() - started
                        self.statuses[f"POST {status}"] += 1
                        if status != 200:
                            continue
                        name = json.loads(body)[self.pool]["hostname"]
                        if self.measuring:
                            self.latencies.append(took)
                        self.handed[name] += 1
                        writer.write(f"DELETE /api/v3/vm/{name} HTTP/1.1\r\nHost: {self.host}\r\n"
                                     f"Content-Length: 0\r\n\r\n".encode())
                        status, _ = await read_response(reader)
                        self.statuses[f"DELETE {status}"] += 1
                except (OSError, EOFError, asyncio.IncompleteReadError, HttpError, TimeoutError, ValueError,
                        KeyError) as exc:
                    if len(self.errors) < 10:
                        self.errors.append(f"{type(exc).__name__}: {exc}")
                    if writer is not None:
                        writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    async def run(self, seconds: float, warmup: float = 0.5) -> SteadyResult:
        """Run for ``warmup`` + ``seconds``; time the checkouts of the last ``seconds``."""
        until = time.perf_counter() + warmup + seconds
        runs = asyncio.gather(*(self._one(i, until) for i in range(self.connections)))
        await asyncio.sleep(warmup)
        self.measuring = True
        await runs
        return self.result()

    def result(self) -> SteadyResult:
        ms = sorted(x * 1000.0 for x in self.latencies)
        return SteadyResult(checkouts=len(ms), p50_ms=round(percentile(ms, 50), 3),
                            p99_ms=round(percentile(ms, 99), 3), max_ms=round(ms[-1], 3) if ms else 0.0,
                            statuses=dict(self.statuses), errors=self.errors,
                            duplicates=sorted(n for n, c in self.handed.items() if c > 1))


# -- the holding process -------------------------------------------------------------------------


def raise_own_open_files(need: int) -> None:
    """Thousands of connections need more descriptors than the usual soft limit of 1,024."""
    try:
        import resource
    except ImportError:
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if 0 <= soft < need:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (need if hard < 0 else min(need, hard), hard))


async def hold(url: str, sse: int, idle: int, slow: int, interval: float) -> Held:
    holder = Holder(url)
    await holder.event_streams(sse)
    await holder.idle_keepalives(idle)
    await holder.slow_bodies(slow, interval)
    print(json.dumps({"opened": True, "sse_open": holder.held.sse_open, "idle_open": holder.held.idle_open}),
          flush=True)
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, sys.stdin.read)  # until the orchestrator closes our stdin
    return await holder.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m corral.bench.load_clients")
    parser.add_argument("--url", required=True)
    parser.add_argument("--sse", type=int, default=0, help="event streams held open")
    parser.add_argument("--idle", type=int, default=0, help="idle keep-alive connections held open")
    parser.add_argument("--slow", type=int, default=0, help="clients sending bodies one byte per --interval")
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args(argv)
    raise_own_open_files(args.sse + args.idle + args.slow + 256)
    import uvloop

    held = uvloop.run(hold(args.url, args.sse, args.idle, args.slow, args.interval))
    print(json.dumps(held.as_dict()), flush=True)


if __name__ == "__main__":
    main()
