"""statsd (UDP) and graphite (plaintext over TCP): the lines, and the pushers that send them.

A server that is down never blocks or breaks anything: a statsd datagram is sent without
waiting, a graphite push has ``timeout_s`` to connect and write, and either logs the first
failure of a streak (and the recovery), not every one.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import time
from collections.abc import Awaitable, Callable, Iterable

from corral.metrics.catalogue import Kind, Metric, metric
from corral.metrics.readings import Reading
from corral.metrics.recorder import Recorder
from corral.metrics.settings import PushTarget

__all__ = ["MAX_DATAGRAM", "FailureLog", "GraphitePusher", "StatsdPusher", "dotted", "graphite_lines",
           "statsd_line", "statsd_packets"]

log = logging.getLogger("corral.metrics")

#: statsd lines are sent together in datagrams of at most this many bytes (fits an Ethernet frame).
MAX_DATAGRAM = 1400
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def dotted(prefix: str, m: Metric, labels: Iterable[str]) -> str:
    """``<prefix>.<path>.<label values>``; a label value's dots and other signs become ``_``
    (a host's FQDN is one segment)."""
    parts = [prefix, m.path] + [_UNSAFE.sub("_", value) or "_" for value in labels]
    return ".".join(p for p in parts if p)


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:.6g}"


def statsd_line(path: str, value: float, kind: str) -> str:
    """One statsd line: ``c`` a count, ``ms`` a time (``value`` in seconds), ``g`` a gauge."""
    if kind == "ms":
        return f"{path}:{_number(round(value * 1000.0, 3))}|ms"
    if kind == "g" and value < 0:
        return f"{path}:0|g\n{path}:{_number(value)}|g"  # a leading sign alone would change the gauge
    return f"{path}:{_number(value)}|{kind}"


def statsd_packets(lines: Iterable[str], limit: int = MAX_DATAGRAM) -> list[bytes]:
    """Lines joined by newlines into datagrams of at most ``limit`` bytes (a longer line alone)."""
    packets: list[bytes] = []
    current = b""
    for line in lines:
        raw = line.encode()
        if current and len(current) + 1 + len(raw) > limit:
            packets.append(current)
            current = b""
        current = raw if not current else current + b"\n" + raw
    if current:
        packets.append(current)
    return packets


def graphite_lines(prefix: str, readings: Iterable[Reading], recorder: Recorder, now: float) -> list[str]:
    """Every reading and recorded counter (cumulative) as ``path value timestamp``; each
    histogram as its ``.count`` and ``.sum``."""
    ts = int(now)
    out = [f"{dotted(prefix, metric(r.key), r.labels)} {_number(r.value)} {ts}" for r in readings]
    for key, series in sorted(recorder.counters.items()):
        m = metric(key)
        out += [f"{dotted(prefix, m, labels)} {_number(v)} {ts}" for labels, v in sorted(series.items())]
    for key, hists in sorted(recorder.histograms.items()):
        m = metric(key)
        for labels, h in sorted(hists.items()):
            path = dotted(prefix, m, labels)
            out += [f"{path}.count {h.total} {ts}", f"{path}.sum {_number(round(h.sum, 3))} {ts}"]
    return out


class FailureLog:
    """Logs the first failure of a streak and the first success after it; counts failures."""

    def __init__(self, what: str, meanwhile: str = "metrics are not sent until it works again") -> None:
        self.what = what
        self.meanwhile = meanwhile
        self.failing = False
        self.failures = 0

    def failed(self, error: BaseException | str) -> None:
        self.failures += 1
        if not self.failing:
            self.failing = True
            cause = error if isinstance(error, str) else f"{type(error).__name__}: {error}".rstrip(": ")
            log.warning("%s failed; %s", self.what, self.meanwhile, extra={"error": cause})

    def ok(self) -> None:
        if self.failing:
            self.failing = False
            log.info("%s works again", self.what)


Read = Callable[[], Awaitable[list[Reading]]]


async def cancelled(task: asyncio.Task[None] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended."""
    if task is not None:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass


class _Pusher:
    def __init__(self, target: PushTarget, read: Read, what: str) -> None:
        self.target = target
        self.read = read
        self.errors = FailureLog(what)
        self.pushes = 0  # pushes that reached the server (graphite) or were sent (statsd)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name=f"metrics-{type(self).__name__}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancelled(task)

    async def _loop(self) -> None:
        await self.prepare()
        while True:
            await asyncio.sleep(self.target.interval_s)
            try:
                await self.push_once()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed reading or push waits for the next interval
                self.errors.failed(exc)

    async def prepare(self) -> None:
        """What the pusher does once, before its first interval."""

    async def push_once(self) -> None:
        raise NotImplementedError


class StatsdPusher(_Pusher):
    """Counts and times as they happen (a :class:`~corral.metrics.recorder.Sink`); every
    reading as a gauge every ``interval_s``. The server's address is looked up in the background
    at start and again after a failure, never on the sending path (until it is known, lines are
    dropped and counted)."""

    def __init__(self, target: PushTarget, read: Read) -> None:
        super().__init__(target, read, f"statsd {target.server}:{target.port}")
        self.sock: socket.socket | None = None  # made once the address is known, of its family
        self.address: tuple[str, int] | None = None
        self.dropped = 0  # lines not sent: no address yet, or a send failed

    async def prepare(self) -> None:
        await self._resolve()

    async def stop(self) -> None:
        await super().stop()
        if self.sock is not None:
            self.sock.close()
            self.sock = None

    async def _resolve(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            found = await asyncio.wait_for(
                loop.getaddrinfo(self.target.server, self.target.port, type=socket.SOCK_DGRAM), self.target.timeout_s)
        except (OSError, TimeoutError) as exc:
            self.errors.failed(exc if isinstance(exc, OSError) else "the name lookup timed out")
            return
        family, _, _, _, address = found[0]
        if self.sock is None or self.sock.family != family:
            if self.sock is not None:
                self.sock.close()
            self.sock = socket.socket(family, socket.SOCK_DGRAM)
            self.sock.setblocking(False)
        self.address = (str(address[0]), int(address[1]))

    def _send(self, lines: list[str]) -> bool:
        if self.address is None or self.sock is None:
            self.dropped += len(lines)
            return False
        try:
            for packet in statsd_packets(lines):
                self.sock.sendto(packet, self.address)
        except OSError as exc:
            self.dropped += len(lines)
            self.errors.failed(exc)
            self.address = None  # looked up again at the next push
            return False
        self.errors.ok()
        return True

    # -- the sink ------------------------------------------------------------------------------
    def count(self, key: str, labels: tuple[str, ...], n: float) -> None:
        self._send([statsd_line(dotted(self.target.prefix, metric(key), labels), n, "c")])

    def timing(self, key: str, labels: tuple[str, ...], seconds: float) -> None:
        self._send([statsd_line(dotted(self.target.prefix, metric(key), labels), seconds, "ms")])

    async def push_once(self) -> None:
        if self.address is None:
            await self._resolve()
        readings = await self.read()
        lines = [statsd_line(dotted(self.target.prefix, metric(r.key), r.labels), r.value, "g") for r in readings
                 if metric(r.key).kind is not Kind.HISTOGRAM]
        if self._send(lines):
            self.pushes += 1


class GraphitePusher(_Pusher):
    """Every reading, recorded counter and histogram every ``interval_s``, on a connection of
    its own that has ``timeout_s`` to connect and take the lines."""

    def __init__(self, target: PushTarget, read: Read, recorder: Recorder,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(target, read, f"graphite {target.server}:{target.port}")
        self.recorder = recorder
        self.clock = clock

    async def push_once(self) -> None:
        readings = await self.read()
        payload = "".join(line + "\n" for line in graphite_lines(self.target.prefix, readings, self.recorder,
                                                                 self.clock())).encode()
        try:
            await asyncio.wait_for(self._write(payload), self.target.timeout_s)
        except TimeoutError:
            self.errors.failed(f"no answer within {self.target.timeout_s:g} s")
            return
        except OSError as exc:
            self.errors.failed(exc)
            return
        self.errors.ok()
        self.pushes += 1

    async def _write(self, payload: bytes) -> None:
        _, writer = await asyncio.open_connection(self.target.server, self.target.port)
        try:
            writer.write(payload)
            await writer.drain()
        finally:
            writer.close()
            try:
                await writer.wait_closed()
            except OSError:
                pass
