"""Autosized pools over real HTTP: the pool keys, /status's autosize fields and view, the metrics,
and /config/poolsize holding a pool until it is reset."""

from __future__ import annotations

import pytest

from corral.config import ConfigError, parse_config
from helpers import quick_config

AUTO = {"name": "a", "template": "t/a", "size": 1, "min_size": 1, "max_size": 4, "target_wait": 0.001,
        "scale_down_after": 600, "demand_window": 1}
EXPERIMENTAL = {"experimental_features": True}
SLOW_ENOUGH = {"time_scale": 0.02}  # a VM is ready some 0.25 s after it is asked for


@pytest.mark.parametrize(("keys", "problem"), [
    ({"min_size": 5, "max_size": 2}, "min_size (5) is above max_size (2)"),
    ({"min_size": 1}, "min_size without max_size"),
    ({"max_size": 3, "target_wait": 1}, "pools[0].target_wait: must be < 1"),
    ({"max_size": 3, "target_wait": 0}, "pools[0].target_wait: must be > 0"),
    ({"max_size": 3, "scale_down_after": -1}, "pools[0].scale_down_after: must be >= 0"),
    ({"max_size": 3, "demand_window": 0}, "pools[0].demand_window: must be > 0"),
    ({"max_size": 0}, "pools[0].max_size: must be >= 1"),
])
def test_nonsense_autosizing_keys_are_refused_naming_the_key(tmp_path, keys, problem):
    with pytest.raises(ConfigError) as err:
        parse_config(quick_config(tmp_path, [{"name": "a", "template": "t", "size": 1, **keys}]))
    assert any(problem in p for p in err.value.problems), err.value.problems


@pytest.mark.parametrize(("keys", "size", "low", "high"), [
    ({}, 3, None, None),  # no keys: the fixed size, exactly as before
    ({"min_size": 4, "max_size": 8}, 4, 4, 8),  # the starting size is clamped into min..max
    ({"max_size": 2}, 2, 0, 2),
])
def test_autosizing_keys_become_the_pools_bounds(tmp_path, keys, size, low, high):
    config, warnings = parse_config(quick_config(tmp_path, [{"name": "a", "template": "t", "size": 3, **keys}]))
    (pool,) = config.domain_pools()
    assert (pool.size, pool.min_size, pool.max_size, pool.autosized) == (size, low, high, high is not None)
    assert not warnings


def test_status_shows_the_target_and_why_and_the_metrics_carry_it(make_server):
    server = make_server([AUTO, {"name": "b", "template": "t/b", "size": 1}], sim=SLOW_ENOUGH)
    for _ in range(3):
        assert server.client.post("/vm/a").status_code in (200, 503)  # an empty pool is demand too
    pools = server.client.get("/status").json()["pools"]
    assert "autosize" not in pools["b"], "a fixed pool has no autosize fields"
    auto = pools["a"]["autosize"]
    assert auto["target"] == pools["a"]["max"] > 1 and auto["rate_per_hour"] > 0
    assert auto["held"] is False and "checkouts/h" in auto["reason"] and "history" not in auto
    view = server.client.get("/status", params={"view": "autosize"}).json()
    assert set(view) == {"autosize", "status"}
    history = view["autosize"]["a"]["history"]
    assert history and history[-1]["size"] == auto["target"]
    metrics = server.root.get("/prometheus").text
    assert f'corral_pool_target_size{{poolname="a"}} {auto["target"]}' in metrics
    assert 'corral_pool_demand_per_hour{poolname="a"}' in metrics
    assert 'corral_pool_ready_seconds{poolname="a"}' in metrics
    assert 'corral_pool_target_size{poolname="b"}' not in metrics


def test_a_size_override_switches_autosizing_off_until_it_is_reset(make_server):
    server = make_server([AUTO], sim=SLOW_ENOUGH, **EXPERIMENTAL)
    held = server.client.post("/config/poolsize", json={"a": 1})
    assert held.status_code == 201, "stored even though the size was already 1: it holds the pool"
    for _ in range(3):
        assert server.client.post("/vm/a").status_code in (200, 503)
    auto = server.client.get("/status").json()["pools"]["a"]
    assert auto["max"] == 1 and auto["autosize"]["held"] is True
    assert server.store.pool_overrides()["a"]["size"] == 1
    reset = server.client.delete("/config/poolsize/a")
    assert reset.status_code in (200, 201)
    after = server.client.get("/status").json()["pools"]["a"]
    assert after["autosize"]["held"] is False and after["max"] > 1, "autosizing resumes with the demand it saw"
