"""Status and statistics over real HTTP: /status, /summary, /poolstat, /totalrunning and
/healthcheck, in every API version."""

from __future__ import annotations

import datetime as dt

import pytest

POOLS = [
    {"name": "a", "alias": ["alpha", "al"], "template": "t/a", "size": 2},
    {"name": "b", "template": "t/b", "size": 1},
]
DURATION_KEYS = {"average", "min", "max", "total"}


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


@pytest.fixture
def server(make_server):
    return make_server(POOLS)


def without_uptime(body):
    """The answer without what moves with the clock alone: the uptime and the feeds' lag."""
    body = {**body, "status": {k: v for k, v in body["status"].items() if k != "uptime"}}
    if "monitoring" in body:
        providers = {name: {k: v for k, v in p.items() if k != "lag_s"}
                     for name, p in body["monitoring"]["providers"].items()}
        body["monitoring"] = {**body["monitoring"], "providers": providers}
    return body


def test_status_when_full_and_views(server):
    resp = server.client.get("/status")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"boot", "capacity", "clone", "pools", "queue", "status", "monitoring", "scheduling", "runner",
                         "hosts"}
    hosts = body["hosts"]["sim"]
    assert len(hosts) == 4 and sum(h["vms"] for h in hosts.values()) == 3  # the feed's hosts and its three VMs
    for h in hosts.values():
        assert h["up"] is True and h["down"] is False and h["maintenance"] is False and h["calls_in_flight"] == 0
        assert h["cores"] > 0 and h["memory_mb"] > 0 and 0 <= h["memory_percent"] <= 100
        assert abs(h["cpu_percent"] - 100 * h["cpu_used_mhz"] / (h["cores"] * h["mhz"])) <= 0.1
    runner = body["runner"]
    assert runner["queued"] == 0 and runner["calls_in_flight"] == 0 and runner["created"] >= 3
    assert runner["calls"] >= 1 and runner["vms_sent"] == runner["created"] and runner["failed"] == 0
    assert runner["queued_by_class"] == {"ha restart": 0, "rerun": 0, "ondemand": 0, "refill": 0}
    assert runner["task_limit"] == 10 and runner["host_limit"] == 4 and runner["ha_restarts"] == 0
    scheduling = body["scheduling"]
    assert scheduling["policy"] == "even" and scheduling["placement_errors"] == {}
    assert scheduling["providers"]["sim"]["placed"] >= 3 and scheduling["providers"]["sim"]["unplaced"] == 0
    assert scheduling["providers"]["sim"]["reserved"] == 0  # every placed VM is in the inventory
    assert scheduling["migrations"]["limit"] == 0 and scheduling["migrations"]["done"] == 0
    monitoring = body["monitoring"]
    assert monitoring["reconcile"] == {"runs": 0, "store_repairs": 0, "inventory_repairs": 0}
    sim = monitoring["providers"]["sim"]
    assert sim["vms"] == 3 and sim["hosts"] == 4 and sim["hosts_down"] == [] and sim["feed_errors"] == 0
    assert 0 <= sim["lag_s"] < 30  # the inventory is behind the simulator by at most one feed wait
    assert monitoring["events"]["published"] >= 6  # at least pending and ready for each VM
    assert monitoring["events"]["subscribers"]["pool-manager"]["errors"] == 0
    assert body["capacity"] == {"current": 3, "total": 3, "percent": 100.0}
    assert {k: body["queue"][k] for k in ("ready", "running", "pending", "cloning", "requested")} == {
        "ready": 3, "running": 0, "pending": 0, "cloning": 0, "requested": 0}
    assert body["clone"]["count"]["total"] >= 3 and body["boot"]["count"]["total"] >= 3
    assert set(body["clone"]["duration"]) == DURATION_KEYS
    assert {k: body["pools"]["a"][k] for k in ("ready", "running", "pending", "max", "alias")} == {
        "ready": 2, "running": 0, "pending": 0, "max": 2, "alias": ["alpha", "al"]}
    assert "alias" not in body["pools"]["b"]
    assert body["status"]["ok"] is True
    assert body["status"]["message"] == "Battle station fully armed and operational."

    picked = server.client.get("/status", params={"view": "capacity,boot"}).json()
    assert set(picked) == {"capacity", "boot", "status"}
    assert picked["capacity"] == body["capacity"]
    assert set(server.client.get("/status", params={"view": "queue"}).json()) == {"queue", "status"}

    server.client.post("/vm/alpha+b")
    queue = server.client.get("/status", params={"view": "queue"}).json()["queue"]
    assert queue["running"] == 2


def test_status_reports_empty_pools(make_server):
    server = make_server(POOLS, wait=False, sim={"failure_rates": {"boot": 1.0}})  # no guest ever boots
    server.wait(lambda: server.client.get("/status").json()["queue"]["pending"] == 3)
    body = server.client.get("/status").json()
    assert body["capacity"] == {"current": 0, "total": 3, "percent": 0.0}
    assert body["status"]["ok"] is False
    assert body["status"]["message"] == "Found 2 empty pools."
    assert sorted(body["status"]["empty"]) == ["a", "b"]


def test_summary_today_and_ranges(server):
    resp = server.client.get("/summary")
    assert resp.status_code == 200
    body = resp.json()
    assert set(body) == {"boot", "clone", "tag", "daily"}
    assert [d["date"] for d in body["daily"]] == [today().isoformat()]
    boots = body["boot"]["count"]["total"]
    assert boots >= 3
    assert body["boot"]["count"] == {"total": boots, "average": float(boots), "min": boots, "max": boots,
                                     "pool": body["boot"]["count"]["pool"]}
    assert set(body["boot"]["count"]["pool"]) == {"a", "b"}
    assert DURATION_KEYS <= set(body["clone"]["duration"])
    assert body["daily"][0]["boot"]["count"]["total"] == boots
    assert body["tag"] == {} and body["daily"][0]["tag"] == {}

    yesterday = today() - dt.timedelta(days=1)
    ranged = server.client.get("/summary", params={"from": yesterday.isoformat(), "to": today().isoformat()})
    assert ranged.status_code == 200
    data = ranged.json()
    assert [d["date"] for d in data["daily"]] == [yesterday.isoformat(), today().isoformat()]
    assert data["daily"][0]["boot"] == {"duration": {"average": 0, "min": 0, "max": 0, "total": 0},
                                        "count": {"total": 0}}
    assert data["daily"][0]["tag"] == {}
    assert data["boot"]["count"]["total"] >= boots and data["boot"]["count"]["min"] == 0
    only_from = server.client.get("/summary", params={"from": yesterday.isoformat()}).json()
    assert len(only_from["daily"]) == 2


@pytest.mark.parametrize("params", [
    {"from": "2020-13-01"}, {"from": "yesterday"}, {"to": "2020-1-1"},
    {"from": "2020-01-01T00:00"}, {"from": "2020-W01-1"},
    {"from": "2020-02-02", "to": "2020-02-01"},
    {"from": (today() + dt.timedelta(days=2)).isoformat(), "to": (today() + dt.timedelta(days=3)).isoformat()},
    {"from": "2000-01-01", "to": "2010-01-01"},
])
def test_summary_refuses_bad_dates(server, params):
    for path in ("/summary", "/summary/boot", "/summary/tag/x"):
        resp = server.client.get(path, params=params)
        assert resp.status_code == 400, (path, params)
        body = resp.json()
        assert body["ok"] is False and isinstance(body["error"], str) and body["error"]


def test_summary_date_error_messages(server):
    def error(**params):
        resp = server.client.get("/summary", params=params)
        assert resp.status_code == 400
        return resp.json()["error"]

    bad_month = error(**{"from": "2020-13-01"})
    assert "must match YYYY-MM-DD" in bad_month and "2020-13-01" in bad_month
    assert "must match YYYY-MM-DD" in error(to="yesterday")
    assert error(**{"from": "2020-02-02", "to": "2020-02-01"}) == \
        "Date range is invalid, 'to' cannot come before 'from'."
    future = (today() + dt.timedelta(days=2)).isoformat()
    assert error(**{"from": future, "to": future}) == "Date range is invalid, 'from' must be in the past."


def test_summary_sections_and_tags(server):
    boot = server.client.get("/summary/boot").json()
    assert set(boot) == {"boot", "daily"} and set(boot["daily"][0]) == {"date", "boot"}
    count = server.client.get("/summary/clone/count").json()
    assert set(count) == {"clone", "daily"} and set(count["clone"]) == {"count"}
    assert count["clone"]["count"]["total"] >= 3
    assert set(count["daily"][0]["clone"]) == {"count"}

    first, second = server.client.post("/vm/a+a").json()["a"]["hostname"]
    assert server.client.put(f"/vm/{first}", json={"tags": {"project": "x", "team": "qa"}}).status_code == 200
    assert server.client.put(f"/vm/{second}", json={"tags": {"project": "z"}}).status_code == 200
    project = server.client.get("/summary/tag/project")
    assert project.status_code == 200
    assert project.json() == {"tag": {"project": {"x": 1, "z": 1, "total": 2}},
                              "daily": [{"date": today().isoformat(),
                                         "tag": {"project": {"x": 1, "z": 1, "total": 2}}}]}
    tags = server.client.get("/summary/tag").json()["tag"]
    assert tags == {"project": {"x": 1, "z": 1, "total": 2}, "team": {"qa": 1, "total": 1}}
    assert server.client.get("/summary").json()["tag"] == tags

    for path in ("/summary/bogus", "/summary/bogus/count"):
        missing = server.client.get(path)
        assert missing.status_code == 404 and missing.json()["ok"] is False


def test_poolstat_totalrunning_healthcheck(server):
    one = server.client.get("/poolstat", params={"pool": "a"})
    assert one.status_code == 200
    assert one.json() == {"pools": {"a": {"ready": 2, "max": 2, "alias": ["alpha", "al"]}}}
    both = server.client.get("/poolstat", params={"pool": "alpha,b"}).json()
    assert both == {"pools": {"a": {"ready": 2, "max": 2, "alias": ["alpha", "al"]}, "b": {"ready": 1, "max": 1}}}
    assert server.client.get("/poolstat", params={"pool": "nope"}).json() == {"pools": {}}
    assert server.client.get("/poolstat").json() == {"pools": {}}

    assert server.client.get("/totalrunning").json() == {"running": 0}
    taken = server.client.post("/vm/a+b").json()
    assert server.client.get("/totalrunning").json() == {"running": 2}
    assert server.client.delete(f"/vm/{taken['b']['hostname']}").status_code == 200
    assert server.client.get("/totalrunning").json() == {"running": 1}

    for path in ("/healthcheck", "/api/v3/healthcheck", "/api/v2/healthcheck", "/api/v1/healthcheck"):
        resp = server.root.get(path)
        assert resp.status_code == 200 and resp.json() == {"ok": True}, path


def test_every_version_answers_the_same(server):
    server.client.post("/vm/a")
    server.wait_full()  # nothing moves while the answers are compared
    paths = ["/status", "/status?view=pools,capacity", "/summary/tag", "/poolstat?pool=al", "/totalrunning"]
    for path in paths:
        answers = [server.root.get(prefix + path) for prefix in ("/api/v3", "/api/v2", "/api/v1", "")]
        assert {r.status_code for r in answers} == {200}, path
        bodies = [r.json() for r in answers]
        if "status" in bodies[0] and isinstance(bodies[0]["status"], dict):
            bodies = [without_uptime(b) for b in bodies]
        assert all(b == bodies[0] for b in bodies), path
