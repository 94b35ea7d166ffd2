"""corral on libvirt's test driver, end to end: the real server with a ``provider_class: libvirt``
entry over the three fixture hosts, two pools on two templates.

Pools fill (as the HTTP API's /status shows), every VM is a running domain on the host its
record names, VMs are checked out and returned over the API, a returned VM's domain and
volume are gone from its host, and the pools fill again.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import libvirt

from corral.domain.states import VmState
from corral.providers.libvirt.domxml import parse_domain
from helpers import ServerThread

from .conftest import Probes, host_uris, raw

POOLS = {"debian": ("debian-12", 3), "centos": ("centos-9", 2)}  # name: (template, size)


def document(tmp_path: Path) -> dict[str, Any]:
    return {
        ":providers": {":kvm": {"provider_class": "libvirt", "hosts": host_uris()}},
        ":store": {"path": str(tmp_path / "corral.db")},
        ":config": {"check_interval": 0.5, "task_limit": 10, "domain": "pool.test"},
        ":runner": {"aggregation_window": 0.01, "retry_delay": 0.1},
        ":pools": [{"name": name, "template": template, "size": size, "provider": "kvm"}
                   for name, (template, size) in POOLS.items()],
    }


def domains(provider: Any, host: str) -> dict[str, bool]:
    """The domains on ``host`` (read behind the provider's back) and whether each runs, in one call:
    the server may undefine a domain between a list and a question about it."""
    stats = raw(provider, host).getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE, 0)
    return {dom.name(): state["state.state"] == libvirt.VIR_DOMAIN_RUNNING for dom, state in stats}


def volumes(provider: Any, host: str) -> list[str]:
    return list(raw(provider, host).storagePoolLookupByName("default").listVolumes())


def test_pools_fill_vms_are_checked_out_returned_and_refilled_on_the_test_driver(tmp_path: Path) -> None:
    server = ServerThread(document(tmp_path))
    provider: Any = server.service.pools.providers["kvm"]
    probes = Probes()
    provider.probe = probes  # the only stand-in: the test driver runs no guests to connect to
    with server as srv, httpx.Client(base_url=f"{srv.url}/api/v3", timeout=30) as client:
        store = srv.service.pools.store

        def full() -> bool:
            pools = client.get("/status").json()["pools"]
            return all(pools[name]["ready"] == size for name, (_, size) in POOLS.items())

        # -- the pools fill; each VM runs on the host its record names, cloned from its template
        srv.wait(full, timeout=20)
        ready = store.list_vms(states=[VmState.READY])
        assert sorted(vm.pool for vm in ready) == ["centos"] * 2 + ["debian"] * 3
        assert {vm.host for vm in ready} <= {"host1", "host2", "host3"}
        for vm in ready:
            assert domains(provider, vm.host).get(vm.name) is True, (vm.name, vm.host)
            assert f"{vm.name}-vda.qcow2" in volumes(provider, vm.host)
            others = {"host1", "host2", "host3"} - {vm.host}
            assert all(vm.name not in domains(provider, host) for host in others)
            facts = parse_domain(raw(provider, vm.host).lookupByName(vm.name).XMLDesc(0))
            assert (facts.pool, facts.template) == (vm.pool, POOLS[vm.pool][0])
            assert [d.volume for d in facts.disks] == [f"{vm.name}-vda.qcow2"]  # its own disk, not the template's
            assert facts.memory_mb == {"debian": 2048, "centos": 1024}[vm.pool]
        assert (f"{ready[0].name}.pool.test", 22) in probes.asked  # readiness: name + domain, port 22

        # -- checkouts over the API --------------------------------------------------------
        taken = {}
        for pool in POOLS:
            answer = client.post(f"/vm/{pool}").json()
            assert answer["ok"] is True, answer
            name = answer[pool]["hostname"].removesuffix(".pool.test")
            taken[name] = store.get_vm(name)
            assert taken[name].state is VmState.RUNNING and taken[name].pool == pool
            assert domains(provider, taken[name].host)[name] is True

        # -- returned: destroyed with its disk, and the pools fill again --------------------
        for name in taken:
            assert client.delete(f"/vm/{name}").json()["ok"] is True

        def gone() -> bool:
            return all(name not in domains(provider, vm.host) and
                       not any(v.startswith(f"{name}-") for v in volumes(provider, vm.host))
                       for name, vm in taken.items())

        srv.wait(gone, timeout=15)
        srv.wait(full, timeout=15)
        now = store.list_vms(states=[VmState.READY])
        assert len(now) == 5 and not {vm.name for vm in now} & set(taken)
        for vm in now:
            assert domains(provider, vm.host).get(vm.name) is True
        # nothing else on the hosts: the templates and the VMs corral holds, each with its one volume
        held = {vm.name for vm in store.list_vms() if vm.state in (VmState.READY, VmState.RUNNING, VmState.PENDING)}
        for host in ("host1", "host2", "host3"):
            names = set(domains(provider, host)) - {"debian-12", "centos-9"}
            assert names <= held, names - held
            extra = [v for v in volumes(provider, host) if v not in ("debian-12.qcow2", "centos-9.qcow2")]
            assert sorted(extra) == sorted(f"{name}-vda.qcow2" for name in names)
