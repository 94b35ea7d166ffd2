"""Shared fixtures: a pool manager harness on the simulator and a real sqlite store."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from corral.bench.redisd import RedisServer
from corral.domain.models import Pool
from helpers import Harness

_SITES = itertools.count(1)


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


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    """One real redis-server for the session (no persistence); tests keep apart by site."""
    with RedisServer() as server:
        yield server


@pytest.fixture
def redis_site(request: pytest.FixtureRequest) -> str:
    """A site name of this test's own, so its keys never meet another test's."""
    return f"t{next(_SITES)}-{request.node.name[:40]}"
