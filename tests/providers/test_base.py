"""The Provider protocol: a backend that subclasses it keeps the defaults of its optional members."""

from __future__ import annotations

import pytest

from corral.providers.base import Provider
from corral.providers.sim import SimProvider, SimSettings
from corral.providers.vsphere import VsphereProvider


class Bare(Provider):
    """A backend that sets nothing but its name."""

    def __init__(self) -> None:
        self.name = "bare"


@pytest.mark.parametrize(("provider", "bulk_calls", "probes_readiness"), [
    (Bare(), False, False),
    (SimProvider("sim"), True, False),
    (SimProvider("sim", SimSettings(bulk_calls=False)), False, False),
])
def test_optional_members(provider: Provider, bulk_calls: bool, probes_readiness: bool) -> None:
    assert isinstance(provider, Provider)
    assert (provider.bulk_calls, provider.probes_readiness) == (bulk_calls, probes_readiness)
    assert provider.cannot_migrate is None  # every provider can migrate unless it says otherwise


def test_vsphere_clones_one_vm_per_call_and_probes_readiness() -> None:
    assert (VsphereProvider.bulk_calls, VsphereProvider.probes_readiness) == (False, True)
