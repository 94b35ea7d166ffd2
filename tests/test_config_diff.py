"""The diff of two configurations that a reload applies (pure; one table)."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest

from corral.auth.passwords import hash_password
from corral.config import parse_config
from corral.config.diff import ConfigDiff, diff_configs

HASH = hash_password("x", iterations=1000)
BASE: dict[str, Any] = {
    ":providers": {":sim": {"provider_class": "sim"},
                   ":vs": {"provider_class": "vsphere", "server": "vc.example", "username": "u", "password": "p"}},
    ":config": {"timeout": 15},
    ":pools": [
        {"name": "a", "template": "t-a", "size": 2, "provider": "sim"},
        {"name": "b", "template": "t-b", "size": 1, "provider": "sim"},
        {"name": "v", "template": "t-v", "size": 1, "provider": "vs", "folder": "f"},
    ],
}


def pool(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in doc[":pools"] if p["name"] == name)


def edit(change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    doc = copy.deepcopy(BASE)
    change(doc)
    return doc


CASES: list[tuple[str, Callable[[dict[str, Any]], None], ConfigDiff]] = [
    ("nothing", lambda d: None, ConfigDiff()),
    ("size", lambda d: pool(d, "a").update(size=5), ConfigDiff(pools_changed={"a": ("size",)})),
    ("template", lambda d: pool(d, "b").update(template="t-new"),
     ConfigDiff(pools_changed={"b": ("template",)})),
    ("clone target", lambda d: pool(d, "a").update(clone_target="c2"),
     ConfigDiff(pools_changed={"a": ("clone_target",)})),
    ("a global default reaches the pools", lambda d: d[":config"].update(timeout=30),
     ConfigDiff(pools_changed={"a": ("timeout_s",), "b": ("timeout_s",), "v": ("timeout_s",)})),
    ("pool added", lambda d: d[":pools"].append({"name": "c", "template": "t-c", "size": 1, "provider": "sim"}),
     ConfigDiff(pools_added=("c",), pools_of_providers=("sim",))),
    ("pool removed", lambda d: d[":pools"].pop(1), ConfigDiff(pools_removed=("b",), pools_of_providers=("sim",))),
    ("a pool of a provider built with its pools", lambda d: d[":pools"].append(
        {"name": "w", "template": "t-w", "size": 1, "provider": "vs"}),
     ConfigDiff(pools_added=("w",), pools_of_providers=("vs",))),
    ("a datastore", lambda d: pool(d, "v").update(datastore="ds2"),
     ConfigDiff(pools_changed={"v": ("datastore",)}, pools_of_providers=("vs",))),
    ("provider connection", lambda d: d[":providers"][":vs"].update(server="vc2.example"),
     ConfigDiff(providers_changed={"vs": ("server",)})),
    ("provider password", lambda d: d[":providers"][":vs"].update(password="q"),
     ConfigDiff(providers_changed={"vs": ("password",)})),
    ("a new provider", lambda d: (d[":providers"].update({":sim2": {"provider_class": "sim"}}),
                                  d[":pools"].append({"name": "d", "template": "t", "size": 1, "provider": "sim2"})),
     ConfigDiff(pools_added=("d",), providers_added=("sim2",))),
    ("scheduling policy", lambda d: d.update({":scheduling": {"policy": "pack"}}),
     ConfigDiff(scheduling=("policy",))),
    ("utilisation limit", lambda d: d[":config"].update(utilization_limit=50),
     ConfigDiff(scheduling=("config.utilization_limit",))),
    ("rebalancing needs a restart", lambda d: d.update({":scheduling": {"rebalance": True}}),
     ConfigDiff(restart=("scheduling.rebalance",))),
    ("auth", lambda d: d.update({":auth": {"provider": "static", "users": {"al": HASH}}}), ConfigDiff(auth=True)),
    ("task limit needs a restart", lambda d: d[":config"].update(task_limit=3),
     ConfigDiff(restart=("config.task_limit",))),
    ("a section that needs a restart", lambda d: d.update({":runner": {"batch_size": 5}}),
     ConfigDiff(restart=("runner",))),
    ("experimental features", lambda d: d[":config"].update(experimental_features=True),
     ConfigDiff(other=("config.experimental_features",))),
    ("tagfilter", lambda d: d.update({":tagfilter": {"url": "(.*)"}}), ConfigDiff(other=("tagfilter",))),
]


@pytest.mark.parametrize(("change", "expected"), [(c, e) for _, c, e in CASES], ids=[n for n, _, _ in CASES])
def test_diff(change: Callable[[dict[str, Any]], None], expected: ConfigDiff) -> None:
    old, _ = parse_config(copy.deepcopy(BASE))
    new, _ = parse_config(edit(change))
    diff = diff_configs(old, new)
    assert diff == expected
    assert diff.empty is (expected == ConfigDiff())


def test_answer_names_keys_never_values() -> None:
    old, _ = parse_config(copy.deepcopy(BASE))
    new, _ = parse_config(edit(lambda d: d[":providers"][":vs"].update(password="hunter2-secret")))
    shown = diff_configs(old, new).as_dict()
    assert shown["providers_changed"] == {"vs": ["password"]}
    assert "hunter2-secret" not in repr(shown)
