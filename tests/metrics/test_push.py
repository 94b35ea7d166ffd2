"""statsd and graphite: the lines (tables), and the pushers against real sockets: a UDP socket
that receives statsd datagrams, a TCP listener that receives graphite lines, and servers that
are down or never answer, which must not block or break anything."""

from __future__ import annotations

import asyncio
import logging
import re
import socket

import pytest

from corral.metrics.catalogue import metric
from corral.metrics.push import (
    MAX_DATAGRAM,
    GraphitePusher,
    StatsdPusher,
    dotted,
    graphite_lines,
    statsd_line,
    statsd_packets,
)
from corral.metrics.readings import Reading
from corral.metrics.recorder import Recorder
from corral.metrics.settings import PushTarget
from helpers import eventually, free_port

STATSD_LINE = re.compile(r"^[A-Za-z0-9_.-]+:-?[0-9.]+\|(c|ms|g)$")
GRAPHITE_LINE = re.compile(r"^[A-Za-z0-9_.-]+ -?[0-9.e+-]+ [0-9]+$")


@pytest.mark.parametrize(("prefix", "key", "labels", "path"), [
    ("vmpooler", "ready", ("debian-12",), "vmpooler.ready.debian-12"),
    ("vmpooler", "checkout_success", ("a",), "vmpooler.checkout.success.a"),
    ("vmpooler", "time_to_ready_state", ("a",), "vmpooler.time_to_ready_state.a"),
    ("vmpooler", "errors_markedasfailed", ("a",), "vmpooler.errors.markedasfailed.a"),
    ("vmpooler", "delete_success", (), "vmpooler.delete.success"),
    ("site.one", "host_vms", ("sim", "esx1.example.com"), "site.one.corral.host.vms.sim.esx1_example_com"),
    ("vmpooler", "runner_queued", ("ha restart",), "vmpooler.corral.runner.queued.ha_restart"),
    ("vmpooler", "placement_rejections", ("",), "vmpooler.corral.placement.rejections._"),
])
def test_a_metric_has_a_dotted_path(prefix: str, key: str, labels: tuple[str, ...], path: str) -> None:
    assert dotted(prefix, metric(key), labels) == path


@pytest.mark.parametrize(("value", "kind", "line"), [
    (1, "c", "p:1|c"), (2.5, "c", "p:2.5|c"), (1.2345, "ms", "p:1234.5|ms"), (0.0004, "ms", "p:0.4|ms"),
    (7, "g", "p:7|g"), (12.5, "g", "p:12.5|g"), (-3, "g", "p:0|g\np:-3|g"),
])
def test_statsd_lines(value: float, kind: str, line: str) -> None:
    assert statsd_line("p", value, kind) == line


def test_statsd_lines_go_in_datagrams_that_fit() -> None:
    lines = [f"vmpooler.ready.pool{i}:{i}|g" for i in range(300)]
    packets = statsd_packets(lines)
    assert all(len(p) <= MAX_DATAGRAM for p in packets) and len(packets) > 1
    assert b"\n".join(packets).decode().split("\n") == lines
    assert statsd_packets(["x" * 2000]) == [b"x" * 2000]  # a longer line goes alone


def test_graphite_lines_hold_readings_counters_and_histograms() -> None:
    recorder = Recorder()
    recorder.checkout_success(["a", "a"])
    recorder.observe("clone", ("a",), 2.5)
    recorder.observe("clone", ("a",), 1.0)
    lines = graphite_lines("vmpooler", [Reading("ready", ("a",), 3)], recorder, now=1700000000.7)
    assert lines == ["vmpooler.ready.a 3 1700000000", "vmpooler.checkout.success.a 2 1700000000",
                     "vmpooler.clone.a.count 2 1700000000", "vmpooler.clone.a.sum 3.5 1700000000"]


async def readings() -> list[Reading]:
    return [Reading("ready", ("a",), 2), Reading("host_vms", ("sim", "h1.example.com"), 5)]


async def test_statsd_sends_counts_and_times_as_they_happen_and_gauges_every_interval() -> None:
    receiver = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    receiver.bind(("127.0.0.1", 0))
    receiver.setblocking(False)
    port = receiver.getsockname()[1]
    pusher = StatsdPusher(PushTarget("127.0.0.1", port, prefix="ci", interval_s=0.05), readings)
    recorder = Recorder([pusher])
    got: list[str] = []

    def received() -> set[str]:
        while True:
            try:
                got.extend(receiver.recv(65535).decode().split("\n"))
            except BlockingIOError:
                return set(got)

    try:
        await pusher.start()
        await eventually(lambda: pusher.address is not None)
        recorder.checkout_success(["a"])
        recorder.observe("clone", ("a",), 0.25)
        await eventually(lambda: {"ci.checkout.success.a:1|c", "ci.clone.a:250|ms", "ci.ready.a:2|g",
                                  "ci.corral.host.vms.sim.h1_example_com:5|g"} <= received())
        assert all(STATSD_LINE.match(line) for line in got), got
        assert pusher.pushes >= 1 and pusher.errors.failures == 0
    finally:
        await pusher.stop()
        receiver.close()


async def test_graphite_pushes_plaintext_lines_to_a_listener() -> None:
    lines: list[str] = []

    async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        lines.extend((await reader.read()).decode().splitlines())
        writer.close()

    server = await asyncio.start_server(take, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    recorder = Recorder()
    recorder.count("delete_failed")
    pusher = GraphitePusher(PushTarget("127.0.0.1", port, prefix="ci", interval_s=0.05), readings, recorder,
                            clock=lambda: 1700000000.0)
    try:
        await pusher.start()
        await eventually(lambda: pusher.pushes >= 2)
        assert {"ci.ready.a 2 1700000000", "ci.corral.host.vms.sim.h1_example_com 5 1700000000",
                "ci.delete.failed 1 1700000000"} <= set(lines)
        assert all(GRAPHITE_LINE.match(line) for line in lines), lines
    finally:
        await pusher.stop()
        server.close()
        await server.wait_closed()


def failure_logs(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "corral.metrics" and "failed" in r.getMessage()]


async def test_a_graphite_server_that_is_down_is_logged_once_per_streak(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "corral.metrics")
    port = free_port()  # nothing listens
    pusher = GraphitePusher(PushTarget("127.0.0.1", port, interval_s=0.02, timeout_s=0.5), readings, Recorder())
    await pusher.start()
    try:
        await eventually(lambda: pusher.errors.failures >= 3)
        assert failure_logs(caplog) == [f"graphite 127.0.0.1:{port} failed; metrics are not sent until it works again"]
        # it comes up: one line says so, and the lines arrive
        lines: list[str] = []

        async def take(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            lines.extend((await reader.read()).decode().splitlines())
            writer.close()

        server = await asyncio.start_server(take, "127.0.0.1", port)
        await eventually(lambda: lines)
        assert f"graphite 127.0.0.1:{port} works again" in [r.getMessage() for r in caplog.records]
        server.close()
        await server.wait_closed()
    finally:
        await pusher.stop()


async def test_a_graphite_server_that_never_answers_holds_nothing_up() -> None:
    """A listener whose backlog is full accepts no connection: the push gives up after its timeout."""
    silent = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    port = silent.getsockname()[1]
    fillers = []
    for _ in range(8):  # fill the accept queue so that a connect waits
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(("127.0.0.1", port))
        except BlockingIOError:
            pass
        fillers.append(s)
    pusher = GraphitePusher(PushTarget("127.0.0.1", port, interval_s=60, timeout_s=0.2), readings, Recorder())
    try:
        loop = asyncio.get_running_loop()
        started = loop.time()
        await pusher.push_once()  # returns (the failure is counted), never raises
        assert loop.time() - started < 2.0
        assert pusher.errors.failures == 1 and pusher.pushes == 0
    finally:
        for s in fillers:
            s.close()
        silent.close()


async def test_a_statsd_server_that_cannot_be_found_drops_lines_without_an_error() -> None:
    pusher = StatsdPusher(PushTarget("no-such-host.invalid", 8125, interval_s=0.02, timeout_s=0.5), readings)
    recorder = Recorder([pusher])
    await pusher.start()
    try:
        await eventually(lambda: pusher.errors.failures >= 1)
        recorder.checkout_success(["a"])  # the API's count goes on, the line is dropped
        assert recorder.counters["checkout_success"] == {("a",): 1.0} and pusher.dropped >= 1
        assert pusher.address is None and pusher.errors.failing
    finally:
        await pusher.stop()


@pytest.mark.parametrize(("short", "empty", "raced"), [
    (["a"], {("a",): 1.0}, None),
    (["a", "b"], {("a",): 1.0, ("b",): 1.0}, None),
    ([], None, {(): 1.0}),  # the last VMs went to other checkouts: no pool is counted empty
])
def test_a_refused_checkout_counts_the_short_names_or_one_race(short: list[str], empty: dict | None,
                                                              raced: dict | None) -> None:
    recorder = Recorder()
    recorder.checkout_empty(short)
    assert recorder.counters.get("checkout_empty") == empty
    assert recorder.counters.get("checkout_raced") == raced
