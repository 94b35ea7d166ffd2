"""The OpenAPI description (/openapi.json) against the real server: every route is described,
the status codes it declares are the ones the server really answers (and no 422), bodies and
credentials are described; and /api/docs works without reaching another host."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
import yaml
from fastapi.routing import APIRoute, iter_route_contexts

from api.conftest import basic, tok
from corral.api.openapi import DESCRIBED_PREFIX, OPERATIONS, complete, template_of
from helpers import free_port

POOLS = [{"name": "a", "alias": ["al"], "template": "t/a", "size": 6}]
CONFIG = {"experimental_features": True, "max_ondemand_instances_per_request": 5}
CLUSTERS = {"hosts": [{"name": "h1", "cluster": "c1"}, {"name": "h2", "cluster": "c2"}],
            "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 300.0, "destroy": 1.0, "migrate": 1.0}}
# (a VM boots in 0.3 s: an on-demand request read right after it is made is still pending)
METHODS = ("get", "put", "post", "delete", "head", "patch", "options", "trace")


def described(spec: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """(METHOD, template without the version prefix) -> the operation object."""
    return {(method.upper(), template_of(path)): op
            for path, item in spec["paths"].items() for method, op in item.items() if method in METHODS}


@pytest.fixture
def servers(make_server, tmp_path):
    """One server with static auth and experimental features, one without either."""
    return (make_server(POOLS, auth="static", sim=CLUSTERS, **CONFIG),
            make_server(POOLS, extra={":store": {"path": str(tmp_path / "plain.db")}}))


# -- the table and the app agree ---------------------------------------------------------------------
def test_every_route_has_an_entry_and_every_entry_a_route(servers):
    server, _ = servers
    app = server.thread.server.config.app
    routed = {(m, template_of(r.path.rstrip("/"))) for r in iter_route_contexts(app.routes)
              if isinstance(r.original_route, APIRoute) and (r.path or "").startswith(DESCRIBED_PREFIX + "/")
              for m in r.methods or ()}
    routed = {(m, t) for m, t in routed if m != "HEAD" or ("GET", t) not in routed}
    assert routed == set(OPERATIONS), (f"routes without an entry: {sorted(routed - set(OPERATIONS))}; "
                                       f"entries without a route: {sorted(set(OPERATIONS) - routed)}")
    spec = server.root.get("/openapi.json").json()
    assert {(m, t) for m, t in described(spec) if m != "HEAD"} == set(OPERATIONS)


def test_no_422_and_error_bodies_and_path_parameters_match_the_path(servers):
    server, _ = servers
    spec = server.root.get("/openapi.json").json()
    assert server.root.get("/api/openapi.json").json() == spec
    assert "HTTPValidationError" not in str(spec)
    for path, item in spec["paths"].items():
        for method, op in item.items():
            assert "422" not in op["responses"], (method, path)
            assert any(code.startswith("2") for code in op["responses"]), (method, path)
            for code, answer in op["responses"].items():
                if code >= "400" and method != "head":
                    assert answer["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
            in_path = set(re.findall(r"{([^}]+)}", path))
            assert {p["name"] for p in op.get("parameters", []) if p["in"] == "path"} == in_path, (method, path)


def test_head_is_described_for_every_get_and_answers_as_the_get(servers):
    server, _ = servers
    spec = server.root.get("/openapi.json").json()
    for path, item in spec["paths"].items():
        assert ("get" in item) == ("head" in item), path
        if "head" in item:
            assert list(item["head"]["responses"]) == list(item["get"]["responses"]), path
            assert all("content" not in answer for answer in item["head"]["responses"].values()), path
    for path in ("/vm", "/vm/nosuchvm", "/vm/-bad-", "/summary?from=x", "/status"):
        get, head = server.client.get(path), server.client.head(path)
        assert (head.status_code, head.content) == (get.status_code, b""), path


def test_security_schemes_and_each_operations_credentials(servers):
    server, _ = servers
    spec = server.root.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["token"] == {**schemes["token"], "type": "apiKey", "in": "header", "name": "X-AUTH-TOKEN"}
    assert schemes["basic"] == {**schemes["basic"], "type": "http", "scheme": "basic"}
    ops = described(spec)
    assert ops[("POST", "/token")]["security"] == [{"basic": []}]
    assert ops[("DELETE", "/token/{token}")]["security"] == [{"basic": []}]
    assert ops[("POST", "/ondemandvm")]["security"] == [{"token": []}]
    assert ops[("POST", "/vm/{name}/disk/{size}")]["security"] == [{"token": []}]
    assert ops[("POST", "/vm")]["security"] == [{}, {"token": []}]  # optional: a token changes the lifetime
    assert ops[("GET", "/status")]["security"] == []


# -- bodies: declared exactly where the server reads one ---------------------------------------------
def _fill(template: str, values: dict[str, str]) -> str:
    return re.sub(r"{([^}]+)}", lambda m: values[m[1]], template)


def test_a_body_is_declared_exactly_where_the_server_reads_one(servers):
    """Malformed JSON to every operation, with everything else right: the operations that
    answer "Invalid JSON" read a body, and they are the ones that declare one."""
    server, _ = servers
    alice, spare = server.token("alice"), server.token("alice")
    spec = server.root.get("/openapi.json").json()
    reads, declares = set(), set()
    for (method, template), op in described(spec).items():
        if method == "HEAD":
            continue
        vm = server.client.post("/vm/a", headers=tok(alice)).json()["a"]["hostname"]
        path = _fill(template, {"name": vm, "pools": "a", "size": "1", "snapshot_name": "s", "token": spare,
                                "request_id": "r", "section": "boot", "key": "count", "pool": "a"})
        headers = {**tok(alice), "Content-Type": "application/json"}
        if template.startswith("/token"):
            headers.update(basic("alice"))
        with server.client.stream(method, path, headers=headers, content=b'{"a": ') as resp:
            if resp.headers.get("content-type", "").startswith("application/json"):
                resp.read()
                if resp.status_code == 400 and "Invalid JSON" in resp.json().get("error", ""):
                    reads.add((method, template))
        if "requestBody" in op:
            declares.add((method, template))
        server.wait_full()
    assert reads == declares
    assert ("PUT", "/vm/{name}") in reads and ("POST", "/config/poolsize") in reads


# -- status codes: what the server answers is declared, and what is declared happens ----------------
# (server, method, path, credentials, body, the answers expected), in order. Servers: "auth" (static
# users, experimental features), "plain" (neither), "ldap" (its LDAP server is down). Path values:
# {vm} a VM alice checked out, {snapshot} its first snapshot once taken, {alice} and {bob} their
# tokens, {spare} a token of alice's to delete.
# Credentials: "alice"/"bob" a token, "basic:alice", "basic:wrong", "bogus" a token that is not valid.
CASES: list[tuple[str, str, str, str | None, Any, set[int]]] = [
    ("auth", "GET", "/vm", None, None, {200}),
    ("auth", "POST", "/vm", None, {"a": 1}, {200}),
    ("auth", "POST", "/vm", None, {"a": 0}, {400}),
    ("auth", "POST", "/vm", None, {"zz": 1}, {404}),
    ("auth", "POST", "/vm", "bogus", {"a": 1}, {401}),
    ("auth", "POST", "/vm", None, {"a": 100}, {503}),
    ("auth", "POST", "/vm/al", None, None, {200}),
    ("auth", "POST", "/vm/a%20b", None, None, {400}),
    ("auth", "POST", "/vm/a+zz", None, None, {404}),
    ("auth", "POST", "/vm/a", "bogus", None, {401}),
    ("auth", "POST", "/vm/a+a+a+a+a+a+a+a+a", None, None, {503}),
    ("auth", "GET", "/vm/{vm}", None, None, {200}),
    ("auth", "GET", "/vm/-bad-", None, None, {400}),
    ("auth", "GET", "/vm/nosuchvm", None, None, {404}),
    ("auth", "PUT", "/vm/{vm}", "alice", {"tags": {"team": "qa"}}, {200}),
    ("auth", "PUT", "/vm/{vm}", "alice", {"lifetime": "soon"}, {400}),
    ("auth", "PUT", "/vm/{vm}", None, {"tags": {"team": "qa"}}, {401}),
    ("auth", "PUT", "/vm/{vm}", "bob", {"tags": {"team": "qa"}}, {403}),
    ("auth", "PUT", "/vm/nosuchvm", "alice", {}, {404}),
    ("auth", "POST", "/vm/{vm}/disk/1", "alice", None, {202}),
    ("auth", "POST", "/vm/{vm}/disk/0", "alice", None, {400}),
    ("auth", "POST", "/vm/{vm}/disk/1", None, None, {401}),
    ("auth", "POST", "/vm/{vm}/disk/1", "bob", None, {403}),
    ("auth", "POST", "/vm/nosuchvm/disk/1", "alice", None, {404}),
    ("auth", "POST", "/vm/{vm}/snapshot", "alice", None, {202}),
    ("auth", "POST", "/vm/-bad-/snapshot", "alice", None, {400}),
    ("auth", "POST", "/vm/{vm}/snapshot", None, None, {401}),
    ("auth", "POST", "/vm/{vm}/snapshot", "bob", None, {403}),
    ("auth", "POST", "/vm/nosuchvm/snapshot", "alice", None, {404}),
    ("auth", "POST", "/vm/{vm}/snapshot/{snapshot}", "alice", None, {202}),
    ("auth", "POST", "/vm/-bad-/snapshot/x", "alice", None, {400}),
    ("auth", "POST", "/vm/{vm}/snapshot/{snapshot}", None, None, {401}),
    ("auth", "POST", "/vm/{vm}/snapshot/{snapshot}", "bob", None, {403}),
    ("auth", "POST", "/vm/{vm}/snapshot/nosuchsnapshot", "alice", None, {404}),
    ("auth", "DELETE", "/vm/-bad-", None, None, {400}),
    ("auth", "DELETE", "/vm/{vm}", None, None, {401}),
    ("auth", "DELETE", "/vm/{vm}", "bob", None, {403}),
    ("auth", "DELETE", "/vm/{vm}", "alice", None, {200}),
    ("auth", "DELETE", "/vm/{vm}", "alice", None, {404}),
    ("auth", "GET", "/token", "basic:alice", None, {200}),
    ("auth", "GET", "/token", "basic:wrong", None, {401}),
    ("plain", "GET", "/token", "basic:alice", None, {404}),
    ("auth", "POST", "/token", "basic:alice", None, {200}),
    ("auth", "POST", "/token", None, None, {401}),
    ("plain", "POST", "/token", "basic:alice", None, {404}),
    ("ldap", "POST", "/token", "basic:alice", None, {503}),
    ("auth", "GET", "/token/{alice}", None, None, {200}),
    ("auth", "GET", "/token/nosuchtoken", None, None, {404}),
    ("auth", "DELETE", "/token/{spare}", None, None, {401}),
    ("auth", "DELETE", "/token/{bob}", "basic:alice", None, {403}),
    ("auth", "DELETE", "/token/{spare}", "basic:alice", None, {200}),
    ("auth", "DELETE", "/token/{spare}", "basic:alice", None, {404}),
    ("auth", "POST", "/ondemandvm", "alice", {"a": 1, "request_id": "r1"}, {201}),
    ("auth", "GET", "/ondemandvm/r1", None, None, {200, 202}),  # at once: still pending, a 202
    ("auth", "POST", "/ondemandvm", "alice", {"a": 1, "request_id": "r1"}, {409}),
    ("auth", "POST", "/ondemandvm", "alice", {"a": "x"}, {400}),
    ("auth", "POST", "/ondemandvm", None, {"a": 1}, {401}),
    ("auth", "POST", "/ondemandvm", "alice", {"a": 6}, {403}),
    ("auth", "POST", "/ondemandvm", "alice", {"zz": 1}, {404}),
    ("auth", "POST", "/ondemandvm/a", "alice", None, {201}),
    ("auth", "POST", "/ondemandvm/a%20b", "alice", None, {400}),
    ("auth", "POST", "/ondemandvm/a", None, None, {401}),
    ("auth", "POST", "/ondemandvm/a+a+a+a+a+a", "alice", None, {403}),
    ("auth", "POST", "/ondemandvm/zz", "alice", None, {404}),
    ("auth", "GET", "/ondemandvm/nosuchrequest", None, None, {404}),
    ("auth", "DELETE", "/ondemandvm/r1", None, None, {401}),
    ("auth", "DELETE", "/ondemandvm/r1", "bob", None, {403}),
    ("auth", "DELETE", "/ondemandvm/r1", "alice", None, {200}),
    ("auth", "DELETE", "/ondemandvm/nosuchrequest", "alice", None, {404}),
    ("auth", "GET", "/ondemandvm/r1", None, None, {200}),
    ("auth", "GET", "/status", None, None, {200}),
    ("auth", "GET", "/summary", None, None, {200}),
    ("auth", "GET", "/summary?from=yesterday", None, None, {400}),
    ("auth", "GET", "/summary/boot", None, None, {200}),
    ("auth", "GET", "/summary/boot?to=2020-13-01", None, None, {400}),
    ("auth", "GET", "/summary/nope", None, None, {404}),
    ("auth", "GET", "/summary/tag/team", None, None, {200}),
    ("auth", "GET", "/summary/tag/team?from=x", None, None, {400}),
    ("auth", "GET", "/summary/nope/x", None, None, {404}),
    ("auth", "GET", "/poolstat?pool=a", None, None, {200}),
    ("auth", "GET", "/totalrunning", None, None, {200}),
    ("auth", "GET", "/healthcheck", None, None, {200}),
    ("auth", "GET", "/config", None, None, {200}),
    ("auth", "GET", "/full_config", None, None, {200}),
    ("auth", "POST", "/config/poolsize", "alice", {"a": 6}, {200}),
    ("auth", "POST", "/config/poolsize", "alice", {"a": 7}, {201}),
    ("auth", "POST", "/config/poolsize", "alice", {"zz": 1}, {400}),
    ("auth", "POST", "/config/poolsize", None, {"a": 7}, {401}),
    ("plain", "POST", "/config/poolsize", None, {"a": 7}, {405}),
    ("auth", "DELETE", "/config/poolsize/a", "alice", None, {201}),
    ("auth", "DELETE", "/config/poolsize/a", "alice", None, {200}),
    ("auth", "DELETE", "/config/poolsize/a", None, None, {401}),
    ("auth", "DELETE", "/config/poolsize/zz", "alice", None, {404}),
    ("plain", "DELETE", "/config/poolsize/a", None, None, {405}),
    ("auth", "POST", "/config/pooltemplate", "alice", {"a": "t/a"}, {200}),
    ("auth", "POST", "/config/pooltemplate", "alice", {"a": "t/b"}, {201}),
    ("auth", "POST", "/config/pooltemplate", "alice", {"a": "/t"}, {400}),
    ("auth", "POST", "/config/pooltemplate", None, {"a": "t/b"}, {401}),
    ("plain", "POST", "/config/pooltemplate", None, {"a": "t/b"}, {405}),
    ("auth", "DELETE", "/config/pooltemplate/a", "alice", None, {201}),
    ("auth", "DELETE", "/config/pooltemplate/a", "alice", None, {200}),
    ("auth", "DELETE", "/config/pooltemplate/a", None, None, {401}),
    ("auth", "DELETE", "/config/pooltemplate/zz", "alice", None, {404}),
    ("plain", "DELETE", "/config/pooltemplate/a", None, None, {405}),
    ("auth", "POST", "/config/clonetarget", "alice", {"a": "c2"}, {201}),
    ("auth", "POST", "/config/clonetarget", "alice", {"a": "c2"}, {200}),
    ("auth", "POST", "/config/clonetarget", "alice", {"a": "nosuchcluster"}, {400}),
    ("auth", "POST", "/config/clonetarget", None, {"a": "c1"}, {401}),
    ("plain", "POST", "/config/clonetarget", None, {"a": "c1"}, {405}),
    ("auth", "DELETE", "/config/clonetarget/a", "alice", None, {201}),
    ("auth", "DELETE", "/config/clonetarget/a", "alice", None, {200}),
    ("auth", "DELETE", "/config/clonetarget/a", None, None, {401}),
    ("auth", "DELETE", "/config/clonetarget/zz", "alice", None, {404}),
    ("plain", "DELETE", "/config/clonetarget/a", None, None, {405}),
    ("auth", "POST", "/poolreset", "alice", {"a": "1"}, {201}),
    ("auth", "POST", "/poolreset", "alice", {"zz": "1"}, {400}),
    ("auth", "POST", "/poolreset", None, {"a": "1"}, {401}),
    ("plain", "POST", "/poolreset", None, {"a": "1"}, {405}),
    ("auth", "POST", "/config/reload", "alice", None, {200}),
    ("auth", "POST", "/config/reload", None, None, {401}),
    ("plain", "POST", "/config/reload", None, None, {403}),
    ("auth", "GET", "/events?type=vm.lifecycle", None, None, {200}),
    ("auth", "GET", "/events?type=nope", None, None, {400}),
]

# Declared answers no case above provokes, and why (429, on every operation, has its own test).
NOT_PROVOKED = {
    ("POST", "/ondemandvm", 503), ("POST", "/ondemandvm/{pools}", 503),  # the runner's queue is full
    ("GET", "/events", 503),  # 1,000 streams are open
    ("GET", "/token", 503), ("DELETE", "/token/{token}", 503),  # LDAP is down: POST /token shows it
    ("POST", "/config/reload", 400),  # an invalid file: tests/api/test_reload.py
}


def _operation(ops: dict[tuple[str, str], dict[str, Any]], method: str, path: str) -> tuple[str, str]:
    """The (method, template) serving a concrete path: literal segments win over parameters."""
    segments = path.split("?", 1)[0].strip("/").split("/")

    def fits(template: str) -> bool:
        parts = template.strip("/").split("/")
        if len(parts) != len(segments):
            return False
        return all(p.startswith("{") or p == s for p, s in zip(parts, segments, strict=True))

    found = [key for key in ops if key[0] == method and fits(key[1])]
    assert found, f"no operation serves {method} {path}"
    return max(found, key=lambda key: sum(not p.startswith("{") for p in key[1].split("/")))


def _credentials(kind: str | None, tokens: dict[str, str]) -> dict[str, str]:
    if kind is None:
        return {}
    if kind == "bogus":
        return tok("notavalidtoken")
    if kind == "basic:wrong":
        return basic("alice", "wrong-password")
    if kind.startswith("basic:"):
        return basic(kind.split(":", 1)[1])
    return tok(tokens[kind])


def test_every_answer_is_declared_and_every_declared_answer_happens(servers, make_server, tmp_path):
    server, plain = servers
    port = free_port()  # nothing listens there: the LDAP server is down
    ldap_down = {"provider": "ldap", "ldap": {"host": "127.0.0.1", "port": port, "base": "dc=example,dc=com",
                                              "user_object": "uid", "timeout": 1}}
    ldap = make_server(POOLS, extra={":store": {"path": str(tmp_path / "ldap.db")}, ":auth": ldap_down})
    by_name = {"auth": server, "plain": plain, "ldap": ldap}
    server.service.path = tmp_path / "auth.yaml"  # the file a reload reads: the server's own document
    server.service.path.write_text(yaml.safe_dump(server.document), encoding="utf-8")
    tokens = {"alice": server.token("alice"), "bob": server.token("bob")}
    values = {**tokens, "spare": server.token("alice"),
              "vm": server.client.post("/vm/a", headers=tok(tokens["alice"])).json()["a"]["hostname"]}
    ops = described(server.root.get("/openapi.json").json())
    seen: set[tuple[str, str, int]] = set()
    wrong = []
    for name, method, raw_path, who, body, expected in CASES:
        if "{snapshot}" in raw_path and "snapshot" not in values:
            values["snapshot"] = server.wait(lambda: (server.client.get(f"/vm/{values['vm']}").json()
                                                      [values["vm"]].get("snapshots") or [None])[0])
        path = raw_path.format(**values)
        with by_name[name].client.stream(method, path, headers=_credentials(who, tokens),
                                         json=body) as resp:
            status = resp.status_code
            if not resp.headers.get("content-type", "").startswith("text/event-stream"):
                resp.read()
                if status >= 400:
                    assert resp.json()["ok"] is False, (method, path, resp.text)
        op = _operation(ops, method, path)
        if status not in expected or str(status) not in ops[op]["responses"]:
            wrong.append(f"{method} {path} ({name}, {who}): {status}, expected {expected}, "
                         f"declared {sorted(ops[op]['responses'])}")
        seen.add((*op, status))
    assert not wrong, "\n".join(wrong)
    declared = {(m, t, int(code)) for (m, t), op in ops.items() if m != "HEAD"
                for code in op["responses"] if code != "429"}
    assert declared - seen == NOT_PROVOKED, f"declared but not provoked: {sorted(declared - seen - NOT_PROVOKED)}"


def test_rate_limited_answers_are_declared(make_server):
    server = make_server(POOLS, rate_limiting_enabled=True,
                         extra={":rate_limits": {"global_per_ip": {"limit": 3, "period": 60}}})
    ops = described(server.root.get("/openapi.json").json())  # the first of three
    statuses = [server.client.get("/vm").status_code for _ in range(4)]
    assert statuses == [200, 200, 429, 429]
    for key, op in ops.items():
        assert "429" in op["responses"], key


# -- complete(): a pure function of FastAPI's description ------------------------------------------
GENERATED = {
    "openapi": "3.1.0",
    "paths": {
        "/api/v3/vm/{name}": {
            "get": {"parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "ok"}, "422": {"description": "Validation Error"}}},
            "head": {"responses": {"200": {"description": "ok"}}},
            "put": {"responses": {"200": {"description": "ok"}}},
        },
        "/api/v3/summary/{section}": {"get": {"parameters": [
            {"name": "section", "in": "path", "required": True, "schema": {}},
            {"name": "key", "in": "path", "required": True, "schema": {}},
            {"name": "from", "in": "query", "required": False, "schema": {}}], "responses": {}}},
        "/api/v3/unknown": {"get": {"responses": {"200": {"description": "ok"}, "422": {"description": "x"}}}},
    },
    "components": {"schemas": {"HTTPValidationError": {}, "ValidationError": {}}},
}


@pytest.mark.parametrize("path, method, codes, security, body", [
    ("/api/v3/vm/{name}", "get", ["200", "400", "404", "429"], [], None),
    ("/api/v3/vm/{name}", "head", ["200", "400", "404", "429"], [], None),
    ("/api/v3/summary/{section}", "head", ["200", "400", "404", "429"], [], None),
    ("/api/v3/vm/{name}", "put", ["200", "400", "401", "403", "404", "429"], [{}, {"token": []}], False),
    ("/api/v3/unknown", "get", ["200"], None, None),
])
def test_complete_folds_in_the_table(path, method, codes, security, body):
    before = copy.deepcopy(GENERATED)
    schema = complete(GENERATED)
    op = schema["paths"][path][method]
    assert list(op["responses"]) == codes
    assert op.get("security") == security
    assert (op["requestBody"]["required"] if "requestBody" in op else None) == body
    if method == "head":
        assert all("content" not in answer for answer in op["responses"].values())
    assert schema["components"]["schemas"].keys() == {"Error"}
    assert set(schema["components"]["securitySchemes"]) == {"token", "basic"}
    assert GENERATED == before  # a copy: FastAPI's own description is left as it was


def test_complete_drops_path_parameters_the_path_does_not_have():
    params = complete(GENERATED)["paths"]["/api/v3/summary/{section}"]["get"]["parameters"]
    assert [(p["name"], p["in"]) for p in params] == [("section", "path"), ("from", "query")]


# -- /api/docs without the network -------------------------------------------------------------------
def test_docs_page_loads_swagger_ui_from_the_server_itself(servers):
    server, _ = servers
    page = server.root.get("/api/docs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    html = page.text
    assert not re.search(r"(https?:)?//[a-z0-9]", html.replace(server.url, "")), "the page reaches another host"
    urls = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert len(urls) == 4, urls
    kinds = {".js": "javascript", ".css": "text/css", ".png": "image/png", ".json": "application/json"}
    for url in urls:
        assert url.startswith("/"), url
        resp = server.root.get(url)
        assert resp.status_code == 200, url
        want = next(kind for suffix, kind in kinds.items() if url.endswith(suffix))
        assert want in resp.headers["content-type"], (url, resp.headers["content-type"])
        assert len(resp.content) > 1000, url
    assert '"validatorUrl": null' in html  # no badge fetched from the online validator
    assert server.root.get("/api/docs/static/nosuchfile.js").status_code == 404
