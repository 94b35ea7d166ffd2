"""The provider contract, run on the simulator with every latency shrunk a thousandfold."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from corral.providers.sim import SimProvider, SimSettings

from .contract import ProviderContract


class TestSimContract(ProviderContract):
    @pytest_asyncio.fixture
    async def provider(self) -> AsyncIterator[SimProvider]:
        sim = SimProvider("sim-contract", SimSettings(time_scale=0.001, hosts=2, seed=7))
        await sim.connect()
        yield sim
        await sim.close()

    @pytest.fixture
    def host_name(self) -> str:
        return "sim-host-01"

    @pytest.fixture
    def other_host_name(self) -> str:
        return "sim-host-02"
