"""The Prometheus exposition of a real server: it parses, its numbers are /status's, the
checkout and return counters move with the API's answers, no secret reaches a label, and
statsd and graphite servers that are down do not keep the server from serving."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from corral.metrics.catalogue import METRICS, prometheus_name
from helpers import free_port

from .conftest import PASSWORDS, basic, tok


def scrape(server: Any, path: str = "/prometheus") -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(sample name, sorted labels) -> value, from a real scrape."""
    resp = server.root.get(path)
    assert resp.status_code == 200, resp.text
    assert resp.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


def pool_sample(name: str, pool: str, instance: str = "vmpooler") -> tuple[str, tuple[tuple[str, str], ...]]:
    return name, (("poolname", pool), ("vmpooler_instance", instance))


def test_the_exposition_parses_and_its_pools_are_status_pools(make_server: Any) -> None:
    server = make_server([{"name": "a", "template": "t", "size": 3}, {"name": "b", "template": "t", "size": 1}])
    assert server.client.post("/vm/a").status_code == 200
    server.wait_full()
    samples = scrape(server)
    status = server.client.get("/status").json()["pools"]
    for pool in ("a", "b"):
        assert samples[pool_sample("vmpooler_ready", pool)] == status[pool]["ready"]
        assert samples[pool_sample("vmpooler_running", pool)] == status[pool]["running"]
        assert samples[pool_sample("vmpooler_pending", pool)] == status[pool]["pending"]
        assert samples[("corral_pool_size", (("poolname", pool),))] == status[pool]["max"]
    assert samples[pool_sample("vmpooler_running", "a")] == 1
    hosts = server.client.get("/status", params={"view": "hosts"}).json()["hosts"]
    assert {k: v for k, v in samples.items() if k[0] == "corral_host_vms"} == {
        ("corral_host_vms", (("host", host), ("provider", provider))): row["vms"]
        for provider, rows in hosts.items() for host, row in rows.items()}
    assert scrape(server, "/metrics").keys() == samples.keys()  # the same exposition at both paths
    # every family is one of the catalogue's
    names = {prometheus_name(m, "vmpooler") for m in METRICS}
    text = server.root.get("/metrics").text
    assert {f.name for f in text_string_to_metric_families(text)} <= names


def test_checkouts_and_returns_move_their_counters(make_server: Any) -> None:
    server = make_server([{"name": "a", "template": "t", "size": 2}, {"name": "e", "template": "t", "size": 0}])
    before = scrape(server)
    assert pool_sample("vmpooler_checkout_success_total", "a") not in before
    got = server.client.post("/vm/a+a")
    assert got.status_code == 200
    assert server.client.post("/vm/e").status_code == 503  # an empty pool
    assert server.client.post("/vm/nosuch").status_code == 404
    hosts = got.json()["a"]["hostname"]
    assert server.client.delete(f"/vm/{hosts[0]}").status_code == 200
    assert server.client.delete("/vm/never-there").status_code == 404
    after = scrape(server)
    assert after[pool_sample("vmpooler_checkout_success_total", "a")] == 2
    assert after[pool_sample("vmpooler_checkout_empty_total", "e")] == 1
    assert after[pool_sample("vmpooler_checkout_invalid_total", "unknown")] == 1
    assert after[("vmpooler_delete_success_total", (("vmpooler_instance", "vmpooler"),))] == 1
    assert after[("vmpooler_delete_failed_total", (("vmpooler_instance", "vmpooler"),))] == 1


def test_vm_lifecycles_are_timed(make_server: Any) -> None:
    server = make_server([{"name": "a", "template": "t", "size": 2}])
    vm = server.client.post("/vm/a").json()["a"]["hostname"]
    assert server.client.delete(f"/vm/{vm}").status_code == 200

    def timed() -> dict[str, float]:
        samples = scrape(server)
        counts = {name: samples.get(pool_sample(f"vmpooler_{name}_count", "a"), 0.0)
                  for name in ("time_to_ready_state", "clone", "destroy")}
        return counts if counts["destroy"] >= 1 and counts["time_to_ready_state"] >= 3 else {}

    counts = server.wait(timed)
    assert counts["clone"] >= 3  # the first fill of 2 and the refill after the checkout


def test_the_configured_endpoint_prefix_and_instance(make_server: Any) -> None:
    extra = {":prometheus": {"prefix": "staging", "prometheus_prefix": "pooler", "prometheus_endpoint": "/stats/prom"}}
    server = make_server([{"name": "a", "template": "t", "size": 1}], extra=extra)
    samples = scrape(server, "/stats/prom")
    assert samples[pool_sample("pooler_ready", "a", "staging")] == 1
    assert scrape(server, "/metrics").keys() == samples.keys()
    assert server.root.get("/prometheus").status_code == 404


def test_no_path_of_the_app_can_be_the_exposition(make_server: Any) -> None:
    """Every route the app serves (its fixed part, before any parameter) is refused as
    prometheus_endpoint, so the exposition can never hide behind a route or hide one."""
    from pydantic import ValidationError

    from corral.config.schema_sections import PrometheusConfig

    server = make_server([{"name": "a", "template": "t", "size": 1}])
    app = server.thread.server.config.app
    from fastapi.routing import iter_route_contexts

    paths = {str(r.path or "").split("{", 1)[0].rstrip("/") for r in iter_route_contexts(app.routes)}
    checked = sorted(p for p in paths if p and p not in ("/prometheus", "/metrics"))
    assert "/full_config" in checked and "/dashboard" in checked and "/api/v3/vm" in checked
    for path in checked:
        with pytest.raises(ValidationError):
            PrometheusConfig(prometheus_endpoint=path)


def test_no_secret_reaches_the_exposition(make_server: Any) -> None:
    server = make_server([{"name": "a", "template": "t", "size": 2}], auth="static")
    token = server.token("alice")
    got = server.client.post("/vm/a", headers=tok(token))
    assert got.status_code == 200
    server.client.post("/vm/a", headers=basic("bob", "Wrong-pw-x"))
    server.client.post(f"/vm/{token}")  # a token where a pool name goes: an invalid name, counted as such
    assert server.client.delete(f"/vm/{got.json()['a']['hostname']}", headers=tok(token)).status_code == 200
    text = server.root.get("/prometheus").text
    for secret in (token, *PASSWORDS.values(), "Wrong-pw-x"):
        assert secret not in text
    samples = scrape(server)
    assert samples[pool_sample("vmpooler_checkout_success_total", "a")] == 2


def test_statsd_and_graphite_that_are_down_do_not_stop_serving(make_server: Any) -> None:
    port = free_port()  # nothing listens there
    extra = {":statsd": {"server": "127.0.0.1", "port": port, "interval": 1},
             ":graphite": {"server": "127.0.0.1", "port": port, "interval": 1, "timeout": 0.5}}
    server = make_server([{"name": "a", "template": "t", "size": 2}], extra=extra)
    metrics = server.service.metrics
    server.wait(lambda: metrics.graphite.errors.failures >= 1 and metrics.statsd.address is not None)
    for _ in range(3):
        got = server.client.post("/vm/a")
        assert got.status_code == 200
        assert server.client.delete(f"/vm/{got.json()['a']['hostname']}").status_code == 200
        server.wait_full()
    samples = scrape(server)
    assert samples[pool_sample("vmpooler_checkout_success_total", "a")] == 3
    assert samples[("corral_push_failures_total", (("to", "graphite"),))] >= 1  # said, not silently dropped
    assert ("corral_push_dropped_total", (("to", "statsd"),)) in samples
    assert httpx.get(f"{server.url}/api/v3/status", timeout=5).status_code == 200


def test_on_redis_the_managers_and_the_service_acting_on_the_pools_are_read(
        make_server: Any, redis_server: Any, redis_site: str) -> None:
    extra = {":store": {"type": "redis", "site": redis_site},
             ":redis": {"server": "127.0.0.1", "port": redis_server.port}}
    server = make_server([{"name": "a", "template": "t", "size": 2}], extra=extra)
    me = server.service.cluster.me
    server.wait(lambda: server.client.get("/status", params={"view": "managers"}).json()["managers"]["live"]
                .get(me, {}).get("state") == "Active")
    running = server.service.metrics.running()  # the manager's pool service, followed from before its start
    assert running is not None and "metrics" in running.monitoring().events.subscribers
    vm = server.client.post("/vm/a").json()["a"]["hostname"]
    assert server.client.delete(f"/vm/{vm}").status_code == 200

    def read() -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        samples = scrape(server)
        timed = [samples.get(pool_sample(f"vmpooler_{name}_count", "a"), 0) for name in ("time_to_ready_state",
                                                                                        "clone", "destroy")]
        return samples if timed[0] >= 3 and timed[1] >= 3 and timed[2] >= 1 else {}

    # the first fill (2 VMs) and the refill, timed by the manager's pool service; the destroy
    # begun by the API's return
    samples = server.wait(read)
    assert samples[("corral_manager_state", (("manager", me), ("state", "Active")))] == 1
    assert samples[("corral_manager_pools", (("manager", me),))] == 1
    assert samples[("corral_runner_calls_total", ())] >= 1
    assert samples[pool_sample("vmpooler_checkout_success_total", "a")] == 1
