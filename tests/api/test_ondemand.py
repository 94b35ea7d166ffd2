"""On-demand requests over real HTTP: submit (body and path forms), poll, delete, TTL
expiry, ownership with auth, the clone limit, and the pools' stock left alone."""

from __future__ import annotations

import re
import time

from api.conftest import tok
from corral.domain.states import VmState

POOLS = [{"name": "od", "alias": ["odalias"], "template": "t/od", "size": 1}]
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"


def ready_answer(server, request_id, **headers):
    """Poll until the request is ready; its 200 body."""
    def done():
        resp = server.client.get(f"/ondemandvm/{request_id}")
        return resp.json() if resp.status_code == 200 else None
    return server.wait(done)


def test_submit_poll_and_the_pool_stock_is_left_alone(make_server):
    server = make_server(POOLS)
    stock = server.ready("od")
    assert len(stock) == 1

    resp = server.client.post("/ondemandvm", json={"od": 2})
    assert resp.status_code == 201
    first = resp.json()
    assert set(first) == {"ok", "request_id"} and first["ok"] is True and re.fullmatch(UUID, first["request_id"])

    path = server.client.post("/ondemandvm/od+odalias")
    assert path.status_code == 201 and path.json()["ok"] is True
    second = path.json()["request_id"]

    custom = server.client.post("/ondemandvm", json={"odalias": "1", "request_id": "my-req.1"})
    assert custom.status_code == 201 and custom.json() == {"ok": True, "request_id": "my-req.1"}
    again = server.client.post("/ondemandvm", json={"od": 1, "request_id": "my-req.1"})
    assert again.status_code == 409
    assert again.json()["ok"] is False and "my-req.1" in again.json()["message"]

    body = ready_answer(server, first["request_id"])
    assert set(body) == {"ok", "request_id", "ready", "od"}
    assert body["ok"] is True and body["ready"] is True and body["request_id"] == first["request_id"]
    names = body["od"]["hostname"]
    assert len(names) == 2 and len(set(names)) == 2

    by_path = ready_answer(server, second)
    assert len(by_path["od"]["hostname"]) == 1 and len(by_path["odalias"]["hostname"]) == 1
    names += by_path["od"]["hostname"] + by_path["odalias"]["hostname"]
    names += ready_answer(server, "my-req.1")["odalias"]["hostname"]
    assert len(set(names)) == 5 and not set(names) & set(stock)

    for name in names:
        info = server.client.get(f"/vm/{name}").json()[name]
        assert info["state"] == "running" and info["template"] == "od" and info["request_id"]
    status = server.client.get("/status").json()["pools"]["od"]
    assert status["ready"] == 1 and status["running"] == 5 and status["max"] == 1
    assert server.ready("od") == stock, "on-demand VMs never come out of (or go into) the stock"

    taken = server.client.post("/vm/od").json()["od"]["hostname"]
    assert taken == stock[0]


def test_refused_requests(make_server):
    server = make_server(POOLS, max_ondemand_instances_per_request=3)
    unknown = server.client.post("/ondemandvm", json={"od": 1, "nope": 2})
    assert unknown.status_code == 404
    assert unknown.json()["ok"] is False and unknown.json()["bad_templates"] == ["nope"]
    path = server.client.post("/ondemandvm/od+nope+zilch")
    assert path.status_code == 404 and path.json()["bad_templates"] == ["nope", "zilch"]

    many = server.client.post("/ondemandvm", json={"od": 4})
    assert many.status_code == 403
    assert many.json()["ok"] is False and "3" in many.json()["message"]
    assert server.client.post("/ondemandvm/" + "+".join(["od"] * 4)).status_code == 403

    for raw in (b"{not json", b"[1]", b""):
        bad = server.client.post("/ondemandvm", content=raw)
        assert bad.status_code == 400 and bad.json()["ok"] is False, raw
    for body in ({"od": 0}, {"od": "two"}, {"od": 1, "request_id": "no spaces"}, {"request_id": "x"},
                 {"od": 1, "request_id": "trailing-newline\n"}, {"od": 1, "request_id": 7}):
        bad = server.client.post("/ondemandvm", json=body)
        assert bad.status_code == 400 and bad.json()["ok"] is False, body

    missing = server.client.get("/ondemandvm/no-such-request")
    assert missing.status_code == 404
    assert missing.json() == {"ok": False, "message": "no request found for request_id 'no-such-request'"}
    assert server.client.delete("/ondemandvm/no-such-request").status_code == 404
    assert server.store.list_requests(("pending", "ready", "failed", "deleted")) == []


def test_pending_counts_then_ttl_failure_destroys_its_vms(make_server):
    # "never" has a template the simulator refuses: its VM can never be built.
    pools = [{"name": "od", "template": "t/od", "size": 0}, {"name": "never", "template": "t/missing", "size": 0}]
    server = make_server(pools, ondemand_request_ttl=0.03,
                         sim={"strict_templates": True, "templates": {"t/od": {"cpus": 1, "memory_mb": 1024}}})
    request_id = server.client.post("/ondemandvm", json={"od": 1, "never": 1}).json()["request_id"]

    def half_ready():
        resp = server.client.get(f"/ondemandvm/{request_id}")
        return resp if resp.status_code == 202 and resp.json()["od"]["ready"] == "1" else None

    resp = server.wait(half_ready)
    assert resp.json() == {"ok": True, "request_id": request_id, "ready": False,
                           "od": {"ready": "1", "pending": "0"}, "never": {"ready": "0", "pending": "1"}}
    [built] = [vm for vm in server.store.request_vms(request_id) if vm.state is VmState.RUNNING]

    failed = server.wait(lambda: (r := server.client.get(f"/ondemandvm/{request_id}")).status_code == 200 and r)
    assert failed.json() == {
        "ok": True, "request_id": request_id, "ready": False,
        "message": "The request failed to provision instances within the configured ondemand_request_ttl '0.03'"}
    server.wait(lambda: server.store.request_vms(request_id) == [])
    assert server.store.get_vm(built.name).state is VmState.DESTROYED
    assert server.sim.calls["destroy_vm"] >= 1


def test_delete_destroys_the_vms(make_server):
    server = make_server(POOLS)
    request_id = server.client.post("/ondemandvm", json={"od": 2}).json()["request_id"]
    names = ready_answer(server, request_id)["od"]["hostname"]

    resp = server.client.delete(f"/ondemandvm/{request_id}")
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    server.wait(lambda: all(server.store.get_vm(n).state is VmState.DESTROYED for n in names))
    assert server.client.get(f"/vm/{names[0]}").json()[names[0]]["state"] == "destroyed"

    after = server.client.get(f"/ondemandvm/{request_id}")
    assert after.status_code == 200
    assert after.json() == {"ok": True, "request_id": request_id, "ready": False,
                            "message": "The request has been deleted"}
    twice = server.client.delete(f"/ondemandvm/{request_id}")
    assert twice.status_code == 200
    assert twice.json() == {"ok": True, "message": "the request has already been deleted"}
    assert server.ready("od") and len(server.ready("od")) == 1  # the stock is untouched

    # deleted while its VMs are still being cloned: they are destroyed once created
    server.sim.controls.stall("create", 0.1)
    early = server.client.post("/ondemandvm", json={"od": 2}).json()["request_id"]
    server.wait(lambda: len(server.store.request_vms(early)) == 2)
    assert server.client.delete(f"/ondemandvm/{early}").json() == {"ok": True}
    server.wait(lambda: server.store.request_vms(early) == [])
    assert server.client.get(f"/ondemandvm/{early}").json()["message"] == "The request has been deleted"
    assert len(server.ready("od")) == 1


def test_with_auth_a_token_is_required_and_owns_the_request(make_server):
    server = make_server(POOLS, auth="static", vm_lifetime_auth=3)
    alice, bob = server.token("alice"), server.token("bob")

    anonymous = server.client.post("/ondemandvm", json={"od": 1})
    assert anonymous.status_code == 401 and anonymous.json()["ok"] is False
    assert server.client.post("/ondemandvm/od", headers=tok("w" * 32)).status_code == 401
    assert server.store.list_requests(("pending",)) == []

    resp = server.client.post("/ondemandvm", json={"od": 2}, headers=tok(alice))
    assert resp.status_code == 201
    request_id = resp.json()["request_id"]
    names = ready_answer(server, request_id)["od"]["hostname"]
    for name in names:
        vm = server.store.get_vm(name)
        assert vm.user == "alice" and vm.state is VmState.RUNNING
        assert server.client.get(f"/vm/{name}").json()[name]["lifetime"] == 3
    shown = server.client.get(f"/token/{alice}").json()[alice]
    assert sorted(shown["vms"]["running"]) == sorted(names)
    # the owner's VMs: others may not return them
    assert server.client.delete(f"/vm/{names[0]}", headers=tok(bob)).status_code == 403

    assert server.client.delete(f"/ondemandvm/{request_id}").status_code == 401
    other = server.client.delete(f"/ondemandvm/{request_id}", headers=tok(bob))
    assert other.status_code == 403 and other.json()["ok"] is False
    assert server.store.get_request(request_id).status == "ready"
    assert server.client.delete(f"/ondemandvm/{request_id}", headers=tok(alice)).json() == {"ok": True}
    server.wait(lambda: all(server.store.get_vm(n).state is VmState.DESTROYED for n in names))


def test_clone_limit_is_respected(make_server):
    server = make_server(POOLS, ondemand_clone_limit=2)
    server.sim.controls.stall("create", 0.15)
    inflight = server.service.pools.manager.ondemand.inflight
    request_id = server.client.post("/ondemandvm", json={"od": 5}).json()["request_id"]
    seen, stock = set(), set()
    deadline = time.monotonic() + 15
    while server.client.get(f"/ondemandvm/{request_id}").status_code == 202:
        assert time.monotonic() < deadline, "the request never became ready"
        seen.add(len(inflight))
        stock.add(len(server.ready("od")))
        time.sleep(0.005)
    assert max(seen) == 2, seen
    assert stock == {1}, "the pool's own stock stays at its size while on-demand VMs are built"
    assert len(ready_answer(server, request_id)["od"]["hostname"]) == 5


def test_a_request_that_cannot_be_placed_says_why(make_server):
    # the "huge" template needs more memory than any simulated host has
    pools = [{"name": "huge", "template": "t/huge", "size": 0}]
    huge = {"t/huge": {"cpus": 1, "memory_mb": 10**7}}
    server = make_server(pools, ondemand_request_ttl=0.03, sim={"templates": huge})
    request_id = server.client.post("/ondemandvm", json={"huge": 1}).json()["request_id"]
    pending = server.wait(lambda: (r := server.client.get(f"/ondemandvm/{request_id}")).status_code == 202
                          and "placement_error" in r.json() and r)
    why = pending.json()["placement_error"]["huge"]
    assert why.startswith("no host can take a VM of 1 vCPU, 10000000 MB") and "(4 hosts rejected): memory x4" in why
    failed = server.wait(lambda: (r := server.client.get(f"/ondemandvm/{request_id}")).status_code == 200 and r)
    assert failed.json()["message"].endswith(f"ondemand_request_ttl '0.03': huge: {why}")


def test_a_full_runner_queue_answers_503_with_the_reason(make_server):
    pools = [{"name": "od", "template": "t/od", "size": 0}]
    server = make_server(pools, extra={":runner": {"queue_limit": 4, "aggregation_window": 0.01}})
    resp = server.client.post("/ondemandvm", json={"od": 5})
    assert resp.status_code == 503 and resp.headers["retry-after"] == "5"
    body = resp.json()
    assert body["ok"] is False and "asks for 5 VMs" in body["message"] and "room for 4" in body["message"]
    assert server.store.list_requests(("pending", "ready", "failed", "deleted")) == []
    status = server.client.get("/status").json()["runner"]
    assert status["refused"] == 1 and status["queue_limit"] == 4
    fits = server.client.post("/ondemandvm", json={"od": 4})
    assert fits.status_code == 201
    assert len(ready_answer(server, fits.json()["request_id"])["od"]["hostname"]) == 4
