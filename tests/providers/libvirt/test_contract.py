"""The provider contract, run on the libvirt provider over libvirt's test driver (three hosts)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from corral.providers.libvirt.provider import LibvirtProvider
from corral.providers.libvirt.settings import LibvirtPool

from ..contract import ProviderContract
from .conftest import TEMPLATE, make_provider


class TestLibvirtContract(ProviderContract):
    supports_migration = False  # the test driver cannot migrate: the contract checks the refusal
    template = TEMPLATE
    ready_timeout = 2.0
    feed_timeout = 2.0

    @pytest_asyncio.fixture
    async def provider(self) -> AsyncIterator[LibvirtProvider]:
        provider = make_provider(pools={self.pool: LibvirtPool(self.pool, TEMPLATE)})
        await provider.connect()
        yield provider
        await provider.close()

    @pytest.fixture
    def host_name(self) -> str:
        return "host1"

    @pytest.fixture
    def other_host_name(self) -> str:
        return "host2"
