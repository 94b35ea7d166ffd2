"""vcsim for the vSphere tests: a fresh vCenter simulator per test, with one template.

vcsim runs no guests, so nothing listens on port 22 of its VMs. The readiness probe of the
providers made here connects to a TCP listener of the test's own instead, and records the
address it was asked for (the VM's name with its domain, or its guest IP), so the tests see
both what corral would connect to and the power-state logic around it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from corral.bench.vcsim import Listener, Vcsim, VcsimUnavailable
from corral.providers.probe import tcp_reachable
from corral.providers.vsphere import VspherePool, VsphereProvider, VsphereSettings

TEMPLATE = "Templates/corral-template"
#: vcsim runs no VMware Tools; this extraConfig key makes it report them running in a clone
#: (vcsim's way of setting guest properties), so the feed sees guests come up.
TOOLS_RUNNING = {"SET.guest.toolsRunningStatus": "guestToolsRunning"}


def pool(name: str, **keys: Any) -> VspherePool:
    """A pool on the test template whose clones report running tools."""
    options: dict[str, Any] = {"template": TEMPLATE, "linked_clone": False, "extra_config": dict(TOOLS_RUNNING), **keys}
    return VspherePool(name=name, **options)


@pytest.fixture
def vcsim() -> Iterator[Vcsim]:
    try:
        sim = Vcsim(hosts=3)
    except VcsimUnavailable as exc:  # make test installs Go and govmomi; say what is missing
        pytest.fail(f"vcsim is not available: {exc}")
    try:
        sim.make_template(TEMPLATE, memory_mb=128)
        yield sim
    finally:
        sim.close()


@pytest_asyncio.fixture
async def listener() -> AsyncIterator[Listener]:
    lst = Listener()
    await lst.start()
    yield lst
    await lst.close()


class SshStandIn:
    """A TCP listener in a thread, standing in for the guests' sshd (vcsim runs no guests)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            conn.close()

    async def probe(self, address: str, port: int, timeout: float) -> bool:
        self.asked.append(f"{address}:{port}")
        return await tcp_reachable("127.0.0.1", self.port, timeout)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def ssh() -> Iterator[SshStandIn]:
    stand_in = SshStandIn()
    yield stand_in
    stand_in.close()


def make_provider(sim: Vcsim, listener: Listener | None = None, *, pools: dict[str, VspherePool] | None = None,
                  **settings: Any) -> VsphereProvider:
    options = {"feed_max_wait": 2, **settings}
    kwargs: dict[str, Any] = {}
    if listener is not None:
        kwargs["probe"] = listener.probe
    return VsphereProvider("vsphere", VsphereSettings.model_validate(sim.settings(**options)), pools, **kwargs)
