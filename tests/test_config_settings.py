"""Each layer's settings, as config/settings.py builds them from a file."""

from __future__ import annotations

from typing import Any

import pytest

from corral.config import parse_config
from corral.config.settings import manager_settings, monitor_settings, provider_context, scheduler_settings
from helpers import SIM_ONLY


@pytest.mark.parametrize(
    ("section", "keys", "field", "expected"),
    [
        (":monitoring", {}, "feed_timeout", 30),
        (":monitoring", {"feed_timeout": 5}, "feed_timeout", 5),
        (":monitoring", {"host_down_grace": 7}, "host_down_grace_s", 7),
        (":monitoring", {"over_utilized_percent": 70}, "over_utilized_percent", 70),
        (":monitoring", {"subscriber_queue": 50}, "queue_size", 50),
        (":monitoring", {"event_history": 3}, "history", 3),
    ],
)
def test_monitor_settings(section: str, keys: dict[str, Any], field: str, expected: Any):
    config, _ = parse_config({**SIM_ONLY, section: keys})
    assert getattr(monitor_settings(config), field) == expected


@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        ({}, "policy", "even"),
        ({":scheduling": {"policy": "pack"}}, "policy", "pack"),
        ({}, "weights", None),
        ({":scheduling": {"weights": {"cpu": 1}}}, "weights", {"cpu": 1}),
        ({":config": {"utilization_limit": 75}}, "utilization_limit", 75),
        ({":scheduling": {"memory_overcommit": 1.5}}, "memory_overcommit", 1.5),
        ({":scheduling": {"reservation_timeout": 9}}, "reservation_timeout", 9),
    ],
)
def test_scheduler_settings(doc: dict[str, Any], field: str, expected: Any):
    config, _ = parse_config({**SIM_ONLY, **doc})
    assert getattr(scheduler_settings(config), field) == expected


@pytest.mark.parametrize(
    ("doc", "field", "expected"),
    [
        ({}, "check_interval", 5.0),
        ({":config": {"ondemand_request_ttl": 2}}, "ondemand_ttl_s", 120.0),
        ({":config": {"vm_lifetime_auth": 2}}, "lifetime_auth_s", 7200.0),
        ({}, "lifetime_auth_s", None),
        ({":config": {"data_ttl": 1}}, "data_ttl_s", 3600.0),
        ({":redis": {"data_ttl": 2}}, "data_ttl_s", 7200.0),  # vmpooler's key when corral's is not given
        ({":scheduling": {"rebalance": True, "rebalance_interval": 30}}, "rebalance_interval_s", 30),
    ],
)
def test_manager_settings(doc: dict[str, Any], field: str, expected: Any):
    config, _ = parse_config({**SIM_ONLY, **doc})
    assert getattr(manager_settings(config), field) == expected


def test_a_provider_context_holds_the_pools_that_use_it_and_config_as_plain_values():
    doc = {":providers": {":a": {"provider_class": "sim"}, ":b": {"provider_class": "sim"}},
           ":config": {"create_folders": True},
           ":dns_configs": {":example": {"domain": "example.com"}},
           ":pools": [{"name": "p", "template": "t", "size": 1, "provider": "a", "datastore": "ds"},
                      {"name": "q", "template": "t", "size": 1, "provider": "b"}]}
    config, _ = parse_config(doc)
    context = provider_context(config, "a")
    assert [(p["name"], p["datastore"]) for p in context.pools] == [("p", "ds")]
    assert context.config["create_folders"] is True and context.config["ready_check_port"] == 22
    assert context.dns_domains == {"example": "example.com"}
