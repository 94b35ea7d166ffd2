"""The provider registry: class names, other names, settings models and factories."""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

import pytest
from pydantic import ValidationError

from corral.config import ConfigError, parse_config
from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool
from corral.providers.probe import ReadyCheck
from corral.providers.registry import (
    LIBVIRT_MISSING,
    PLANNED,
    PROVIDERS,
    ProviderContext,
    ProviderUnavailable,
    class_names,
    find_class,
)
from corral.providers.sim import SimProvider, SimSettings
from corral.runtime import build_providers


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sim", "sim"),
        ("dummy", "sim"),  # vmpooler's dummy provider is the simulator
        ("vsphere", "vsphere"),
        ("libvirt", "libvirt"),
        ("nope", None),
    ],
)
def test_a_class_is_found_by_its_name_or_another(name: str, expected: str | None):
    found = find_class(name)
    assert (found.name if found else None) == expected


def test_class_names_list_each_class_then_its_other_names_then_the_planned_ones():
    assert class_names() == ("sim", "dummy", "vsphere", "libvirt")
    assert PLANNED == ()


@pytest.mark.parametrize(
    ("cls", "entry", "attr", "value"),
    [
        ("sim", {"provider_class": "sim", "hosts": 3}, "hosts", 3),  # the simulator's model has no provider_class
        ("vsphere", {"provider_class": "vsphere", "server": "vc", "username": "u", "password": "p"},
         "provider_class", "vsphere"),  # vSphere's declares it
        ("libvirt", {"provider_class": "libvirt", "hosts": ["qemu:///system"]}, "provider_class", "libvirt"),
    ],
)
def test_settings_of_passes_provider_class_only_to_a_model_that_declares_it(cls, entry, attr, value):
    assert getattr(PROVIDERS[cls].settings_of(entry), attr) == value


def test_settings_of_refuses_invalid_settings():
    with pytest.raises(ValidationError):
        PROVIDERS["vsphere"].settings_of({"server": "vc"})


def test_the_sim_factory_builds_a_simulator_with_its_settings():
    settings = SimSettings(hosts=2)
    provider = PROVIDERS["sim"].build("lab", settings, ProviderContext())
    assert isinstance(provider, SimProvider)
    assert provider.name == "lab" and provider.settings is settings


def test_the_vsphere_factory_reads_pools_and_config_from_its_context():
    cls = PROVIDERS["vsphere"]
    settings = cls.settings_of({"server": "vc", "username": "u", "password": "p"})
    config = {"create_folders": True, "create_template_delta_disks": False, "purge_unconfigured_resources": False,
              "purge_unconfigured_folders": True, "ready_check_port": 2222, "ready_check_timeout": 1.5,
              "ready_check_address": "name", "create_linked_clones": True, "domain": "example.com"}
    pool = {"name": "p", "template": "Templates/t", "folder": "pools/p", "datastore": "ds", "domain": None,
            "dns_plugin": None, "create_linked_clone": False, "snapshot_mainMem_ioBlockPages": None,
            "snapshot_mainMem_iowait": 0}
    provider = cls.build("vc", settings, ProviderContext(pools=(pool,), config=config, dns_domains={}))
    made = provider.pools["p"]  # type: ignore[attr-defined]
    assert (made.template, made.folder, made.datastore, made.linked_clone) == ("Templates/t", "pools/p", "ds", False)
    assert made.domain == "example.com" and made.extra_config == {"mainMem.iowait": "0"}
    assert provider.create_folders is True and provider.purge is True  # type: ignore[attr-defined]
    assert provider.ready.port == 2222 and provider.ready.timeout == 1.5  # type: ignore[attr-defined]


# -- libvirt ---------------------------------------------------------------------------------
LIBVIRT_CONFIG = {"ready_check_port": 22, "ready_check_timeout": 5.0, "ready_check_address": "name",
                  "create_linked_clones": True, "domain": "example.com"}


def build_libvirt(entry: dict[str, Any], pools: tuple[dict[str, Any], ...] = (),
                  **config: Any) -> Any:
    cls = PROVIDERS["libvirt"]
    context = ProviderContext(pools=pools, config={**LIBVIRT_CONFIG, **config}, dns_domains={})
    return cls.build("kvm", cls.settings_of({"provider_class": "libvirt", "hosts": ["qemu:///system"], **entry}),
                     context)


def pool_keys(name: str, **keys: Any) -> dict[str, Any]:
    return {"name": name, "template": "debian-12", "datastore": None, "domain": None, "dns_plugin": None,
            "create_linked_clone": None, **keys}


def test_the_libvirt_factory_reads_pools_and_config_from_its_context():
    pools = (pool_keys("a", datastore="fast", create_linked_clone=False), pool_keys("b", domain="lab.example.net"))
    provider = build_libvirt({"storage_pool": "pooled"}, pools)
    assert isinstance(provider, LibvirtProvider)
    assert provider.name == "kvm" and list(provider.hosts) == ["system"]
    assert provider.pools == {
        "a": LibvirtPool("a", "debian-12", linked_clone=False, storage_pool="fast", domain="example.com"),
        "b": LibvirtPool("b", "debian-12", linked_clone=True, storage_pool="pooled", domain="lab.example.net"),
    }


@pytest.mark.parametrize(
    ("own", "config", "expected"),
    [
        ({}, {}, ReadyCheck(22, 5.0, "name")),
        ({}, {"ready_check_port": 2222, "ready_check_address": "guest_ip"}, ReadyCheck(2222, 5.0, "guest_ip")),
        ({"ready_check_port": 2022, "ready_check_timeout": 1.5}, {"ready_check_port": 2222},
         ReadyCheck(2022, 1.5, "name")),
        ({"ready_check_address": "guest_ip"}, {"ready_check_address": "name", "ready_check_timeout": 9.0},
         ReadyCheck(22, 9.0, "guest_ip")),
    ],
)
def test_a_libvirt_providers_own_ready_check_keys_override_the_configs(own: dict[str, Any],
                                                                       config: dict[str, Any],
                                                                       expected: ReadyCheck):
    assert build_libvirt(own, **config).ready == expected


class BrokenLibvirt(importlib.abc.MetaPathFinder):
    """Finds ``libvirt`` and fails to load it, as when its C library is missing."""

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> None:
        if fullname == "libvirt":
            raise ImportError("libvirt.so.0: cannot open shared object file: No such file or directory")
        return None


@pytest.mark.parametrize(
    ("broken", "message"),
    [
        ("missing", LIBVIRT_MISSING),
        ("unloadable", "the libvirt provider cannot load libvirt-python: "
                       "libvirt.so.0: cannot open shared object file: No such file or directory"),
    ],
)
def test_without_libvirt_python_the_libvirt_factory_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch,
                                                                            broken: str, message: str):
    if broken == "missing":
        monkeypatch.setitem(sys.modules, "libvirt", None)
    else:
        monkeypatch.delitem(sys.modules, "libvirt", raising=False)
        monkeypatch.setattr(sys, "meta_path", [BrokenLibvirt(), *sys.meta_path])
    with pytest.raises(ProviderUnavailable) as err:
        build_libvirt({})
    assert str(err.value) == message


def test_a_libvirt_configuration_without_libvirt_python_is_a_configuration_problem(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setitem(sys.modules, "libvirt", None)
    config, _ = parse_config({":providers": {":kvm": {"provider_class": "libvirt", "hosts": ["qemu:///system"]}},
                              ":pools": [{"name": "p", "template": "debian-12", "size": 1}]})
    with pytest.raises(ConfigError) as err:
        build_providers(config)
    assert err.value.problems == [
        "providers.kvm: the libvirt provider needs libvirt-python: pip install 'corral[libvirt]' "
        "(and Debian's libvirt-dev to build it)"]
