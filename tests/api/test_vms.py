"""VM routes over real HTTP (a uvicorn server with the real manager, simulator and store):
checkout, look-up, changes, return, disks and snapshots, in every API version."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from corral.domain.states import VmState
from helpers import ServerThread, quick_config

POOLS = [
    {"name": "debian-12", "alias": ["debian"], "template": "t/debian", "size": 3},
    {"name": "ubuntu", "template": "t/ubuntu", "size": 1, "domain": "example.com"},
    {"name": "never", "template": "t/never", "size": 0},
]


@pytest.fixture
def server(tmp_path: Path):
    with ServerThread(quick_config(tmp_path, POOLS)) as srv:
        srv.client = httpx.Client(base_url=f"{srv.url}/api/v3", timeout=10)
        srv.wait(lambda: srv.client.get("/status").json()["status"]["ok"])
        yield srv
        srv.client.close()


def test_status_shape_when_full(server):
    body = server.client.get("/status").json()
    assert body["capacity"] == {"current": 4, "total": 4, "percent": 100.0}
    assert body["queue"]["ready"] == 4 and body["queue"]["running"] == 0
    pool = body["pools"]["debian-12"]
    counts = {k: pool[k] for k in ("ready", "running", "pending", "max")}
    assert counts == {"ready": 3, "running": 0, "pending": 0, "max": 3}
    assert pool["alias"] == ["debian"]
    assert body["clone"]["count"]["total"] >= 4
    assert body["status"]["ok"] is True
    views = server.client.get("/status", params={"view": "capacity,queue"}).json()
    assert set(views) == {"capacity", "queue", "status"}


def test_checkout_get_delete_cycle(server):
    resp = server.client.post("/vm/debian-12")
    assert resp.status_code == 200
    body = resp.json()
    assert body["ok"] is True
    hostname = body["debian-12"]["hostname"]
    assert isinstance(hostname, str) and len(hostname) == 15

    info = server.client.get(f"/vm/{hostname}").json()
    assert info["ok"] is True
    vm = info[hostname]
    assert vm["state"] == "running" and vm["template"] == "debian-12"
    assert vm["lifetime"] == 24 and vm["remaining"] <= 24 and vm["host"].startswith("sim-host")

    assert server.client.delete(f"/vm/{hostname}").json() == {"ok": True}
    again = server.client.delete(f"/vm/{hostname}")
    assert again.status_code == 404 and again.json()["ok"] is False
    server.wait(lambda: server.client.get(f"/vm/{hostname}").json()[hostname]["state"] == "destroyed")


def test_several_pools_alias_and_domain(server):
    resp = server.client.post("/vm/debian+debian+ubuntu")
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert len(body["debian"]["hostname"]) == 2 and len(set(body["debian"]["hostname"])) == 2
    fqdn = body["ubuntu"]["hostname"]
    assert fqdn.endswith(".example.com")
    assert server.client.get(f"/vm/{fqdn}").json()["ok"] is True


def test_interleaved_pools_get_hostnames_of_their_own_pool(server):
    body = server.client.post("/vm/debian-12+ubuntu+debian-12").json()
    ubuntu = body["ubuntu"]["hostname"].split(".")[0]
    assert server.service.pools.store.get_vm(ubuntu).pool == "ubuntu"
    assert {server.service.pools.store.get_vm(n).pool for n in body["debian-12"]["hostname"]} == {"debian-12"}


def test_unknown_pool_is_404_and_empty_pool_is_503(server):
    assert server.client.post("/vm/nope").status_code == 404
    assert server.client.post("/vm/debian+nope").status_code == 404
    empty = server.client.post("/vm/never")
    assert empty.status_code == 503 and empty.json()["ok"] is False
    assert empty.json()["empty"] == ["never"] and "never has 0 ready" in empty.json()["error"]
    # all or nothing: asking for more than the pool holds takes none, and says which pool was short
    short = server.client.post("/vm/" + "+".join(["debian-12"] * 4) + "+ubuntu")
    assert short.status_code == 503 and short.json()["empty"] == ["debian-12"], short.text
    assert "debian-12 has 3 ready" in short.json()["error"]
    assert server.client.get("/status").json()["pools"]["debian-12"]["ready"] == 3


def test_delete_of_a_ready_vm_is_404(server):
    status = server.client.get("/status").json()
    assert status["pools"]["debian-12"]["ready"] == 3
    service = server.service
    ready = [v for v in service.pools.store.list_vms(pool="debian-12") if v.state.value == "ready"][0]
    resp = server.client.delete(f"/vm/{ready.name}")
    assert resp.status_code == 404
    assert service.pools.store.get_vm(ready.name).state.value == "ready", "a VM is only ever in one state"


def test_get_unknown_vm_is_404(server):
    resp = server.client.get("/vm/doesnotexist")
    assert resp.status_code == 404 and resp.json()["ok"] is False


def test_list_pools(server):
    assert server.client.get("/vm").json() == ["debian-12", "ubuntu", "never"]


def test_cli_status_and_checkout_against_a_running_corral(server):
    import os
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.cli", *args, "--url", server.url],
                              capture_output=True, text=True, timeout=60, env={**os.environ, "COLUMNS": "120"})

    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert "debian-12" in status.stdout and "ubuntu" in status.stdout
    out = cli("checkout", "debian", "ubuntu", "--json")
    assert out.returncode == 0, out.stderr
    assert '"ok": true' in out.stdout and ".example.com" in out.stdout
    assert server.client.get("/status").json()["queue"]["running"] == 2
    short = cli("checkout", "never")
    assert short.returncode == 5 and "answered 503: not enough ready VMs: never has 0 ready" in short.stderr


# -- versions ------------------------------------------------------------------------------------
def _raw(server) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10)


@pytest.mark.parametrize("prefix", ["/api/v1", ""])
def test_v1_and_unversioned_answer_short_names_and_a_domain_key(server, prefix):
    with _raw(server) as client:
        body = client.post(f"{prefix}/vm/ubuntu").json()
        assert body["ok"] is True and body["domain"] == "example.com"
        name = body["ubuntu"]["hostname"]
        assert "." not in name and len(name) == 15
        info = client.get(f"{prefix}/vm/{name}").json()[name]
        assert info["domain"] == "example.com" and info["fqdn"] == f"{name}.example.com"
        assert client.delete(f"{prefix}/vm/{name}.example.com").json() == {"ok": True}


@pytest.mark.parametrize("prefix", ["/api/v2", "/api/v3"])
def test_v2_and_v3_answer_fqdns_without_a_domain_key(server, prefix):
    with _raw(server) as client:
        body = client.post(f"{prefix}/vm/ubuntu").json()
        assert "domain" not in body and body["ubuntu"]["hostname"].endswith(".example.com")
        short = body["ubuntu"]["hostname"].split(".")[0]
        info = client.get(f"{prefix}/vm/{short}").json()
        assert "domain" not in info[short]
        assert client.get(f"{prefix}/status").json()["queue"]["running"] == 1


def test_every_version_serves_every_route_family(server):
    with _raw(server) as client:
        for prefix in ("/api/v3", "/api/v2", "/api/v1", ""):
            for path in ("/vm", "/status", "/summary", "/poolstat?pool=ubuntu", "/totalrunning", "/config",
                         "/healthcheck"):
                resp = client.get(prefix + path)
                assert resp.status_code == 200, (prefix, path, resp.text)
            assert client.get(f"{prefix}/token").status_code == 404  # no :auth: configured
            assert client.post(f"{prefix}/ondemandvm", json={"ubuntu": 1}).status_code == 201


def test_trailing_slashes_are_accepted(server):
    assert server.client.get("/vm/").status_code == 200
    assert server.client.get("/status/").status_code == 200
    name = server.client.post("/vm/debian-12/").json()["debian-12"]["hostname"]
    assert server.client.get(f"/vm/{name}/").json()["ok"] is True


# -- checkout forms and validation ---------------------------------------------------------------
def test_post_body_counts_as_strings_or_numbers(server):
    resp = server.client.post("/vm", json={"debian-12": "2", "ubuntu": 1})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert isinstance(body["debian-12"]["hostname"], list) and len(body["debian-12"]["hostname"]) == 2
    assert isinstance(body["ubuntu"]["hostname"], str)


def test_post_body_all_or_nothing(server):
    resp = server.client.post("/vm", json={"debian-12": 2, "ubuntu": 2})
    assert resp.status_code == 503 and resp.json()["ok"] is False and resp.json()["empty"] == ["ubuntu"]
    assert server.client.get("/status").json()["queue"]["running"] == 0


@pytest.mark.parametrize("body, problem", [
    (b"{not json", "Invalid JSON"),
    (b"[1, 2]", "must be a JSON object"),
    (b'{"debian-12": 0}', "between 1 and 100"),
    (b'{"debian-12": 101}', "between 1 and 100"),
    (b'{"debian-12": "two"}', "whole number"),
    (b'{"debian-12": -1}', "between 1 and 100, got -1"),
    (b'{"debian-12": "-1"}', "whole number"),
    (b'{"debian-12": 1.5}', "whole number"),
    (b'{"debian-12": "' + b"9" * 5000 + b'"}', "a number of 5000 digits"),
    (b'{"debian-12": ' + b"9" * 5000 + b'}', "a number of 5000 digits"),
    (b'{"debian-12": "\\u0661"}', "whole number"),
    (b'{"debian-12": true}', "whole number"),
    (b'{"bad name!": 1}', "Invalid pool name"),
    (b'{"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}', "too complex"),
    (b"", "empty"),
    (b'{"x": "' + b"a" * 11000 + b'"}', "too large"),
])
def test_bad_checkout_bodies_are_400_naming_the_problem(server, body, problem):
    resp = server.client.post("/vm", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert resp.json()["ok"] is False and problem in resp.json()["error"]


def test_path_validation(server):
    assert "Invalid pool name" in server.client.post("/vm/bad%20name").json()["error"]
    too_many = server.client.post("/vm/" + "+".join(["ubuntu"] * 101))
    assert too_many.status_code == 400 and "between 1 and 100" in too_many.json()["error"]
    assert server.client.get("/vm/bad_host!").status_code == 400
    assert server.client.get("/vm/" + "a" * 300).status_code == 400


def test_unknown_routes_and_methods_are_404_ok_false(server):
    with _raw(server) as client:
        for method, path in [("GET", "/nope"), ("GET", "/api/v3/nope"), ("PATCH", "/api/v3/vm"),
                             ("GET", "/api/v4/vm")]:
            resp = client.request(method, path)
            assert resp.status_code == 404 and resp.json() == {"ok": False}, (method, path)


def test_openapi_and_docs(server):
    with _raw(server) as client:
        spec = client.get("/openapi.json").json()
        assert "/api/v3/vm/{pools}" in spec["paths"] and "/api/v3/ondemandvm" in spec["paths"]
        assert client.get("/api/openapi.json").json()["paths"] == spec["paths"]
        assert "swagger" in client.get("/api/docs").text.lower()


# -- aliases and backend_weight --------------------------------------------------------------------
def test_alias_shared_by_pools_is_served_from_either(tmp_path: Path):
    pools = [{"name": "a", "alias": ["any"], "template": "t/a", "size": 2},
             {"name": "b", "alias": ["any"], "template": "t/b", "size": 2}]
    with ServerThread(quick_config(tmp_path, pools)) as srv, _raw(srv) as client:
        srv.wait(lambda: client.get("/api/v3/status").json()["status"]["ok"])
        body = client.post("/api/v3/vm", json={"any": 4}).json()
        names = body["any"]["hostname"]
        assert len(names) == 4, body
        assert sorted(srv.service.pools.store.get_vm(n).pool for n in names) == ["a", "a", "b", "b"]
        assert client.post("/api/v3/vm/any").status_code == 503


def test_backend_weight_picks_by_clone_target(tmp_path: Path):
    pools = [{"name": "heavy", "alias": ["w"], "template": "t/h", "size": 30, "clone_target": "c1"},
             {"name": "light", "alias": ["w"], "template": "t/l", "size": 30, "clone_target": "c2"}]
    doc = quick_config(tmp_path, pools, backend_weight={"c1": 9, "c2": 1})
    doc[":providers"][":sim"]["hosts"] = [{"name": "h1", "cluster": "c1"}, {"name": "h2", "cluster": "c2"}]
    with ServerThread(doc) as srv, _raw(srv) as client:
        srv.wait(lambda: client.get("/api/v3/status").json()["status"]["ok"], timeout=20)
        picked = []
        for _ in range(20):
            name = client.post("/api/v3/vm/w").json()["w"]["hostname"]
            picked.append(srv.service.pools.store.get_vm(name).pool)
        # 9:1 odds: 20 draws with fewer than 12 "heavy" happen with probability < 0.2%
        assert picked.count("heavy") >= 12, picked


# -- changes, return, disks, snapshots -------------------------------------------------------------
def test_put_lifetime_and_tags(server):
    name = server.client.post("/vm/debian-12").json()["debian-12"]["hostname"]
    assert server.client.put(f"/vm/{name}", json={"lifetime": "2"}).json() == {"ok": True}
    assert server.client.put(f"/vm/{name}", json={"tags": {"department": "eng", "user": "jdoe"}}).json()["ok"]
    info = server.client.get(f"/vm/{name}").json()[name]
    assert info["lifetime"] == 2 and info["tags"] == {"department": "eng", "user": "jdoe"}
    assert info["remaining"] <= 2
    bad = server.client.put(f"/vm/{name}", json={"lifetime": 0, "tags": "x", "colour": "red"})
    assert bad.status_code == 400
    failures = bad.json()["failure"]
    assert len(failures) == 3 and any("colour" in f for f in failures) and any("hash" in f for f in failures)
    evil = server.client.put(f"/vm/{name}", json={"tags": {"k": "<script>"}})
    assert evil.status_code == 400 and "Invalid value" in evil.json()["error"]
    assert server.client.put("/vm/nosuchvm", json={"lifetime": 1}).status_code == 404


def test_disks_and_snapshots_go_through_the_provider(server):
    name = server.client.post("/vm/debian-12").json()["debian-12"]["hostname"]
    disk = server.client.post(f"/vm/{name}/disk/8")
    assert disk.status_code == 202 and disk.json() == {"ok": True, name: {"disk": "+8gb"}}
    assert server.client.post(f"/vm/{name}/disk/16").status_code == 202
    snap = server.client.post(f"/vm/{name}/snapshot")
    assert snap.status_code == 202
    snapshot = snap.json()[name]["snapshot"]
    assert len(snapshot) == 32
    server.wait(lambda: server.client.get(f"/vm/{name}").json()[name].get("snapshots") == [snapshot])
    server.wait(lambda: sorted(server.client.get(f"/vm/{name}").json()[name].get("disk", [])) == ["+16gb", "+8gb"])
    provider = server.service.pools.providers["sim"]
    assert sorted(provider.controls.vm_disks(name)) == [8, 16] or len(provider.controls.vm_disks(name)) == 2
    assert snapshot in provider.controls.vm_snapshots(name)
    assert server.client.post(f"/vm/{name}/snapshot/{snapshot}").status_code == 202
    assert server.client.post(f"/vm/{name}/snapshot/unknown").status_code == 404
    for size in ("0", "2049", "big"):
        resp = server.client.post(f"/vm/{name}/disk/{size}")
        assert resp.status_code == 400 and "Disk size" in resp.json()["error"]
    assert server.client.post("/vm/nosuchvm/disk/8").status_code == 404


def test_a_failed_disk_task_changes_nothing(server):
    name = server.client.post("/vm/debian-12").json()["debian-12"]["hostname"]
    provider = server.service.pools.providers["sim"]
    provider.controls.fail_next("disk", 1)
    assert server.client.post(f"/vm/{name}/disk/8").status_code == 202
    server.wait(lambda: server.service.pools.manager.tasks.failures == 1)
    assert "disk" not in server.client.get(f"/vm/{name}").json()[name]


# -- many clients at once ---------------------------------------------------------------------------
def test_64_concurrent_clients_never_get_the_same_vm(tmp_path: Path):
    import asyncio

    pools = [{"name": "p", "template": "t/p", "size": 50}]
    doc = quick_config(tmp_path, pools, task_limit=50)
    with ServerThread(doc) as srv:
        srv.wait(lambda: srv.service.pools.store.counts().get("p", {}).get(VmState.READY, 0) == 50, timeout=30)
        srv.service.pools.providers["sim"].controls.stall("create", 3600)  # no refill during the test: the stock is 50

        async def client(n: int) -> list[tuple[int, str | None]]:
            out = []
            async with httpx.AsyncClient(base_url=f"{srv.url}/api/v3", timeout=30) as c:
                for _ in range(2):
                    resp = await c.post("/vm/p")
                    out.append((resp.status_code, resp.json().get("p", {}).get("hostname")))
            return out

        async def all_clients() -> list[tuple[int, str | None]]:
            results = await asyncio.gather(*(client(i) for i in range(64)))
            return [r for rs in results for r in rs]

        results = asyncio.run(all_clients())
        codes = [code for code, _ in results]
        names = [name for code, name in results if code == 200]
        assert all(code in (200, 503) for code in codes), codes
        assert len(names) == 50 and len(set(names)) == 50, "every VM handed out once, and only once"
        assert codes.count(503) == 128 - 50
        running = srv.service.pools.store.list_vms(pool="p", states=(VmState.RUNNING,))
        assert sorted(v.name for v in running) == sorted(names)
