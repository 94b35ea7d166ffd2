"""Migration at checkout through the HTTP API: the checkout answers at once, the VM moves after."""

from __future__ import annotations

from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from corral.domain.states import VmState
from helpers import ServerThread, quick_config


def test_a_vm_checked_out_on_a_busy_host_moves_and_says_so(tmp_path: Path) -> None:
    pools = [{"name": "a", "template": "t/a", "size": 2},
             {"name": "hog", "template": "big", "size": 0, "clone_target": "c1"}]
    doc = quick_config(tmp_path, pools, migration_limit=1, experimental_features=True)
    sim = doc[":providers"][":sim"]
    sim["hosts"] = [{"name": "h1", "cluster": "c1"}, {"name": "h2", "cluster": "c2"}]
    sim["templates"] = {"big": {"cpus": 4, "memory_mb": 200_000}}
    sim["latency"] = {**sim["latency"], "migrate": 500.0}  # half a second: the checkout answers long before
    with ServerThread(doc) as srv, httpx.Client(base_url=f"{srv.url}/api/v3", timeout=10) as client:
        store = srv.service.pools.store
        srv.wait(lambda: len(store.list_vms(pool="a", states=[VmState.READY])) == 2)
        assert sorted(v.host for v in store.list_vms(pool="a", states=[VmState.READY])) == ["h1", "h2"]
        assert client.post("/config/poolsize", json={"hog": 1}).status_code == 201
        srv.wait(lambda: [v.host for v in store.list_vms(pool="hog", states=[VmState.READY])] == ["h1"])

        names = []
        for _ in range(2):
            names.append(client.post("/vm/a").json()["a"]["hostname"])
            assert not store.get_vm(names[-1]).migrated  # the answer came before any move
        on_h1 = next(n for n in names if store.get_vm(n).host == "h1")
        on_h2 = next(n for n in names if n != on_h1)
        srv.wait(lambda: client.get(f"/vm/{on_h1}").json()[on_h1].get("migrated") == "true")
        info = client.get(f"/vm/{on_h1}").json()[on_h1]
        assert info["host"] == "h2" and info["state"] == "running" and info["migration_time"] >= 0
        inventory = srv.service.pools.manager.inventory["sim"]
        srv.wait(lambda: inventory.vm(on_h1).host == "h2")  # as the simulator reports it
        assert "migrated" not in client.get(f"/vm/{on_h2}").json()[on_h2]
        status = client.get("/status", params={"view": "scheduling"}).json()["scheduling"]
        assert status["migrations"]["done"] == 1 and status["migrations"]["not_needed"] == 1
        assert status["migrations"]["limit"] == 1
        # and the exposition counts it by host and times it, under vmpooler's names
        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(httpx.get(f"{srv.url}/prometheus").text) for s in f.samples}
        instance = ("vmpooler_instance", "vmpooler")
        assert metrics[("vmpooler_migrate_from_total", (("host_name", "h1"), instance))] == 1
        assert metrics[("vmpooler_migrate_to_total", (("host_name", "h2"), instance))] == 1
        assert metrics[("vmpooler_migrate_count", (("poolname", "a"), instance))] == 1
        assert ("corral_migrations_total", (("outcome", "done"),)) in metrics


def test_a_provider_that_cannot_migrate_says_why_in_the_status(tmp_path: Path) -> None:
    reason = "the endpoint cannot move VMs between hosts"
    doc = quick_config(tmp_path, [{"name": "a", "template": "t/a", "size": 2}], migration_limit=1,
                       experimental_features=True)
    with ServerThread(doc) as srv, httpx.Client(base_url=f"{srv.url}/api/v3", timeout=10) as client:
        store, provider = srv.service.pools.store, srv.service.pools.manager.providers["sim"]
        provider.cannot_migrate = reason
        srv.wait(lambda: len(store.list_vms(pool="a", states=[VmState.READY])) == 2)
        for _ in range(2):
            assert client.post("/vm/a").json()["ok"] is True
        status = client.get("/status", params={"view": "scheduling"}).json()["scheduling"]["migrations"]
        assert status["cannot_migrate"] == {"sim": reason}
        assert (status["unsupported"], status["queued"], status["not_needed"], status["failed"]) == (2, 0, 0, 0)
        assert provider.calls["migrate_vm"] == 0
        metrics = {(s.name, tuple(sorted(s.labels.items()))): s.value
                   for f in text_string_to_metric_families(httpx.get(f"{srv.url}/prometheus").text) for s in f.samples}
        assert metrics[("corral_migrations_total", (("outcome", "unsupported"),))] == 2
