"""libvirt's test driver for the libvirt provider's tests: three host files, a provider over them.

Each host is ``test:///<absolute path>/hostN.xml``. The test driver runs in this process and
answers at once; every open of a URI reloads its file, so a fresh provider starts from the
file's two shut-off template domains (``debian-12``, ``centos-9``) and its storage pool
``default``. The readiness probe of the providers made here is a stand-in (:class:`Probes`)
that records what it was asked to connect to and answers yes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any

import pytest_asyncio

from corral.domain.models import VmSpec
from corral.providers.libvirt.connection import Opener
from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool, LibvirtSettings

FIXTURES = Path(__file__).resolve().parent.parent.parent / "fixtures" / "libvirt"
HOSTS = ("host1", "host2", "host3")
TEMPLATE = "debian-12"
POOL = "lv-pool"


def host_file(host: str = "host1") -> Path:
    return FIXTURES / f"{host}.xml"


def host_uri(path: Path | str) -> str:
    """The test driver's URI of a host file (an absolute path: ``test:///abs/...``)."""
    return f"test://{Path(path).resolve()}"


def host_uris(hosts: Iterable[str] = HOSTS) -> list[str]:
    """The URIs of the fixture host files, by host name."""
    return [host_uri(host_file(host)) for host in hosts]


class Probes:
    """A readiness probe that records each (address, port) it is asked about and answers ``ready``."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.asked: list[tuple[str, int]] = []

    async def __call__(self, address: str, port: int, timeout: float) -> bool:
        self.asked.append((address, port))
        return self.ready


def make_provider(uris: Iterable[str] | None = None, *, pools: dict[str, LibvirtPool] | None = None,
                  name: str = "lv", probe: Any = None, opener: Opener | None = None,
                  **settings: Any) -> LibvirtProvider:
    """A libvirt provider (not connected yet) over ``uris`` (default: the three fixture hosts),
    with one pool ``lv-pool`` on ``debian-12`` unless ``pools`` is given; ``settings`` are more
    keys of :class:`LibvirtSettings`."""
    keys: dict[str, Any] = {"hosts": list(uris) if uris is not None else host_uris(),
                            "host_stats_interval": 0.2, "reconnect_min": 0.05, "reconnect_max": 0.4, **settings}
    extra: dict[str, Any] = {"probe": probe if probe is not None else Probes()}
    if opener is not None:
        extra["opener"] = opener
    return LibvirtProvider(name, LibvirtSettings.model_validate(keys),
                           pools if pools is not None else {POOL: LibvirtPool(POOL, TEMPLATE)}, **extra)


@pytest_asyncio.fixture
async def provider() -> AsyncIterator[LibvirtProvider]:
    """A connected provider over the three fixture hosts."""
    provider = make_provider()
    await provider.connect()
    yield provider
    await provider.close()


def raw(provider: LibvirtProvider, host: str = "host1") -> Any:
    """The provider's own libvirt connection to ``host``, unwrapped: calls made on it are not
    counted and happen behind the provider's back (as another program's would)."""
    conn = provider.hosts[host].conn
    assert conn is not None, f"{host} is not connected"
    return conn.wrapped


def foreign_domain_xml(name: str, *, pool: str | None = None, template: str = TEMPLATE, memory_mib: int = 512) -> str:
    """A small domain of the test driver, with corral's metadata when ``pool`` is given (as a
    domain corral made would have it) and without (as anyone else's)."""
    metadata = "" if pool is None else (
        f"<metadata><corral:vm xmlns:corral='urn:corral:vm:1'><corral:pool>{pool}</corral:pool>"
        f"<corral:template>{template}</corral:template><corral:created>1700000000</corral:created></corral:vm>"
        "</metadata>")
    return (f"<domain type='test'><name>{name}</name>{metadata}<memory unit='MiB'>{memory_mib}</memory>"
            "<vcpu>1</vcpu><os><type>hvm</type></os><devices/></domain>")


async def made(provider: LibvirtProvider, *names: str, host: str = "host1", pool: str = POOL) -> None:
    """Create VMs of ``pool`` on ``host`` in one call; each must succeed."""
    results = await provider.create_vms(host, [VmSpec(name=name, pool=pool, template=TEMPLATE) for name in names])
    assert all(r.ok for r in results), results
