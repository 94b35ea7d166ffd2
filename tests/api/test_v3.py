"""The v3 API over real HTTP: a uvicorn server with the real manager, simulator and store."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

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
    assert body["pools"]["debian-12"] == {"ready": 3, "running": 0, "pending": 0, "max": 3}
    assert body["clone"]["count"]["total"] >= 4
    assert body["status"]["ok"] is True
    assert set(server.client.get("/status", params={"view": "capacity,queue"}).json()) == {"capacity", "queue"}


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
    assert again.status_code == 404 and again.json() == {"ok": False}
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
    assert server.service.store.get_vm(ubuntu).pool == "ubuntu"
    assert {server.service.store.get_vm(n).pool for n in body["debian-12"]["hostname"]} == {"debian-12"}


def test_unknown_pool_is_404_and_empty_pool_is_503(server):
    assert server.client.post("/vm/nope").status_code == 404
    assert server.client.post("/vm/debian+nope").status_code == 404
    empty = server.client.post("/vm/never")
    assert empty.status_code == 503 and empty.json() == {"ok": False}
    # all or nothing: asking for more than the pool holds takes none
    assert server.client.post("/vm/" + "+".join(["debian-12"] * 4)).status_code == 503
    assert server.client.get("/status").json()["pools"]["debian-12"]["ready"] == 3


def test_delete_of_a_ready_vm_is_404(server):
    status = server.client.get("/status").json()
    assert status["pools"]["debian-12"]["ready"] == 3
    service = server.service
    ready = [v for v in service.store.list_vms(pool="debian-12") if v.state.value == "ready"][0]
    resp = server.client.delete(f"/vm/{ready.name}")
    assert resp.status_code == 404
    assert service.store.get_vm(ready.name).state.value == "ready", "a VM is only ever in one state"


def test_get_unknown_vm_is_404(server):
    resp = server.client.get("/vm/doesnotexist")
    assert resp.status_code == 404 and resp.json() == {"ok": False}


def test_list_pools(server):
    assert sorted(server.client.get("/vm").json()) == ["debian", "debian-12", "never", "ubuntu"]


def test_cli_status_and_checkout_against_a_running_corral(server):
    import subprocess
    import sys

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "corral.cli", *args, "--url", server.url],
                              capture_output=True, text=True, timeout=60, env={"COLUMNS": "120", "PATH": ""})

    status = cli("status")
    assert status.returncode == 0, status.stderr
    assert "debian-12" in status.stdout and "ubuntu" in status.stdout
    out = cli("checkout", "debian", "ubuntu")
    assert out.returncode == 0, out.stderr
    assert '"ok": true' in out.stdout and ".example.com" in out.stdout
    assert server.client.get("/status").json()["queue"]["running"] == 2
    short = cli("checkout", "never")
    assert short.returncode == 1 and '"ok": false' in short.stdout
