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
from corral.providers.libvirt.settings import LibvirtSettings
from corral.providers.registry import PROVIDERS
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
        ({"sim": {}, "dummy": None, "kvm": {"provider_class": "libvirt"}, "libvirt": {}}, []),
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
        ({"kvm": {"provider_class": "libvirt", "hosts": ["qemu:///system"], "anything": 1}},
         ["providers.kvm.anything: not a known key"]),
    ],
)
def test_each_entry_is_checked_with_its_classs_model(providers: dict[str, Any], problems: list[str]):
    assert check_provider_settings(providers, section_index(Config)) == problems


# -- libvirt ---------------------------------------------------------------------------------
def libvirt_problems(**keys: Any) -> list[str]:
    return check_provider_settings({"kvm": {"provider_class": "libvirt", **keys}}, section_index(Config))


@pytest.mark.parametrize(
    "hosts",
    [
        ["qemu+ssh://root@kvm1.example.net/system?keyfile=/etc/corral/id_ed25519"],
        ["qemu+ssh://root@kvm1/system", "qemu+tls://kvm2/system"],
        [{"uri": "qemu:///system", "name": "local"}],
        ["test:///srv/hosts/host1.xml", {"uri": "test:///srv/hosts/host2.xml"}, {"uri": "qemu:///system"}],
    ],
)
def test_libvirt_hosts_are_uris_or_mappings_with_a_uri_and_a_name(hosts: list[Any]):
    assert libvirt_problems(hosts=hosts) == []


@pytest.mark.parametrize(
    ("host", "name"),
    [
        ("qemu+ssh://root@kvm1.example.net/system?keyfile=/etc/corral/id_ed25519", "kvm1.example.net"),
        ("qemu+tls://kvm2.example.net:16514/system", "kvm2.example.net"),
        ("test:///srv/hosts/host1.xml", "host1"),
        ("test:///default", "default"),
        ("qemu:///system", "system"),
        ({"uri": "qemu+ssh://root@kvm1/system", "name": "rack4-a"}, "rack4-a"),
    ],
)
def test_a_libvirt_hosts_name_is_its_own_else_taken_from_its_uri(host: Any, name: str):
    settings = PROVIDERS["libvirt"].settings_of({"provider_class": "libvirt", "hosts": [host]})
    assert [h.host_name for h in settings.hosts] == [name]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("hosts", "name", "numbers"),
    [
        (["qemu+ssh://root@kvm1/system", "qemu+tls://kvm1/system"], "kvm1", (1, 2)),
        (["test:///a/host1.xml", "test:///b/host1.xml"], "host1", (1, 2)),
        (["qemu+ssh://kvm1/system", "qemu+ssh://kvm3/system", {"uri": "qemu+ssh://kvm2/system", "name": "kvm1"}],
         "kvm1", (1, 3)),
    ],
)
def test_two_libvirt_hosts_of_one_name_are_refused_naming_both_by_position(hosts: list[Any], name: str,
                                                                           numbers: tuple[int, int]):
    (problem,) = libvirt_problems(hosts=hosts)
    assert problem.startswith(f"providers.kvm: hosts {numbers[0]} and {numbers[1]} are both called '{name}'"), problem
    assert "://" not in problem and "root@" not in problem  # a URI may carry a user name: never shown
    assert "give one of them a `name`" in problem


@pytest.mark.parametrize(
    ("keys", "problems"),
    [
        ({}, ["providers.kvm.hosts: required key is missing"]),
        ({"hosts": []}, ["providers.kvm.hosts: list should have at least 1 item after validation, not 0, got []"]),
        ({"hosts": "qemu:///system"}, ["providers.kvm.hosts: must be a list, got 'qemu:///system'"]),
        ({"hosts": ["qemu:///system"], "storage_pol": "fast"},
         ["providers.kvm.storage_pol: not a known key; did you mean 'storage_pool'?"]),
        ({"hosts": [{"uri": "qemu:///system", "nmae": "a"}]}, ["providers.kvm.hosts[0].nmae: not a known key"]),
        ({"hosts": [{"name": "a"}]}, ["providers.kvm.hosts[0].uri: required key is missing"]),
        ({"hosts": ["kvm1"]},
         ["providers.kvm.hosts[0].uri: is not a libvirt uri (such as qemu+ssh://host/system), got <redacted>"]),
        ({"hosts": ["qemu:///system"], "ready_check_address": "ip"},
         ["providers.kvm.ready_check_address: must be 'name' or 'guest_ip', got 'ip'"]),
    ],
)
def test_libvirt_entries_with_a_missing_unknown_or_bad_key_are_refused(keys: dict[str, Any], problems: list[str]):
    assert libvirt_problems(**keys) == problems


def test_key_models_and_rules_follow_the_name_the_entry_gives():
    models = provider_key_models({"sim": {}, "dummy": {}, "vc": {"provider_class": "vsphere"}, "kvm": {},
                                  "lv": {"provider_class": "libvirt"}})
    assert models == {"sim": (SimSettings, PROVIDER_RULES["sim"]), "dummy": (SimSettings, PROVIDER_RULES["dummy"]),
                      "vc": (VsphereSettings, PROVIDER_RULES["vsphere"]),
                      "lv": (LibvirtSettings, PROVIDER_RULES["libvirt"])}
    assert PROVIDER_RULES["sim"].strict and not PROVIDER_RULES["dummy"].strict
    assert "is_ready_timeout" in PROVIDER_RULES["dummy"].quiet
