"""Tokens and authentication over real HTTP: create/list/show/delete, hashed storage, VM
ownership, lifetimes and tags, the dummy provider, and no secrets in logs or errors."""

from __future__ import annotations

import re

import pytest

from api.conftest import HASHES, PASSWORDS, basic, tok
from corral.auth.tokens import hash_token, token_hint
from corral.config import ConfigError, parse_config
from helpers import quick_config

POOLS = [{"name": "deb", "template": "t/deb", "size": 3}]


def test_post_token_with_basic_credentials(make_server):
    server = make_server(POOLS, auth="static")
    resp = server.client.post("/token", headers=basic("alice"))
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"ok", "token"} and body["ok"] is True
    assert re.fullmatch(r"[a-z][a-z0-9]{31}", body["token"])
    assert server.token("alice") != body["token"]

    for headers in (basic("alice", "wrong-password"), basic("alice", PASSWORDS["bob"]), {},
                    {"Authorization": "Basic !!!"}, {"Authorization": "Bearer x"}):
        bad = server.client.post("/token", headers=headers)
        assert bad.status_code == 401, headers
        assert bad.headers["WWW-Authenticate"].startswith("Basic")
        assert bad.json()["ok"] is False and "token" not in bad.json()
    unknown = server.client.post("/token", headers={"Authorization": "Basic Y2Fyb2w6eA=="})
    assert unknown.status_code == 401  # carol:x, no such user


def test_token_routes_are_404_without_auth(make_server):
    server = make_server(POOLS)
    for method, path in (("POST", "/token"), ("GET", "/token"), ("GET", "/token/abcdef"),
                         ("DELETE", "/token/abcdef")):
        resp = server.client.request(method, path, headers=basic("alice"))
        assert resp.status_code == 404, (method, path)
        assert resp.json()["ok"] is False


def test_list_shows_only_the_callers_tokens(make_server):
    server = make_server(POOLS, auth="static")
    a1, a2, b1 = server.token("alice"), server.token("alice"), server.token("bob")
    assert server.client.post("/vm/deb", headers=tok(a1)).status_code == 200  # uses a1

    resp = server.client.get("/token", headers=basic("alice"))
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"ok", token_hint(a1), token_hint(a2)} and body["ok"] is True
    date = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}"
    for hint in (token_hint(a1), token_hint(a2)):
        assert re.fullmatch(date, body[hint]["created"])
    assert re.fullmatch(date, body[token_hint(a1)]["last"])
    assert body[token_hint(a2)]["last"] == "never"
    assert a1 not in resp.text and a2 not in resp.text and b1 not in resp.text

    bob = server.client.get("/token", headers=basic("bob")).json()
    assert set(bob) == {"ok", token_hint(b1)}
    assert server.client.get("/token", headers=basic("bob", "nope")).status_code == 401


def test_show_token_with_its_running_vms(make_server):
    server = make_server(POOLS, auth="static")
    token = server.token("alice")
    fresh = server.client.get(f"/token/{token}").json()
    assert fresh["ok"] is True and fresh[token]["user"] == "alice" and fresh[token]["last"] == "never"
    assert "vms" not in fresh[token]

    taken = server.client.post("/vm/deb+deb", headers=tok(token)).json()["deb"]["hostname"]
    server.client.post("/vm/deb")  # not with the token
    resp = server.client.get(f"/token/{token}")
    assert resp.status_code == 200
    info = resp.json()[token]
    assert set(info) == {"user", "created", "last", "vms"}
    assert info["user"] == "alice" and info["last"] != "never"
    assert sorted(info["vms"]["running"]) == sorted(taken)

    missing = server.client.get("/token/" + "x" * 32)
    assert missing.status_code == 404 and missing.json()["ok"] is False
    assert server.client.get("/token/not%20a%20token").status_code == 404


def test_delete_own_token_only(make_server):
    server = make_server(POOLS, auth="static")
    alice, bob = server.token("alice"), server.token("bob")

    other = server.client.delete(f"/token/{bob}", headers=basic("alice"))
    assert other.status_code == 403 and other.json()["ok"] is False
    unknown = server.client.delete("/token/" + "q" * 32, headers=basic("alice"))
    assert unknown.status_code == 404 and unknown.json()["ok"] is False
    nocreds = server.client.delete(f"/token/{alice}")
    assert nocreds.status_code == 401 and "WWW-Authenticate" in nocreds.headers

    resp = server.client.delete(f"/token/{alice}", headers=basic("alice"))
    assert resp.status_code == 200 and resp.json() == {"ok": True}
    assert server.client.get(f"/token/{alice}").status_code == 404
    gone = server.client.post("/vm/deb", headers=tok(alice))
    assert gone.status_code == 401 and gone.json()["ok"] is False
    assert server.client.get(f"/token/{bob}").json()[bob]["user"] == "bob"  # bob's still works
    assert server.client.get("/token", headers=basic("alice")).status_code == 404  # none left


def test_tokens_are_stored_hashed(make_server, tmp_path):
    server = make_server(POOLS, auth="static")
    token = server.token("alice")
    assert server.client.post("/vm/deb", headers=tok(token)).status_code == 200
    server.stop()
    files = sorted(tmp_path.glob("corral.db*"))
    raw = b"".join(f.read_bytes() for f in files)
    assert hash_token(token).encode() in raw, "the token's hash should be stored"
    assert token.encode() not in raw
    for password in PASSWORDS.values():
        assert password.encode() not in raw


def test_token_lifetime_and_vm_ownership(make_server):
    server = make_server(POOLS, auth="static", vm_lifetime_auth=2, max_lifetime_upper_limit=48)
    alice, bob = server.token("alice"), server.token("bob")
    name = server.client.post("/vm/deb", headers=tok(alice)).json()["deb"]["hostname"]
    vm = server.client.get(f"/vm/{name}").json()[name]
    assert vm["lifetime"] == 2
    assert server.store.get_vm(name).user == "alice"
    plain = server.client.post("/vm/deb").json()["deb"]["hostname"]
    assert server.client.get(f"/vm/{plain}").json()[plain]["lifetime"] == 24  # no token: the pool's

    changes = [
        ("PUT", f"/vm/{name}", {"lifetime": 3}),
        ("PUT", f"/vm/{name}", {"tags": {"project": "x"}}),
        ("POST", f"/vm/{name}/disk/1", None),
        ("POST", f"/vm/{name}/snapshot", None),
        ("DELETE", f"/vm/{name}", None),
    ]
    for method, path, body in changes:
        anonymous = server.client.request(method, path, json=body)
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        assert anonymous.json()["ok"] is False
        other = server.client.request(method, path, json=body, headers=tok(bob))
        assert other.status_code == 403, (method, path, other.text)
        assert other.json()["ok"] is False
        invalid = server.client.request(method, path, json=body, headers=tok("z" * 32))
        assert invalid.status_code == 401, (method, path)

    too_long = server.client.put(f"/vm/{name}", json={"lifetime": 49}, headers=tok(alice))
    assert too_long.status_code == 400
    failure = too_long.json()
    assert failure["ok"] is False and any("49" in f and "48" in f for f in failure["failure"])

    assert server.client.put(f"/vm/{name}", json={"lifetime": 47}, headers=tok(alice)).json() == {"ok": True}
    alice2 = server.token("alice")  # ownership is the user's, not one token's
    assert server.client.put(f"/vm/{name}", json={"tags": {"project": "x"}}, headers=tok(alice2)).status_code == 200
    disk = server.client.post(f"/vm/{name}/disk/1", headers=tok(alice))
    assert disk.status_code == 202 and disk.json() == {"ok": True, name: {"disk": "+1gb"}}
    snap = server.client.post(f"/vm/{name}/snapshot", headers=tok(alice))
    assert snap.status_code == 202 and snap.json()[name]["snapshot"]
    info = server.client.get(f"/vm/{name}").json()[name]
    assert info["lifetime"] == 47 and info["tags"] == {"project": "x"}
    assert server.client.delete(f"/vm/{name}", headers=tok(alice)).json() == {"ok": True}

    # an anonymous VM: anybody may return it, with or without a token
    assert server.client.delete(f"/vm/{plain}", headers=tok(bob)).json() == {"ok": True}


def test_invalid_token_on_checkout_is_401(make_server):
    server = make_server(POOLS, auth="static")
    for token in ("y" * 32, "not a token!", "x" * 65):
        resp = server.client.post("/vm/deb", headers=tok(token))
        assert resp.status_code == 401, token
        assert resp.json()["ok"] is False and token not in resp.text
    assert server.client.get("/status").json()["pools"]["deb"]["ready"] == 3  # nothing taken


def test_allowed_tags_and_tagfilter(make_server):
    server = make_server(POOLS, allowed_tags=["url", "project"],
                         extra={":tagfilter": {"url": r"(.*)\/"}})
    name = server.client.post("/vm/deb").json()["deb"]["hostname"]
    refused = server.client.put(f"/vm/{name}", json={"tags": {"owner": "me", "project": "p"}})
    assert refused.status_code == 400
    body = refused.json()
    assert body["ok"] is False and any("owner" in f for f in body["failure"])
    assert "tags" not in server.client.get(f"/vm/{name}").json()[name]

    ok = server.client.put(f"/vm/{name}", json={"tags": {"url": "foo.com/x.html", "project": "p"}})
    assert ok.status_code == 200 and ok.json() == {"ok": True}
    assert server.client.get(f"/vm/{name}").json()[name]["tags"] == {"url": "foo.com", "project": "p"}
    tagged = server.client.get("/summary/tag/url").json()["tag"]
    assert tagged == {"url": {"foo.com": 1, "total": 1}}


def test_dummy_provider_needs_vmpooler_debug(make_server, tmp_path, monkeypatch):
    monkeypatch.delenv("VMPOOLER_DEBUG", raising=False)
    document = quick_config(tmp_path, POOLS)
    document[":auth"] = {"provider": "dummy"}
    with pytest.raises(ConfigError) as err:
        parse_config(document)
    assert any("dummy" in p and "VMPOOLER_DEBUG" in p for p in err.value.problems)

    monkeypatch.setenv("VMPOOLER_DEBUG", "1")
    server = make_server(POOLS, auth="dummy")
    resp = server.client.post("/token", headers={"Authorization": "Basic Y2Fyb2w6eHl6"})  # carol:xyz
    assert resp.status_code == 200 and len(resp.json()["token"]) == 32
    token = resp.json()["token"]
    assert server.client.get(f"/token/{token}").json()[token]["user"] == "carol"
    same = server.client.post("/token", headers={"Authorization": "Basic Y2Fyb2w6Y2Fyb2w="})  # carol:carol
    assert same.status_code == 401 and same.json()["ok"] is False


def test_no_secrets_in_logs_or_error_bodies(make_server, log_lines):
    server = make_server(POOLS, auth="static", request_logger=True, vm_lifetime_auth=1)
    wrong = "Wrong-Pass-9876"
    bodies = []

    def call(method, path, **kw):
        resp = server.client.request(method, path, **kw)
        bodies.append(resp.text)
        return resp

    token = server.token("alice")
    bob = server.token("bob")
    call("POST", "/token", headers=basic("alice", wrong))
    call("POST", "/token", headers=basic("nobody", wrong))
    call("GET", "/token", headers=basic("alice"))
    call("GET", f"/token/{token}")
    name = call("POST", "/vm/deb", headers=tok(token)).json()["deb"]["hostname"]
    call("PUT", f"/vm/{name}", json={"lifetime": 2}, headers=tok(bob))
    call("POST", "/vm/deb", headers=tok(token[::-1]))
    call("DELETE", f"/token/{bob}", headers=basic("alice"))
    call("DELETE", f"/vm/{name}", headers=tok(token))
    call("DELETE", f"/token/{token}", headers=basic("alice"))
    call("GET", f"/token/{token}")
    server.stop()

    logged = log_lines()
    assert "request" in logged and "/token" in logged, "the request logger should have logged"
    secrets = [wrong, *PASSWORDS.values(), *(h for h in HASHES.values()), token, bob, token[::-1]]
    for secret in secrets:
        assert secret not in logged, f"{secret[:6]}… was logged"
    # a token appears only in answers that hand it out or are keyed by it (GET /token/<t>)
    for text in bodies[:3] + bodies[4:]:
        for secret in secrets:
            assert secret not in text
