"""Shared fixtures: a pool manager harness on the simulator and a real sqlite store."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from corral.domain.models import Pool
from helpers import Harness


@pytest_asyncio.fixture
async def harness(tmp_path: Path) -> AsyncIterator[Harness]:
    h = Harness(tmp_path)
    yield h
    await h.stop()


@pytest.fixture
def pool_factory() -> Callable[..., Pool]:
    def make(name: str = "debian", size: int = 3, **kw: Any) -> Pool:
        return Pool(name=name, template=kw.pop("template", f"tmpl-{name}"), size=size, provider="sim", **kw)

    return make
