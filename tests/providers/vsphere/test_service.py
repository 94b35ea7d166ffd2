"""corral on vcsim, end to end: the real server, configured the vmpooler way.

Pools fill through one vCenter session, a checkout migrates the VM off a busy host in vcsim,
and a session terminated by the vCenter is replaced without any VM looking as if it left.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import httpx
from pyVmomi import vim

from corral.bench.vcsim import SessionWatch, Vcsim, wait_task
from corral.domain.events import VmDisappeared
from corral.domain.states import VmState
from helpers import ServerThread

from .conftest import TEMPLATE, TOOLS_RUNNING, SshStandIn

POOLS = 10


def document(tmp_path: Path, sim: Vcsim) -> dict[str, Any]:
    pools = [{"name": f"p{i}", "template": TEMPLATE, "size": 2, "folder": f"Pooled VMs/p{i}"} for i in range(POOLS)]
    pools.append({"name": "mig", "template": TEMPLATE, "size": 1, "folder": "Pooled VMs/mig"})
    return {
        ":providers": {":vsphere": sim.settings(feed_max_wait=2, connection_pool_size=12)},
        ":store": {"path": str(tmp_path / "corral.db")},
        ":config": {"check_interval": 0.5, "task_limit": 10, "migration_limit": 2, "domain": "pool.test",
                    "create_folders": True, "create_linked_clones": True, "experimental_features": True},
        ":runner": {"aggregation_window": 0.01, "retry_delay": 0.1},
        ":pools": pools,
    }


def noisy_neighbour(sim: Vcsim, host_name: str) -> None:
    """A big powered-on VM that is not corral's, on ``host_name``: the host is now the busiest."""
    content = sim.content
    datacenter = content.rootFolder.childEntity[0]
    cluster = datacenter.hostFolder.childEntity[0]
    host = next(h for h in cluster.host if h.name == host_name)
    config = vim.vm.ConfigSpec(name="noisy", memoryMB=3500, numCPUs=2, guestId="otherGuest64",
                               files=vim.vm.FileInfo(vmPathName="[LocalDS_0]"))
    vm = wait_task(datacenter.vmFolder.CreateVM_Task(config=config, pool=cluster.resourcePool, host=host))
    wait_task(vm.PowerOnVM_Task())


def test_pools_fill_a_checkout_migrates_and_one_session_survives_termination(
    tmp_path: Path, vcsim: Vcsim, ssh: SshStandIn
) -> None:
    server = ServerThread(document(tmp_path, vcsim))
    provider: Any = server.service.pools.providers["vsphere"]
    provider.probe = ssh.probe  # the only stand-in: DNS and sshd of guests vcsim does not run
    provider.pools = {name: dataclasses.replace(p, extra_config={**p.extra_config, **TOOLS_RUNNING})
                      for name, p in provider.pools.items()}
    watch = SessionWatch(vcsim).start()
    try:
        with server as srv, httpx.Client(base_url=f"{srv.url}/api/v3", timeout=30) as client:
            store = srv.service.pools.store

            # -- pools fill, through one session ---------------------------------------------
            def full() -> bool:
                return all(len(store.list_vms(pool=p["name"], states=[VmState.READY])) == p["size"]
                           for p in document(tmp_path, vcsim)[":pools"])

            srv.wait(full, timeout=90)
            assert watch.peak == 1, watch.counts
            ready = store.list_vms(states=[VmState.READY])
            assert len(ready) == 2 * POOLS + 1
            for vm in ready:  # in vcsim, in the pool's folder, with corral's annotation
                real = vcsim.vm(vm.name)
                assert real is not None and real.runtime.powerState == "poweredOn"
                assert real.parent.name == vm.pool and real.parent.parent.name == "Pooled VMs"
                assert real.runtime.host.name == vm.host
                extra = {o.key: o.value for o in real.config.extraConfig}
                assert extra["guestinfo.hostname"] == vm.name
            assert f"{ready[0].name}.pool.test:22" in ssh.asked  # name + domain, port 22

            # -- a checkout on the busiest host migrates in vcsim -----------------------------
            [mig] = store.list_vms(pool="mig", states=[VmState.READY])
            noisy_neighbour(vcsim, mig.host)
            inventory = srv.service.pools.manager.inventory["vsphere"]
            srv.wait(lambda: any(h.name == mig.host and h.memory_percent > 80 for h in inventory.hosts()), timeout=15)
            answer = client.post("/vm/mig").json()
            assert answer["ok"] and answer["mig"]["hostname"] == f"{mig.name}.pool.test"
            srv.wait(lambda: client.get(f"/vm/{mig.name}").json()[mig.name].get("migrated") == "true", timeout=30)
            moved_to = vcsim.vm(mig.name).runtime.host.name
            assert moved_to != mig.host
            assert store.get_vm(mig.name).host == moved_to and store.get_vm(mig.name).state is VmState.RUNNING

            # -- the vCenter terminates corral's session: it logs in again, nothing "disappears"
            bus = srv.service.pools.manager.bus
            seen = bus.seq
            assert vcsim.terminate_sessions() == 1
            name = client.post("/vm/p0").json()["p0"]["hostname"].split(".")[0]
            assert client.delete(f"/vm/{name}").json()["ok"]
            srv.wait(lambda: vcsim.vm(name) is None, timeout=30)  # destroyed after the re-login
            srv.wait(full, timeout=60)  # and refilled
            assert provider.session.relogins == 1
            # the feed read a fresh snapshot on the new session; on a loaded machine the long poll cut
            # by the session's end can also fail as a transport error first, costing one more
            assert provider.feed.snapshots in (2, 3)
            time.sleep(0.5)
            disappeared = {e.vm for _, e in bus.since(seen) or [] if isinstance(e, VmDisappeared)}
            assert disappeared <= {name}, disappeared
            assert len(vcsim.sessions()) == 1
            assert max(watch.counts[-5:]) == 1
        assert vcsim.sessions() == []  # logged out at shutdown
    finally:
        watch.stop()
