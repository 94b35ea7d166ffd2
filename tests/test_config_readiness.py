"""The readiness keys ``ready_check_port``, ``ready_check_timeout`` and ``ready_check_address``
are read under ``:config:`` and under a vSphere provider; the provider's value wins."""

from __future__ import annotations

from typing import Any

import pytest

from corral.config import parse_config
from corral.providers.probe import ReadyCheck, resolve_ready_check
from corral.runtime import build_providers

GLOBAL = ReadyCheck(port=22, timeout=5.0, address="name")


@pytest.mark.parametrize(
    ("port", "timeout", "address", "expected"),
    [
        (None, None, None, GLOBAL),
        (2222, None, None, ReadyCheck(2222, 5.0, "name")),
        (None, 1.5, None, ReadyCheck(22, 1.5, "name")),
        (None, None, "guest_ip", ReadyCheck(22, 5.0, "guest_ip")),
        (2222, 1.5, "guest_ip", ReadyCheck(2222, 1.5, "guest_ip")),
    ],
)
def test_a_providers_readiness_keys_override_the_global_ones(port, timeout, address, expected):
    assert resolve_ready_check(GLOBAL, port=port, timeout=timeout, address=address) == expected


def vsphere_provider(config_keys: dict[str, Any], provider_keys: dict[str, Any]) -> Any:
    doc = {":providers": {":vsphere": {"server": "vc", "username": "u", "password": "p", **provider_keys}},
           ":config": config_keys, ":pools": [{"name": "p", "template": "t", "size": 1}]}
    config, warnings = parse_config(doc)
    assert warnings == []
    return build_providers(config)["vsphere"]


@pytest.mark.parametrize(
    ("config_keys", "provider_keys", "port", "timeout", "address"),
    [
        ({}, {}, 22, 5.0, "name"),
        ({"ready_check_address": "guest_ip"}, {}, 22, 5.0, "guest_ip"),  # misplaced before: names were probed
        ({"ready_check_port": 2022, "ready_check_timeout": 2}, {}, 2022, 2.0, "name"),
        ({}, {"ready_check_port": 2222, "ready_check_timeout": 3}, 2222, 3.0, "name"),
        ({"ready_check_address": "guest_ip", "ready_check_port": 2022},
         {"ready_check_address": "name", "ready_check_port": 2222}, 2222, 5.0, "name"),
    ],
)
def test_the_provider_built_from_the_file_probes_as_configured(config_keys, provider_keys, port, timeout, address):
    provider = vsphere_provider(config_keys, provider_keys)
    assert (provider.ready.port, provider.ready.timeout, provider.ready.address) == (
        port, timeout, address)
