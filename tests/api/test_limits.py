"""The limits of ``:api:`` on a real server: connections, keep-alives, slow bodies, event streams.

Each test holds real clients open against a real corral (uvicorn in a thread) and checks the
limit refuses what is over it while a normal client is still served.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest

from corral.api.server import SPARE_FILES, open_files_needed, open_files_plan
from corral.bench.load_clients import Holder
from corral.config import ApiConfig
from helpers import problems_of

POOLS = [{"name": "a", "template": "t-a", "size": 8}]


def limited(make_server: Any, **api: Any) -> Any:
    return make_server(POOLS, extra={":api": api})


def checkout(server: Any) -> httpx.Response:
    answer = server.client.post("/vm/a")
    if answer.status_code == 200:
        server.client.delete(f"/vm/{answer.json()['a']['hostname']}")
    return answer


def test_event_streams_over_the_limit_get_a_503_naming_it(make_server):
    server = limited(make_server, max_event_streams=3, max_connections=50)

    async def run() -> tuple[Holder, httpx.Response, int]:
        holder = Holder(server.url)
        await holder.event_streams(3)
        await holder.event_streams(1)  # the fourth
        over = await asyncio.to_thread(server.client.get, "/events")
        await holder.stop()
        return holder, over, checkout(server).status_code

    holder, over, normal = asyncio.run(run())
    assert holder.held.statuses == {"sse 200": 3, "sse 503": 1}
    assert over.status_code == 503
    assert "at most 3, :api: max_event_streams" in over.json()["error"]
    assert normal == 200
    # the streams closed, their places are free again
    with server.root.stream("GET", "/api/v3/events") as again:
        assert again.status_code == 200


def test_connections_over_the_limit_get_a_503_and_a_normal_client_is_served_below_it(make_server):
    server = limited(make_server, max_connections=20, max_event_streams=5)

    async def run() -> dict[str, int]:
        holder = Holder(server.url)
        await holder.idle_keepalives(18)  # with the test client's own: 19 connections, below 20
        below = (await asyncio.to_thread(checkout, server)).status_code
        with httpx.Client(timeout=10) as fresh:  # the 20th
            at = (await asyncio.to_thread(fresh.post, f"{server.url}/api/v3/vm/a"))
        await holder.stop()
        await asyncio.sleep(0.2)
        after = (await asyncio.to_thread(checkout, server)).status_code
        assert holder.held.idle_open == 18 and holder.held.idle_closed == 0
        return {"below": below, "at": at.status_code, "after": after}

    server.client.get("/status")  # the test's own client holds one connection throughout
    assert asyncio.run(run()) == {"below": 200, "at": 503, "after": 200}


def test_a_slow_body_is_cut_with_a_408_and_does_not_hold_up_others(make_server):
    server = limited(make_server, body_timeout=1)

    async def run() -> tuple[Holder, list[float]]:
        holder = Holder(server.url)
        await holder.slow_bodies(2, interval=0.2, length=100)  # 20 s each at this pace, if let through
        times = []
        for _ in range(5):
            started = time.monotonic()
            assert (await asyncio.to_thread(checkout, server)).status_code == 200
            times.append(time.monotonic() - started)
        await asyncio.sleep(1.6)
        await holder.stop()
        return holder, times

    holder, times = asyncio.run(run())
    assert holder.held.statuses.get("slow 408", 0) >= 2, holder.held
    first = holder.held.slow_cut_s[:2]  # the two the server cut (those begun after are ended by the test)
    assert all(0.9 <= s <= 2.5 for s in first), holder.held.slow_cut_s
    assert max(times) < 0.5, times


def test_the_408_names_the_limit_and_closes_the_connection(make_server):
    server = limited(make_server, body_timeout=0.5)

    async def run() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.thread.port)
        writer.write(b"POST /api/v3/vm HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 50\r\n\r\n{")
        async with asyncio.timeout(5):
            answer = await reader.read()  # to the end: the server closes the connection
        writer.close()
        return answer

    answer = asyncio.run(run())
    assert answer.startswith(b"HTTP/1.1 408")
    assert b"connection: close" in answer.lower()
    assert b"0.5 s (:api: body_timeout)" in answer


def test_an_idle_keepalive_is_closed_after_the_timeout(make_server):
    server = limited(make_server, keepalive_timeout=0.3)

    async def run() -> float:
        reader, writer = await asyncio.open_connection("127.0.0.1", server.thread.port)
        writer.write(b"GET /api/v3/status?view=status HTTP/1.1\r\nHost: x\r\n\r\n")
        await reader.readuntil(b"\r\n\r\n")
        started = time.monotonic()
        async with asyncio.timeout(5):
            while await reader.read(65536):
                pass
        writer.close()
        return time.monotonic() - started

    assert asyncio.run(run()) < 2


@pytest.mark.parametrize(("soft", "hard", "need", "expected"), [
    (20_000, 20_000, 4_352, (None, False)),  # enough already
    (1_024, 1_048_576, 4_352, (4_352, False)),  # raised within the hard limit
    (1_024, -1, 4_352, (4_352, False)),  # no hard limit
    (-1, -1, 4_352, (None, False)),  # no limit at all
    (1_024, 4_096, 4_352, (4_096, True)),  # raised as far as it goes, and said
    (4_096, 4_096, 4_352, (None, True)),  # cannot be raised: said
])
def test_the_open_files_limit_is_raised_to_what_the_connections_need(soft, hard, need, expected):
    target, warning = open_files_plan(soft, hard, need)
    assert (target, warning is not None) == expected
    if warning:
        assert str(hard) in warning and str(need) in warning and "max_connections" in warning


def test_the_open_files_needed_follow_max_connections():
    assert open_files_needed(ApiConfig(max_connections=4096)) == 4096 + SPARE_FILES


def test_streams_must_leave_connections_for_checkouts():
    (problem,) = problems_of({":api": {"max_connections": 100, "max_event_streams": 100}})
    assert "max_event_streams (100) must be below max_connections (100)" in problem
    assert problems_of({":api": {"body_timeout": 0}})[0].startswith("api.body_timeout")
