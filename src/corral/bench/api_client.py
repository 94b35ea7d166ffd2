"""The load client of ``corral bench api``: N keep-alive connections doing checkout + return.

Run as ``python -m corral.bench.api_client --port N --pool P --clients C --duration S``, it
opens ``C`` HTTP/1.1 connections to 127.0.0.1 and on each, in a loop, sends
``POST /api/v3/vm/<pool>``, reads the hostname from the answer
(``{"ok": true, "<pool>": {"hostname": "<name>"}}``) and sends ``DELETE /api/v3/vm/<name>``.
A pair counts when it starts after the warm-up and ends before the run does. It prints one
JSON object (:class:`LoadResult`).

It is a minimal client on asyncio streams and uvloop: a general HTTP library costs more
per request than the servers it measures. It understands just what both servers send:
``Content-Length`` bodies, keep-alive.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

from corral.bench.common import percentile

MAX_ERROR_SAMPLES = 5


@dataclass
class LoadResult:
    """What one client run saw. Latencies are of a whole pair, in milliseconds."""

    clients: int
    duration_s: float
    pairs: int
    pairs_per_s: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float
    errors: int  # failed connections, timeouts, non-200 answers, answers without a hostname
    statuses: dict[str, int] = field(default_factory=dict)  # "POST 200": count, for every request
    error_samples: list[str] = field(default_factory=list)
    server_cpu_ms_per_pair: float | None = None  # filled in by the orchestrator, which sees the server

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoadResult:
        return cls(**data)


class HttpError(Exception):
    pass


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        status = int(head[9:12])
    except ValueError:
        raise HttpError(f"not an HTTP answer: {head[:40]!r}") from None
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at < 0:
        raise HttpError("an answer without Content-Length")
    end = lower.index(b"\r\n", at + 2)
    length = int(lower[at + 17:end])
    body = await reader.readexactly(length) if length else b""
    if b"\r\nconnection: close" in lower:
        raise ConnectionResetError("the server closed the connection")  # after reading the answer
    return status, body


class _Run:
    def __init__(self, port: int, pool: str, warmup: float, duration: float, timeout: float) -> None:
        self.port = port
        self.pool = pool
        self.timeout = timeout
        now = time.perf_counter()
        self.measure_from = now + warmup
        self.stop_at = self.measure_from + duration
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []
        self._host = f"127.0.0.1:{port}".encode()
        self._post = b"POST /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n" % (
            pool.encode(), self._host)

    def error(self, what: str) -> None:
        if time.perf_counter() >= self.measure_from:
            self.errors += 1
            if len(self.error_samples) < MAX_ERROR_SAMPLES:
                self.error_samples.append(what)

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, method: str,
                       raw: bytes) -> tuple[int, bytes]:
        writer.write(raw)
        status, body = await read_response(reader)
        self.statuses[f"{method} {status}"] += 1
        return status, body

    async def _pair(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        status, body = await self._request(reader, writer, "POST", self._post)
        if status != 200:
            self.error(f"POST {status}: {body[:200].decode(errors='replace')}")
            return False
        try:
            hostname = json.loads(body)[self.pool]["hostname"]
        except (ValueError, KeyError, TypeError):
            self.error(f"POST 200 without a hostname: {body[:200].decode(errors='replace')}")
            return False
        delete = b"DELETE /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n" % (
            hostname.encode(), self._host)
        status, body = await self._request(reader, writer, "DELETE", delete)
        if status != 200:
            self.error(f"DELETE {hostname} {status}: {body[:200].decode(errors='replace')}")
            return False
        return True

    async def connection(self) -> None:
        """One client: pairs back to back on one connection, reconnecting after an error."""
        writer: asyncio.StreamWriter | None = None
        try:
            while (started := time.perf_counter()) < self.stop_at:
                try:
                    async with asyncio.timeout(self.timeout):
                        if writer is None:
                            reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
                        ok = await self._pair(reader, writer)
                except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                        TimeoutError) as exc:
                    self.error(f"{type(exc).__name__}: {exc}")
                    if writer is not None:
                        writer.close()
                        writer = None
                    await asyncio.sleep(0.01)
                    continue
                ended = time.perf_counter()
                if ok and started >= self.measure_from and ended <= self.stop_at:
                    self.latencies.append(ended - started)
        finally:
            if writer is not None:
                writer.close()

    def result(self, clients: int, duration: float) -> LoadResult:
        ordered = sorted(self.latencies)
        ms = [x * 1000.0 for x in ordered]
        return LoadResult(
            clients=clients,
            duration_s=duration,
            pairs=len(ms),
            pairs_per_s=round(len(ms) / duration, 1),
            p50_ms=round(percentile(ms, 50), 3),
            p95_ms=round(percentile(ms, 95), 3),
            p99_ms=round(percentile(ms, 99), 3),
            max_ms=round(ms[-1], 3) if ms else 0.0,
            errors=self.errors,
            statuses=dict(self.statuses),
            error_samples=self.error_samples,
        )


async def run_load(port: int, pool: str, clients: int, duration: float, warmup: float = 1.0,
                   timeout: float = 10.0) -> LoadResult:
    """Run ``clients`` connections for ``warmup`` + ``duration`` seconds; measure the last ``duration``."""
    run = _Run(port, pool, warmup, duration, timeout)
    await asyncio.gather(*(run.connection() for _ in range(clients)))
    return run.result(clients, duration)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m corral.bench.api_client")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pool", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a pair may take before it is an error")
    args = parser.parse_args(argv)
    import uvloop

    result = uvloop.run(run_load(args.port, args.pool, args.clients, args.duration, args.warmup, args.timeout))
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
