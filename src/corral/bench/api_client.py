"""The load client of ``corral bench api``: N keep-alive connections doing checkout + return.

Run as ``python -m corral.bench.api_client --url URL [--url URL ...] --pool P --clients C
--duration S``, it opens ``C`` HTTP/1.1 connections, spread over the URLs round robin (the
first connection to the first URL, the second to the second, ...), and on each, in a loop, sends
``POST /api/v3/vm/<pool>``, reads the hostname from the answer
(``{"ok": true, "<pool>": {"hostname": "<name>"}}``) and sends ``DELETE /api/v3/vm/<name>``.
A pair counts when it starts after the warm-up and ends before the run does. It prints one
JSON object (:class:`LoadResult`), with the pairs each URL served and the CPU the client used.

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
from urllib.parse import urlsplit

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
    pairs_by_url: dict[str, int] = field(default_factory=dict)  # measured pairs per server URL
    run_s: float | None = None  # seconds the connections ran, warm-up and measured part
    client_cpu_s: float | None = None  # CPU the client process used meanwhile
    # filled in by the orchestrator, which sees the servers: CPU per checkout of every server-side
    # process together, and the CPU seconds of each over the client's run
    server_cpu_ms_per_pair: float | None = None
    process_cpu_s: dict[str, float] = field(default_factory=dict)
    # the checkout alone (the POST of each measured pair), and hostnames handed out more than
    # once over the whole run, warm-up included (returned VMs are destroyed: never twice)
    checkout_p50_ms: float = 0.0
    checkout_p99_ms: float = 0.0
    duplicates: list[str] = field(default_factory=list)
    empty: int = 0  # of the POST 503s, vmpooler's answer for a pool with no ready VM left


    @property
    def server_errors(self) -> int:
        """Answers of 500 and above, any request, warm-up included."""
        return sum(n for key, n in self.statuses.items() if key.split()[-1].startswith("5"))

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


def host_port(url: str) -> tuple[str, int]:
    """The host and port of ``http://host:port``; ValueError naming the URL otherwise."""
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname or parts.port is None:
        raise ValueError(f"expected a URL like http://127.0.0.1:8080, got {url!r}")
    return parts.hostname, parts.port


class _Target:
    """One server: where to connect, and the checkout request for it."""

    def __init__(self, url: str, pool: str) -> None:
        self.url = url
        self.host, self.port = host_port(url)
        self.host_header = f"{self.host}:{self.port}".encode()
        self.post = b"POST /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n" % (
            pool.encode(), self.host_header)


class _Run:
    def __init__(self, urls: list[str], pool: str, warmup: float, duration: float, timeout: float) -> None:
        self.targets = [_Target(url, pool) for url in urls]
        self.pool = pool
        self.timeout = timeout
        now = time.perf_counter()
        self.measure_from = now + warmup
        self.stop_at = self.measure_from + duration
        self.latencies: list[float] = []
        self.statuses: Counter[str] = Counter()
        self.errors = 0
        self.error_samples: list[str] = []
        self.pairs_by_url: Counter[str] = Counter()
        self.checkouts: list[float] = []
        self.handed: Counter[str] = Counter()
        self.empty = 0

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

    async def _pair(self, target: _Target, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        started = time.perf_counter()
        status, body = await self._request(reader, writer, "POST", target.post)
        took = time.perf_counter() - started
        if status == 503 and b'"empty"' in body:
            self.empty += 1
        if status != 200:
            self.error(f"POST {status}: {body[:200].decode(errors='replace')}")
            return False
        try:
            hostname = json.loads(body)[self.pool]["hostname"]
        except (ValueError, KeyError, TypeError):
            self.error(f"POST 200 without a hostname: {body[:200].decode(errors='replace')}")
            return False
        self.handed[hostname] += 1
        if started >= self.measure_from:
            self.checkouts.append(took)
        delete = b"DELETE /api/v3/vm/%s HTTP/1.1\r\nHost: %s\r\nContent-Length: 0\r\n\r\n" % (
            hostname.encode(), target.host_header)
        status, body = await self._request(reader, writer, "DELETE", delete)
        if status != 200:
            self.error(f"DELETE {hostname} {status}: {body[:200].decode(errors='replace')}")
            return False
        return True

    async def connection(self, index: int) -> None:
        """Client ``index``: pairs back to back on one connection to its URL (round robin over
        the URLs), reconnecting after an error."""
        target = self.targets[index % len(self.targets)]
        writer: asyncio.StreamWriter | None = None
        try:
            while (started := time.perf_counter()) < self.stop_at:
                try:
                    async with asyncio.timeout(self.timeout):
                        if writer is None:
                            reader, writer = await asyncio.open_connection(target.host, target.port)
                        ok = await self._pair(target, reader, writer)
                except (OSError, EOFError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, HttpError,
                        TimeoutError) as exc:
                    self.error(f"{type(exc).__name__}: {exc}")
                    if writer is not None:
                        writer.close()
                        writer = None
                    await asyncio.sleep(0.01)
                    continue
                ended = time.perf_counter()
                if not ok:
                    await asyncio.sleep(0.01)  # a refusal (a pool run dry, say) is not retried at once
                    continue
                if started >= self.measure_from and ended <= self.stop_at:
                    self.latencies.append(ended - started)
                    self.pairs_by_url[target.url] += 1
        finally:
            if writer is not None:
                writer.close()

    def result(self, clients: int, duration: float) -> LoadResult:
        ordered = sorted(self.latencies)
        ms = [x * 1000.0 for x in ordered]
        checkouts = sorted(x * 1000.0 for x in self.checkouts)
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
            pairs_by_url=dict(self.pairs_by_url),
            checkout_p50_ms=round(percentile(checkouts, 50), 3),
            checkout_p99_ms=round(percentile(checkouts, 99), 3),
            duplicates=sorted(name for name, n in self.handed.items() if n > 1),
            empty=self.empty,
        )


async def run_load(urls: list[str], pool: str, clients: int, duration: float, warmup: float = 1.0,
                   timeout: float = 10.0) -> LoadResult:
    """Run ``clients`` connections, spread over ``urls`` round robin, for ``warmup`` + ``duration``
    seconds; measure the last ``duration``."""
    if not urls:
        raise ValueError("the load client needs at least one server URL")
    cpu_before, started = time.process_time(), time.perf_counter()
    run = _Run(urls, pool, warmup, duration, timeout)
    await asyncio.gather(*(run.connection(i) for i in range(clients)))
    result = run.result(clients, duration)
    result.run_s = round(time.perf_counter() - started, 3)
    result.client_cpu_s = round(time.process_time() - cpu_before, 3)
    return result


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m corral.bench.api_client")
    parser.add_argument("--url", action="append", required=True, dest="urls",
                        help="a server, http://host:port; repeat it to spread the connections round robin")
    parser.add_argument("--pool", required=True)
    parser.add_argument("--clients", type=int, default=1)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a pair may take before it is an error")
    args = parser.parse_args(argv)
    import uvloop

    for url in args.urls:
        try:
            host_port(url)
        except ValueError as exc:
            parser.error(str(exc))
    result = uvloop.run(run_load(args.urls, args.pool, args.clients, args.duration, args.warmup, args.timeout))
    print(json.dumps(result.as_dict()))


if __name__ == "__main__":
    main()
