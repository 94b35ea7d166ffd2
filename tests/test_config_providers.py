"""The ``:providers:`` section as the loader checks it, through the provider registry."""

from __future__ import annotations

from typing import Any

import pytest

from corral.config.keys import section_index
from corral.config.providers import (
    PROVIDER_RULES,
    check_provider_classes,
    check_provider_settings,
    default_provider,
    provider_key_models,
    raw_provider_class,
)
from corral.config.schema import Config
from corral.providers.sim import SimSettings
from corral.providers.vsphere.settings import VsphereSettings


@pytest.mark.parametrize(
    ("name", "entry", "expected"),
    [
        ("sim", {}, "sim"),
        ("lab", {"provider_class": "sim"}, "sim"),
        ("dummy", None, "sim"),
        ("lab", {"provider_class": "dummy"}, "sim"),
        ("vsphere", {"server": "vc"}, "vsphere"),
        ("kvm", {"provider_class": "libvirt"}, "libvirt"),
        ("odd", {"provider_class": "xen"}, "xen"),
    ],
)
def test_an_entrys_class_is_its_provider_class_else_its_name(name: str, entry: Any, expected: str):
    assert raw_provider_class(name, entry) == expected


@pytest.mark.parametrize(
    ("providers", "expected"),
    [({"lab": {}}, "lab"), ({}, "vsphere"), ({"a": {}, "b": {}}, "vsphere")],
)
def test_the_default_provider_is_the_only_one_else_vsphere(providers: dict[str, Any], expected: str):
    assert default_provider(providers) == expected


@pytest.mark.parametrize(
    ("providers", "problems"),
    [
        ({"sim": {}, "dummy": None, "kvm": {"provider_class": "libvirt"}}, []),
        ({"odd": {"provider_class": "xen"}},
         ["providers.odd.provider_class: must be one of sim, dummy, vsphere, libvirt, got 'xen'"]),
        ({"odd": {"provider_class": 5}}, []),  # not a string: the model's error
    ],
)
def test_only_known_classes_are_accepted(providers: dict[str, Any], problems: list[str]):
    assert check_provider_classes(providers) == problems


@pytest.mark.parametrize(
    ("providers", "problems"),
    [
        ({"sim": {"hosts": 2}}, []),
        ({"sim": {"time_scale": 0}}, ["providers.sim.time_scale: must be > 0.0, got 0"]),
        ({"vsphere": {"server": "vc", "username": "u", "password": "p", "tmeout": 3}},
         ["providers.vsphere.tmeout: not a known key"]),
        ({"kvm": {"provider_class": "libvirt", "anything": 1}}, []),  # a planned class: not checked here
    ],
)
def test_each_entry_is_checked_with_its_classs_model(providers: dict[str, Any], problems: list[str]):
    assert check_provider_settings(providers, section_index(Config)) == problems


def test_key_models_and_rules_follow_the_name_the_entry_gives():
    models = provider_key_models({"sim": {}, "dummy": {}, "vc": {"provider_class": "vsphere"}, "kvm": {}})
    assert models == {"sim": (SimSettings, PROVIDER_RULES["sim"]), "dummy": (SimSettings, PROVIDER_RULES["dummy"]),
                      "vc": (VsphereSettings, PROVIDER_RULES["vsphere"])}
    assert PROVIDER_RULES["sim"].strict and not PROVIDER_RULES["dummy"].strict
    assert "is_ready_timeout" in PROVIDER_RULES["dummy"].quiet
