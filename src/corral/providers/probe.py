"""Is a VM reachable? Real providers are probed the way vmpooler does it: a TCP connect to port 22.

:class:`ReadyCheck` is how: the port, the timeout, and whether the VM's name or the address its
provider reports is asked (``:config:``'s ``ready_check_*`` keys, which a provider's own override).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal


async def tcp_reachable(address: str, port: int, timeout: float) -> bool:
    """True when a TCP connection to ``address:port`` opens within ``timeout`` seconds."""
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(address, port), timeout)
    except (OSError, TimeoutError):
        return False
    writer.close()
    try:
        await writer.wait_closed()
    except OSError:
        pass
    return True


@dataclass(frozen=True, slots=True)
class ReadyCheck:
    """How a real provider decides a VM is ready: a TCP connection to ``port`` of its name
    (with its pool's domain) or of the guest address its provider reports (``address``:
    ``guest_ip``), within ``timeout`` seconds."""

    port: int = 22
    timeout: float = 5.0
    address: Literal["name", "guest_ip"] = "name"


def resolve_ready_check(global_check: ReadyCheck, *, port: int | None = None, timeout: float | None = None,
                        address: Literal["name", "guest_ip"] | None = None) -> ReadyCheck:
    """One provider's readiness check: each ``ready_check_*`` key the provider gives (not None)
    overrides the one of ``:config:`` (``global_check``)."""
    return ReadyCheck(port=global_check.port if port is None else port,
                      timeout=global_check.timeout if timeout is None else timeout,
                      address=global_check.address if address is None else address)
