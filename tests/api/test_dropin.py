"""What vmpooler's clients rely on, and bounds on what they send, over real HTTP: ``fqdn`` in
every v2/v3 record, stale tokens on VMs checked out without one, v1 domains, HEAD and ``GET /``,
hostnames in any case, lifetimes and tags within their rules."""

from __future__ import annotations

import pytest

from api.conftest import tok
from corral.api.status import duration_stats
from corral.domain.limits import MAX_LIFETIME_HOURS

POOLS = [
    {"name": "plain", "template": "t/plain", "size": 2},
    {"name": "own", "template": "t/own", "size": 1, "domain": "own.example"},
]


@pytest.fixture
def server(make_server):
    return make_server(POOLS)


def test_v2_and_v3_records_always_carry_fqdn(server):
    plain = server.client.post("/vm/plain").json()["plain"]["hostname"]
    own = server.client.post("/vm/own").json()["own"]["hostname"]
    assert "." not in plain and own.endswith(".own.example")
    for prefix in ("/api/v3", "/api/v2"):
        assert server.root.get(f"{prefix}/vm/{plain}").json()[plain]["fqdn"] == plain
        short = own.split(".")[0]
        assert server.root.get(f"{prefix}/vm/{own}").json()[short]["fqdn"] == own


def test_v1_domain_agrees_with_the_vms_own_fqdn(make_server):
    server = make_server(POOLS, domain="global.example")
    answer = server.root.post("/api/v1/vm/own").json()
    assert answer["domain"] == "own.example", answer
    short = answer["own"]["hostname"]
    record = server.root.get(f"/api/v1/vm/{short}").json()[short]
    assert record["domain"] == "own.example" and record["fqdn"] == f"{short}.own.example"
    plain = server.root.post("/vm/plain").json()
    assert plain["domain"] == "global.example"


def test_hostnames_match_in_any_case(server):
    name = server.client.post("/vm/own").json()["own"]["hostname"]
    shouting = name.upper()
    assert server.client.get(f"/vm/{shouting}").json()["ok"] is True
    assert server.client.put(f"/vm/{shouting}", json={"tags": {"k": "v"}}).status_code == 200
    assert server.client.delete(f"/vm/{shouting}").status_code == 200
    assert server.client.get(f"/vm/{name}").json()[name.split(".")[0]]["state"] == "destroyed"


def test_a_stale_token_does_not_block_a_vm_checked_out_without_one(make_server):
    server = make_server(POOLS, auth="static")
    stale = tok("0123456789abcdef0123456789abcdef")
    assert server.client.post("/vm/plain", headers=stale).status_code == 401, "checkout with a bad token stays 401"
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    assert server.client.put(f"/vm/{name}", json={"tags": {"ci": "job-1"}}, headers=stale).status_code == 200
    assert server.client.get(f"/vm/{name}").json()[name]["tags"] == {"ci": "job-1"}
    changed = server.client.put(f"/vm/{name}", json={"lifetime": 2}, headers=stale)
    assert changed.status_code == 401, "a lifetime change still needs a valid token"
    assert server.client.delete(f"/vm/{name}", headers=stale).status_code == 200
    # a VM checked out with a token still needs that user's token
    token = server.token("alice")
    owned = server.client.post("/vm/plain", headers=tok(token)).json()["plain"]["hostname"]
    assert server.client.delete(f"/vm/{owned}", headers=stale).status_code == 401
    assert server.client.delete(f"/vm/{owned}", headers=tok(token)).status_code == 200


@pytest.mark.parametrize("path", ["/dashboard/", "/api/v3/status", "/api/v3/vm", "/healthcheck", "/api/v1/status/",
                                  "/api/v3/summary", "/api/v3/config", "/api/v3/totalrunning"])
def test_head_answers_as_get_without_a_body(server, path):
    get = server.root.get(path)
    head = server.root.head(path)
    assert get.status_code == head.status_code == 200, (get.text, head.status_code)
    assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"]


def test_head_of_the_event_stream_ends(server):
    head = server.root.head("/api/v3/events", timeout=5)
    assert head.status_code == 200 and head.content == b""
    assert head.headers["content-type"].startswith("text/event-stream")
    assert server.root.head("/api/v3/events?type=nonsense").status_code == 400


def test_root_answers_with_the_dashboard(server):
    """As vmpooler: ``/`` redirects to the dashboard, which a client that follows it gets with a 200."""
    resp = server.root.get("/", follow_redirects=True)
    assert resp.status_code == 200 and [r.status_code for r in resp.history] == [302]
    assert str(resp.url) == f"{server.url}/dashboard/" and resp.headers["content-type"].startswith("text/html")


@pytest.mark.parametrize("lifetime", [10**20, str(10**20), 10**309, "9" * 5000, MAX_LIFETIME_HOURS + 1, 1e30])
def test_absurd_lifetimes_are_refused_and_the_vm_stays_readable(make_server, lifetime):
    server = make_server(POOLS[:1])
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    body = ('{"lifetime": %s}' % (lifetime if isinstance(lifetime, (int, float)) else f'"{lifetime}"')).encode()
    resp = server.client.put(f"/vm/{name}", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 400, resp.text
    assert "lifetime" in resp.json()["error"]
    assert server.client.get(f"/vm/{name}").status_code == 200


def test_lifetime_up_to_the_hard_cap_is_accepted_and_shown(server):
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    assert server.client.put(f"/vm/{name}", json={"lifetime": MAX_LIFETIME_HOURS}).status_code == 200
    record = server.client.get(f"/vm/{name}").json()[name]
    assert record["lifetime"] == MAX_LIFETIME_HOURS and record["end_time"].startswith("20")


def test_a_stored_lifetime_past_the_cap_is_still_shown(server):
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    server.store.update_vm(name, lifetime_s=1e30)  # written by an older version, or by hand
    resp = server.client.get(f"/vm/{name}")
    assert resp.status_code == 200 and resp.json()[name]["lifetime"] == MAX_LIFETIME_HOURS


@pytest.mark.parametrize("value", ["a\r\nb", "a\nb", "tab\there", "bell\x07", "nul\x00", "line\u2028sep",
                                   "caf\u00e9", "\u0661\u0662", "x" * 256])
def test_tag_values_follow_the_documented_rule(server, value):
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    resp = server.client.put(f"/vm/{name}", json={"tags": {"note": value}})
    assert resp.status_code == 400 and "tag 'note'" in resp.json()["error"], resp.text
    assert "tags" not in server.client.get(f"/vm/{name}").json()[name]


def test_tag_values_with_every_allowed_character_are_kept(server):
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    value = "Job 42_a.b@c:d/e-f"
    assert server.client.put(f"/vm/{name}", json={"tags": {"note": value}}).status_code == 200
    assert server.client.get(f"/vm/{name}").json()[name]["tags"] == {"note": value}


def test_disk_sizes_of_thousands_of_digits_are_400(server):
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    resp = server.client.post(f"/vm/{name}/disk/{'9' * 5000}")
    assert resp.status_code == 400 and "5000 digits" in resp.json()["error"]


@pytest.mark.parametrize("values, average", [
    ([1.26, 1.26], 1.26), ([1.24, 1.24], 1.24), ([0.004], 0.0), ([1.0, 2.0, 4.0], 2.33), ([], 0)])
def test_duration_stats_never_print_the_average_outside_min_and_max(values, average):
    stats = duration_stats(values)
    assert stats["average"] == average
    assert stats["min"] <= stats["average"] <= stats["max"]


def test_names_are_lowercase_even_with_an_uppercase_prefix(make_server):
    server = make_server(POOLS[:1], prefix="CI-")
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    assert name.startswith("ci-") and name == name.lower()
    assert server.client.get(f"/vm/CI-{name[3:]}").json()["ok"] is True


def test_a_v1_on_demand_answer_gives_the_domain_of_its_vms(make_server):
    server = make_server(POOLS, domain="global.example")
    request_id = server.root.post("/api/v1/ondemandvm", json={"own": 1}).json()["request_id"]

    def ready():
        resp = server.root.get(f"/api/v1/ondemandvm/{request_id}")
        return resp.json() if resp.status_code == 200 else None

    body = server.wait(ready)
    assert body["domain"] == "own.example" and "." not in body["own"]["hostname"][0], body


def test_the_event_stream_matches_vm_names_in_any_case(make_server):
    import json

    server = make_server(POOLS[:1])
    name = server.client.post("/vm/plain").json()["plain"]["hostname"]
    with server.client.stream("GET", f"/events?vm={name.upper()}&type=vm.lifecycle") as stream:
        assert server.client.delete(f"/vm/{name}").status_code == 200
        kind = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                kind = line[6:].strip()
            elif line.startswith("data:") and kind == "vm.lifecycle":
                assert json.loads(line[5:])["vm"] == name
                break
