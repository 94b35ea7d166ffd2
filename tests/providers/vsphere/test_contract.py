"""The provider contract, run on the vSphere provider against vcsim."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from corral.bench.vcsim import Vcsim
from corral.providers.vsphere import VsphereProvider

from ..contract import ProviderContract
from .conftest import TEMPLATE, Listener, make_provider, pool


class TestVsphereContract(ProviderContract):
    template = TEMPLATE
    ready_timeout = 10.0
    feed_timeout = 10.0

    @pytest_asyncio.fixture
    async def provider(self, vcsim: Vcsim, listener: Listener) -> AsyncIterator[VsphereProvider]:
        provider = make_provider(vcsim, listener, pools={self.pool: pool(self.pool)})
        await provider.connect()
        yield provider
        await provider.close()

    @pytest.fixture
    def host_name(self) -> str:
        return "DC0_C0_H1"

    @pytest.fixture
    def other_host_name(self) -> str:
        return "DC0_C0_H2"
