"""Pool configuration over real HTTP: /config and /full_config (no secrets), and the
experimental endpoints that change sizes, templates and clone targets or reset pools."""

from __future__ import annotations

import pytest

from api.conftest import HASHES, tok
from corral.api.poolconfig import clone_target_problem
from corral.domain.states import VmState

POOLS = [
    {"name": "a", "alias": ["alpha"], "template": "t/a", "size": 1},
    {"name": "b", "template": "t/b", "size": 1},
]
EXPERIMENTAL = {"experimental_features": True}


def config_of(server, pool):
    body = server.client.get("/config").json()
    return next(p for p in body["pool_configuration"] if p["name"] == pool)


def ready_vms(server, pool):
    return [v for v in server.store.list_vms(pool=pool, states=(VmState.READY,)) if v.request_id is None]


def settled(server, pool, size, template=None):
    """The pool holds exactly ``size`` ready VMs (of ``template``) and nothing pending."""
    counts = server.store.counts().get(pool, {})
    vms = ready_vms(server, pool)
    return (len(vms) == size and counts.get(VmState.PENDING, 0) == 0
            and (template is None or all(v.template == template for v in vms)))


def test_config_and_full_config_show_no_secrets(make_server):
    secrets = ["Prov-Secret-1", "Redis-Secret-3", "Ldap-Secret-4", "Pool-Secret-5", "Cfg-Secret-6", *HASHES.values()]
    pools = [dict(POOLS[0], secret_sauce="Pool-Secret-5"), POOLS[1]]
    extra = {
        ":redis": {"server": "localhost", "password": "Redis-Secret-3"},
        ":auth": {"provider": "static", "users": dict(HASHES),
                  "ldap": {"host": "ldap.example.com", "base": "dc=example,dc=com", "user_object": "uid",
                           "service_account_hash": {"user_dn": "cn=svc", "password": "Ldap-Secret-4"}}},
    }
    # an unknown key of vmpooler's dummy provider is a warning (a simulator's would be an error)
    server = make_server(pools, sim={"provider_class": "dummy", "api_password": "Prov-Secret-1"}, extra=extra,
                         api_token="Cfg-Secret-6")
    token = server.token("alice")

    resp = server.client.get("/config")
    assert resp.status_code == 200
    body = resp.json()
    assert body["status"] == {"ok": True}
    entry = config_of(server, "a")
    assert {k: entry[k] for k in ("name", "template", "size", "provider", "alias", "template_ready")} == {
        "name": "a", "template": "t/a", "size": 1, "provider": "sim", "alias": ["alpha"], "template_ready": True}
    assert "secret_sauce" not in entry
    assert [p["name"] for p in body["pool_configuration"]] == ["a", "b"]

    full = server.client.get("/full_config")
    assert full.status_code == 200
    data = full.json()
    assert data["status"] == {"ok": True}
    assert data["full_config"]["auth"] == {"provider": "static"}
    assert {p["name"] for p in data["full_config"]["pools"]} == {"a", "b"}
    assert data["full_config"]["config"]["site_name"] == "vmpooler"
    for text in (resp.text, full.text, server.client.get("/full_config").text):
        for secret in [*secrets, token]:
            assert secret not in text, f"{secret[:8]}… leaked"
    for prefix in ("/api/v1", "/api/v2", ""):
        again = server.root.get(f"{prefix}/config")
        assert again.status_code == 200 and again.json() == body


def test_experimental_endpoints_are_405_when_disabled(make_server):
    server = make_server(POOLS)
    calls = [("POST", "/config/poolsize", {"a": 2}), ("DELETE", "/config/poolsize/a", None),
             ("POST", "/config/pooltemplate", {"a": "t/x"}), ("DELETE", "/config/pooltemplate/a", None),
             ("POST", "/config/clonetarget", {"a": "c2"}), ("DELETE", "/config/clonetarget/a", None),
             ("POST", "/poolreset", {"a": 1})]
    for method, path, body in calls:
        resp = server.client.request(method, path, json=body)
        assert resp.status_code == 405, (method, path)
        assert resp.json()["ok"] is False and "experimental_features" in resp.json()["error"]
    entry = config_of(server, "a")
    assert entry["size"] == 1 and entry["template"] == "t/a" and "clone_target" not in entry
    assert server.store.pool_overrides() == {}


def test_poolsize_grows_shrinks_and_resets(make_server):
    server = make_server(POOLS, **EXPERIMENTAL)
    grow = server.client.post("/config/poolsize", json={"a": 3})
    assert grow.status_code == 201 and grow.json() == {"ok": True}
    server.wait(lambda: settled(server, "a", 3))
    assert config_of(server, "a")["size"] == 3
    assert server.client.get("/status").json()["pools"]["a"]["max"] == 3

    same = server.client.post("/config/poolsize", json={"a": "3", "b": 1})
    assert same.status_code == 200 and same.json() == {"ok": True}

    for body, bad in (({"a": 2, "nope": 1}, ["nope"]), ({"a": -1}, ["a"]), ({"b": "many"}, ["b"])):
        refused = server.client.post("/config/poolsize", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["ok"] is False and refused.json()["not_configured"] == bad
    assert config_of(server, "a")["size"] == 3, "a refused request changes nothing"

    shrink = server.client.post("/config/poolsize", json={"a": 2})
    assert shrink.status_code == 201
    server.wait(lambda: settled(server, "a", 2))

    reset = server.client.delete("/config/poolsize/a")
    assert reset.status_code == 201
    assert reset.json() == {"ok": True, "pool_size_before_overrides": 1, "pool_size_before_reset": 2}
    server.wait(lambda: settled(server, "a", 1))
    assert config_of(server, "a")["size"] == 1
    assert server.store.pool_overrides().get("a", {}).get("size") is None
    unchanged = server.client.delete("/config/poolsize/a")
    assert unchanged.status_code == 200
    assert unchanged.json() == {"ok": True, "pool_size_before_overrides": 1, "pool_size_before_reset": 1}
    assert server.client.delete("/config/poolsize/nope").status_code == 404
    assert settled(server, "b", 1)


def test_pooltemplate_replaces_the_stock_and_clonetarget(make_server):
    server = make_server(POOLS, **EXPERIMENTAL)
    old = {v.name for v in ready_vms(server, "a")}
    b_before = {v.name for v in ready_vms(server, "b")}

    resp = server.client.post("/config/pooltemplate", json={"a": "t/a-v2"})
    assert resp.status_code == 201 and resp.json() == {"ok": True}
    server.wait(lambda: settled(server, "a", 1, "t/a-v2"))
    assert not old & {v.name for v in ready_vms(server, "a")}
    server.wait(lambda: all(server.store.get_vm(n).state is VmState.DESTROYED for n in old))
    assert config_of(server, "a")["template"] == "t/a-v2"
    assert {v.name for v in ready_vms(server, "b")} == b_before, "other pools are left alone"

    assert server.client.post("/config/pooltemplate", json={"a": "t/a-v2"}).status_code == 200
    for body in ({"a": "/abs"}, {"a": "t/"}, {"a": ""}, {"a": 5}, {"nope": "t/x"}, {"a": "t/\x1b[2J"}):
        refused = server.client.post("/config/pooltemplate", json=body)
        assert refused.status_code == 400, body
        assert refused.json()["ok"] is False and refused.json()["bad_templates"] == list(body)

    back = server.client.delete("/config/pooltemplate/a")
    assert back.status_code == 201
    assert back.json() == {"ok": True, "template_before_overrides": "t/a", "template_before_reset": "t/a-v2"}
    server.wait(lambda: settled(server, "a", 1, "t/a"))
    assert server.client.delete("/config/pooltemplate/a").status_code == 200
    assert server.client.delete("/config/pooltemplate/nope").status_code == 404

    target = server.client.post("/config/clonetarget", json={"a": "sim-cluster-01"})
    assert target.status_code == 201 and target.json() == {"ok": True}
    assert config_of(server, "a")["clone_target"] == "sim-cluster-01"
    assert server.client.post("/config/clonetarget", json={"a": "sim-cluster-01"}).status_code == 200
    refused = server.client.post("/config/clonetarget", json={"nope": "sim-cluster-01"})
    assert refused.status_code == 400 and refused.json()["bad_templates"] == ["nope"]


def test_clonetarget_must_be_a_cluster_the_provider_knows_and_can_be_reset(make_server):
    server = make_server(POOLS, **EXPERIMENTAL)
    for target in ("cluster-2", "sim-cluster-01\x1b[31m", "a\nb", "", 7, None, "x" * 300):
        refused = server.client.post("/config/clonetarget", json={"a": target})
        assert refused.status_code == 400, (target, refused.text)
        assert refused.json()["bad_templates"] == ["a"]
    unknown = server.client.post("/config/clonetarget", json={"a": "cluster-2"}).json()["error"]
    assert "no cluster 'cluster-2'" in unknown and "sim-cluster-01" in unknown
    assert "clone_target" not in config_of(server, "a") and server.store.pool_overrides() == {}

    assert server.client.post("/config/clonetarget", json={"a": "sim-cluster-01"}).status_code == 201
    back = server.client.delete("/config/clonetarget/a")
    assert back.status_code == 201
    assert back.json() == {"ok": True, "clone_target_before_overrides": None,
                           "clone_target_before_reset": "sim-cluster-01"}
    assert "clone_target" not in config_of(server, "a")
    assert server.store.pool_overrides().get("a", {}).get("clone_target") is None
    assert server.client.delete("/config/clonetarget/a").status_code == 200
    assert server.client.delete("/config/clonetarget/nope").status_code == 404
    # the pool places VMs again
    server.client.post("/vm/a")
    server.wait(lambda: settled(server, "a", 1))


@pytest.mark.parametrize("pool, target, clusters, problem", [
    ("a", "c1", ["c1", "c2"], None),
    ("a", "c3", ["c1", "c2"], "the provider knows no cluster 'c3' (clusters: c1, c2)"),
    ("a", "c1", [], "the provider knows no cluster 'c1' (clusters: none: the provider is not connected)"),
    ("nope", "c1", None, "no such pool"),
    ("a", "", ["c1"], "a clone target is the name of a cluster (1-255 printable characters)"),
    ("a", "c1\r\n", ["c1"], "a clone target is the name of a cluster (1-255 printable characters)"),
    ("a", 5, ["c1"], "a clone target is the name of a cluster (1-255 printable characters)"),
])
def test_clone_target_problem(pool, target, clusters, problem):
    assert clone_target_problem(pool, target, clusters) == problem


def test_poolreset_replaces_ready_vms(make_server):
    server = make_server([dict(POOLS[0], size=2), POOLS[1]], **EXPERIMENTAL)
    before = {v.name for v in ready_vms(server, "a")}
    b_before = {v.name for v in ready_vms(server, "b")}
    resp = server.client.post("/poolreset", json={"a": 1})
    assert resp.status_code == 201 and resp.json() == {"ok": True}
    server.wait(lambda: settled(server, "a", 2) and not before & {v.name for v in ready_vms(server, "a")})
    assert {v.name for v in ready_vms(server, "b")} == b_before
    refused = server.client.post("/poolreset", json={"a": 1, "nope": 1})
    assert refused.status_code == 400 and refused.json()["ok"] is False and refused.json()["bad_pools"] == ["nope"]
    assert server.client.post("/poolreset", content=b"").status_code == 400


def test_overrides_survive_a_restart(make_server):
    first = make_server(POOLS, **EXPERIMENTAL)
    assert first.client.post("/config/poolsize", json={"a": 2}).status_code == 201
    assert first.client.post("/config/pooltemplate", json={"a": "t/a-v2"}).status_code == 201
    assert first.client.post("/config/clonetarget", json={"b": "sim-cluster-01"}).status_code == 201
    first.stop()

    second = make_server(POOLS, **EXPERIMENTAL)
    entry = config_of(second, "a")
    assert entry["size"] == 2 and entry["template"] == "t/a-v2"
    assert config_of(second, "b")["clone_target"] == "sim-cluster-01"
    second.wait(lambda: settled(second, "a", 2, "t/a-v2"))

    assert second.client.delete("/config/poolsize/a").json()["pool_size_before_reset"] == 2
    second.stop()
    third = make_server(POOLS, **EXPERIMENTAL)
    entry = config_of(third, "a")
    assert entry["size"] == 1 and entry["template"] == "t/a-v2"


def test_changes_need_a_token_with_auth(make_server):
    server = make_server(POOLS, auth="static", **EXPERIMENTAL)
    token = server.token("alice")
    calls = [("POST", "/config/poolsize", {"a": 2}), ("DELETE", "/config/poolsize/a", None),
             ("POST", "/config/pooltemplate", {"a": "t/x"}), ("DELETE", "/config/pooltemplate/a", None),
             ("POST", "/config/clonetarget", {"a": "c2"}), ("DELETE", "/config/clonetarget/a", None),
             ("POST", "/poolreset", {"a": 1})]
    for method, path, body in calls:
        for headers in ({}, tok("v" * 32)):
            resp = server.client.request(method, path, json=body, headers=headers)
            assert resp.status_code == 401, (method, path, headers)
            assert resp.json()["ok"] is False
    assert server.store.pool_overrides() == {}
    assert server.client.get("/config").status_code == 200  # reading needs nothing

    resp = server.client.post("/config/poolsize", json={"a": 2}, headers=tok(token))
    assert resp.status_code == 201
    server.wait(lambda: settled(server, "a", 2))
