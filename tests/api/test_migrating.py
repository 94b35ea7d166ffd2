"""docs/migrating.md, on a real server: corral on the Redis a vmpooler uses leaves vmpooler's
keys alone, does not take vmpooler's tokens, and does not know vmpooler's VMs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import redis

from corral.bench.redisd import RedisServer

from .conftest import Server, tok

POOLS = [{"name": "debian", "template": "t/debian", "size": 2}]

# What a vmpooler keeps in Redis: a token (by its clear value), a ready VM of the same pool name.
VMPOOLER_TOKEN = "vmpoolertoken0123456789abcdefghi"
VMPOOLER_VM = "vmpooler-made-vm"
VMPOOLER_KEYS: dict[str, dict[str, str] | set[str]] = {
    f"vmpooler__token__{VMPOOLER_TOKEN}": {"user": "alice", "created": "2026-01-01 00:00:00 +0000"},
    f"vmpooler__vm__{VMPOOLER_VM}": {"template": "debian", "checkout": "2026-01-01 00:00:00 +0000"},
    "vmpooler__running__debian": {VMPOOLER_VM},
    "vmpooler__ready__debian": {"another-vmpooler-vm"},
}


def _vmpooler_data(client: redis.Redis) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key in client.scan_iter(match="vmpooler__*"):
        found[key] = client.hgetall(key) if client.type(key) == "hash" else client.smembers(key)
    return found


def test_beside_vmpoolers_data(make_server: Callable[..., Server], redis_server: RedisServer, redis_site: str) -> None:
    client = redis.Redis(port=redis_server.port, decode_responses=True)
    try:
        for key, value in VMPOOLER_KEYS.items():
            client.delete(key)
            if isinstance(value, dict):
                client.hset(key, mapping=value)
            else:
                client.sadd(key, *value)
        before = _vmpooler_data(client)
        assert before == VMPOOLER_KEYS
        server = make_server(POOLS, auth="static", extra={
            ":store": {"type": "redis", "site": redis_site},
            ":redis": {"server": "127.0.0.1", "port": redis_server.port},
        })
        # vmpooler's token is not corral's: a checkout with it is refused, a new one works
        refused = server.client.post("/vm/debian", headers=tok(VMPOOLER_TOKEN))
        assert refused.status_code == 401, refused.text
        assert server.client.get("/token", headers=tok(VMPOOLER_TOKEN)).status_code == 401
        token = server.token("alice")
        got = server.client.post("/vm/debian", headers=tok(token))
        assert got.status_code == 200, got.text
        host = got.json()["debian"]["hostname"]
        # a VM vmpooler handed out is unknown to corral: it must go back to vmpooler
        assert server.client.get(f"/vm/{VMPOOLER_VM}").status_code == 404
        assert server.client.delete(f"/vm/{VMPOOLER_VM}", headers=tok(token)).status_code == 404
        assert server.client.delete(f"/vm/{host}", headers=tok(token)).status_code == 200
        server.wait_full()
        assert _vmpooler_data(client) == before, "corral changed a vmpooler key"
        assert list(client.scan_iter(match=f"corral:{redis_site}:*")), "corral keeps its own keys beside them"
    finally:
        client.close()
