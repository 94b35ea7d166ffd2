"""The API on a Redis store: a checkout while Redis is down is a 503 that says why, and
checkouts work again once Redis is back; the password shows nowhere."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from corral.bench.redisd import RedisServer

from .conftest import Server

POOLS = [{"name": "debian", "template": "t/debian", "size": 2}]
SECRET = "pw-Api-7731-never-shown"


@pytest.fixture
def redis_own(tmp_path: Path) -> Iterator[RedisServer]:
    with RedisServer(password=SECRET, workdir=tmp_path) as server:
        yield server


def save(server: RedisServer) -> None:
    """Write the data set to disk, so that the restarted server loads it (as a Redis with
    persistence does)."""
    client = redis.Redis(port=server.port, password=server.password)
    try:
        client.save()
    finally:
        client.close()


def on_redis(server: RedisServer, site: str) -> dict[str, Any]:
    return {":store": {"type": "redis", "site": site},
            ":redis": {"server": "127.0.0.1", "port": server.port, "password": SECRET}}


def test_checkout_while_redis_is_down_is_a_503_with_a_reason(
    make_server: Callable[..., Server], redis_own: RedisServer, redis_site: str, log_lines: Callable[[], str]
) -> None:
    server = make_server(POOLS, extra=on_redis(redis_own, redis_site))
    assert server.client.post("/vm/debian").status_code == 200
    save(redis_own)
    redis_own.stop()
    for _ in range(2):  # the hot path and the routed one answer alike
        resp = server.client.post("/vm/debian")
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["ok"] is False
        assert f"Redis at 127.0.0.1:{redis_own.port} cannot be reached" in body["reason"]
        assert SECRET not in resp.text
    assert server.client.post("/vm", json={"debian": "1"}).status_code == 503
    redis_own.start()
    resp = server.client.post("/vm/debian")  # the one still ready when Redis went down
    assert resp.status_code == 200, resp.text
    assert resp.json()["ok"] is True
    assert SECRET not in log_lines()
    full = server.client.get("/full_config")
    assert full.status_code == 200 and SECRET not in full.text
    shown = full.json()["full_config"]
    assert shown["store"]["type"] == "redis" and shown["store"]["site"] == redis_site
    assert shown["redis"]["port"] == redis_own.port and "password" not in shown["redis"]
    for view in ("/config", "/status"):
        assert SECRET not in server.client.get(view).text
