"""The provider registry: class names, other names, settings models and factories."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from corral.providers.registry import PLANNED, PROVIDERS, ProviderContext, class_names, find_class
from corral.providers.sim import SimProvider, SimSettings


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sim", "sim"),
        ("dummy", "sim"),  # vmpooler's dummy provider is the simulator
        ("vsphere", "vsphere"),
        ("libvirt", None),  # planned: named in files, not run
        ("nope", None),
    ],
)
def test_a_class_is_found_by_its_name_or_another(name: str, expected: str | None):
    found = find_class(name)
    assert (found.name if found else None) == expected


def test_class_names_list_each_class_then_its_other_names_then_the_planned_ones():
    assert class_names() == ("sim", "dummy", "vsphere", "libvirt")
    assert PLANNED == ("libvirt",)


@pytest.mark.parametrize(
    ("cls", "entry", "attr", "value"),
    [
        ("sim", {"provider_class": "sim", "hosts": 3}, "hosts", 3),  # the simulator's model has no provider_class
        ("vsphere", {"provider_class": "vsphere", "server": "vc", "username": "u", "password": "p"},
         "provider_class", "vsphere"),  # vSphere's declares it
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
