"""The baseline of ``corral bench libvirt``: a deliberately naive libvirt client.

One libvirt connection per host, every call counted (the provider's
:class:`~corral.providers.libvirt.counting.Counted`), and nothing kept from one operation to
the next: each VM is made by asking libvirt for everything again (:meth:`NaiveClient.create`:
look up the template domain, read its XML, look up the storage pool and the template's
volume, read the volume's XML, clone the volume, define the domain, start it; eight calls),
and what runs where is learnt by polling (:meth:`NaiveClient.poll`: every host's domain list
and one state call per domain, every ``interval`` seconds, by :class:`Poller`). The XML it
writes is corral's own (:mod:`corral.providers.libvirt.domxml`), so both sides make the same
domains and volumes.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import libvirt

from corral.bench.libvirt_settings import TEMPLATE
from corral.providers.libvirt.counting import Counted
from corral.providers.libvirt.domxml import (
    DiskSource,
    clone_domain,
    parse_domain,
    parse_volume,
    volume_clone_xml,
    volume_name_for,
)

__all__ = ["CREATE_CALLS", "NaiveClient", "Poller"]

CREATE_CALLS = 8  # libvirt calls of one create for a template with one disk
BASELINE_POOL = "baseline"
Seen = Callable[[str, dict[str, bool], float], None]  # a host, its domains' states, when the poll returned


class NaiveClient:
    """One counted connection per host (``uris``: host name -> libvirt URI); see the module docstring."""

    def __init__(self, uris: Mapping[str, str]) -> None:
        self.calls: Counter[str] = Counter()
        self.conns: dict[str, Any] = {}
        for host, uri in uris.items():
            self.conns[host] = Counted(libvirt.open(uri), self.calls)

    def create(self, host: str, name: str) -> None:
        """Clone the template's disks, define and start domain ``name`` on ``host``."""
        conn = self.conns[host]
        template = conn.lookupByName(TEMPLATE)
        xml = template.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
        disks: dict[str, DiskSource] = {}
        for disk in parse_domain(xml).disks:
            if not disk.pool or not disk.volume:
                continue
            storage = conn.storagePoolLookupByName(disk.pool)
            original = storage.storageVolLookupByName(disk.volume)
            volume = parse_volume(original.XMLDesc(0))
            new = volume_name_for(name, disk.target, volume.name)
            storage.createXMLFrom(volume_clone_xml(new, volume.capacity_bytes, volume.format), original, 0)
            disks[disk.target] = DiskSource(target=disk.target, pool=disk.pool, volume=new, path=None,
                                            format=volume.format)
        domain = conn.defineXML(clone_domain(xml, name=name, disks=disks, pool=BASELINE_POOL, template=TEMPLATE,
                                             created_at=time.time()))
        domain.create()

    def poll(self, host: str) -> dict[str, bool]:
        """Every domain of ``host`` and whether it runs: its list, then one state call per domain."""
        return {dom.name(): dom.state(0)[0] == libvirt.VIR_DOMAIN_RUNNING
                for dom in self.conns[host].listAllDomains(0)}

    def raw(self, host: str) -> Any:
        """``host``'s connection without the counting: for the benchmark's own changes and checks."""
        return self.conns[host].wrapped

    def close(self) -> None:
        for conn in self.conns.values():
            conn.wrapped.close()
        self.conns.clear()


class Poller:
    """Polls every host of ``client`` every ``interval`` seconds in a thread of its own, one host
    after the other; ``seen`` gets each host's answer and the time the poll of that host returned."""

    def __init__(self, client: NaiveClient, interval: float, seen: Seen) -> None:
        self.client = client
        self.interval = interval
        self.seen = seen
        self.cycles = 0
        self.errors: list[str] = []  # polls that failed (the cycle goes on with the next host)
        self.starts: list[float] = []  # perf_counter at each cycle's start
        self.cycle_seconds: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="baseline-poller", daemon=True)

    def start(self) -> Poller:
        self._thread.start()
        return self

    def _run(self) -> None:
        next_start = time.perf_counter()
        while not self._stop.is_set():
            started = time.perf_counter()
            self.starts.append(started)
            for host in list(self.client.conns):
                try:
                    states = self.client.poll(host)
                except libvirt.libvirtError as exc:
                    self.errors.append(f"{host}: {exc}")
                    continue
                self.seen(host, states, time.perf_counter())
            self.cycles += 1
            self.cycle_seconds.append(time.perf_counter() - started)
            next_start = max(next_start + self.interval, time.perf_counter())
            self._stop.wait(next_start - time.perf_counter())

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def measured_interval(self) -> float:
        """The mean time between two cycles' starts (0 before the second cycle)."""
        if len(self.starts) < 2:
            return 0.0
        return (self.starts[-1] - self.starts[0]) / (len(self.starts) - 1)
