"""Is a VM reachable? Real providers are probed the way vmpooler does it: a TCP connect to port 22."""

from __future__ import annotations

import asyncio


async def tcp_reachable(address: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to ``address:port`` opens within ``timeout`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (TimeoutError, OSError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True
