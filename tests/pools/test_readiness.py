"""The reachability probe real providers use: a TCP connect, as vmpooler does (loopback only here)."""

from __future__ import annotations

import asyncio

from helpers import free_port

from corral.pools.readiness import tcp_reachable


async def test_open_port_is_reachable():
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        assert await tcp_reachable("127.0.0.1", port, timeout=2.0) is True


async def test_closed_port_is_not_reachable():
    assert await tcp_reachable("127.0.0.1", free_port(), timeout=2.0) is False
