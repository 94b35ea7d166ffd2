"""Rate limiting over real HTTP: off by default; when on, vmpooler's 429 answer, separate
allowances for checkouts, returns and other requests, and per-token counting."""

from __future__ import annotations

import time

import pytest

from api.conftest import tok
from corral.api.middleware import is_healthcheck

POOLS = [{"name": "a", "template": "t/a", "size": 2}]


def limits(**kinds):
    return {":rate_limits": {kind: {"limit": n, "period": period} for kind, (n, period) in kinds.items()}}


def assert_refused(resp, limit, period):
    assert resp.status_code == 429, resp.text
    body = resp.json()
    retry = body["retry_after"]
    assert body == {"ok": False, "error": "Rate limit exceeded", "limit": limit, "period": period,
                    "retry_after": retry}
    assert isinstance(body["period"], int) and isinstance(retry, int) and 1 <= retry <= max(period, 1)
    headers = resp.headers
    assert headers["X-RateLimit-Limit"] == str(limit)
    assert headers["X-RateLimit-Remaining"] == "0"
    assert headers["Retry-After"] == str(retry)
    reset = int(headers["X-RateLimit-Reset"])
    assert time.time() - 5 <= reset <= time.time() + period + 5
    assert headers["content-type"].startswith("application/json")


def test_off_by_default(make_server):
    server = make_server(POOLS)
    for _ in range(110):  # past the default 100 a minute
        assert server.client.get("/healthcheck").status_code == 200
    for _ in range(25):  # past the default 20 checkouts a minute
        assert server.client.post("/vm/nope").status_code == 404


def test_limits_by_kind_of_request(make_server):
    server = make_server(POOLS, rate_limiting_enabled=True,
                         extra=limits(global_per_ip=(3, 60), vm_creation=(2, 60), vm_deletion=(1, 1)))
    for _ in range(3):
        assert server.client.get("/status").status_code == 200
    assert_refused(server.client.get("/status"), 3, 60)
    assert_refused(server.root.get("/api/v1/status"), 3, 60)  # every path, every version

    # checkouts have their own allowance
    name = server.client.post("/vm/a").json()["a"]["hostname"]
    assert server.client.post("/vm/nope").status_code == 404
    assert_refused(server.client.post("/vm/a"), 2, 60)
    assert server.store.get_vm(name).state.value == "running"

    # and so do returns; a window ends after its period
    assert server.client.delete(f"/vm/{name}").json() == {"ok": True}
    refused = server.client.delete("/vm/whatever")
    assert refused.status_code == 429 and refused.json()["limit"] == 1
    assert refused.json()["period"] == 1 and refused.headers["Retry-After"] == "1"
    server.wait(lambda: server.client.delete("/vm/whatever").status_code == 404)
    assert_refused(server.client.get("/status"), 3, 60)  # the other kinds are still spent


def test_token_clients_are_counted_per_token(make_server):
    server = make_server(POOLS, auth="static", rate_limiting_enabled=True,
                         extra=limits(global_per_ip=(4, 60), authenticated=(2, 60), vm_creation=(1, 60)))
    alice, bob = server.token("alice"), server.token("bob")  # two of the IP's four
    for _ in range(2):
        assert server.client.get("/status", headers=tok(alice)).status_code == 200
    assert_refused(server.client.get("/status", headers=tok(alice)), 2, 60)
    assert_refused(server.client.get(f"/token/{alice}", headers=tok(alice)), 2, 60)

    for _ in range(2):
        assert server.client.get("/status", headers=tok(bob)).status_code == 200
    assert server.client.get("/status").status_code == 200  # the IP's own allowance is separate

    assert server.client.post("/vm/a", headers=tok(alice)).status_code == 200
    assert_refused(server.client.post("/vm/a", headers=tok(alice)), 1, 60)
    assert server.client.post("/vm/a", headers=tok(bob)).status_code == 200
    assert server.client.post("/vm/a").status_code in (200, 503)  # not refused: counted for the IP


@pytest.mark.parametrize(
    ("method", "path", "exempt"),
    [
        ("GET", "/healthcheck", True),
        ("HEAD", "/healthcheck/", True),
        ("GET", "/api/v1/healthcheck", True),
        ("GET", "/api/v2/healthcheck/", True),
        ("HEAD", "/api/v3/healthcheck", True),
        ("POST", "/healthcheck", False),
        ("GET", "/healthcheck/x", False),
        ("GET", "/api/v3/healthchecks", False),
        ("GET", "/api/v9/healthcheck", False),
        ("GET", "/vm/healthcheck", False),
        ("GET", "/status", False),
    ],
)
def test_which_requests_are_healthchecks(method, path, exempt):
    assert is_healthcheck(method, path) is exempt


def test_healthchecks_are_never_limited(make_server):
    server = make_server(POOLS, rate_limiting_enabled=True, extra=limits(global_per_ip=(1, 60)))
    assert server.client.get("/status").status_code == 200
    assert_refused(server.client.get("/status"), 1, 60)
    for _ in range(3):
        for path in ("/healthcheck", "/healthcheck/", "/api/v1/healthcheck", "/api/v2/healthcheck/",
                     "/api/v3/healthcheck"):
            assert server.root.get(path).status_code == 200, path
            assert server.root.head(path).status_code == 200, path
    assert_refused(server.client.get("/status"), 1, 60)
