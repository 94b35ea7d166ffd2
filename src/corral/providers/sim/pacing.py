"""The simulator's time and chance: every latency multiplied by ``time_scale`` and by a random
factor within ``1 ± jitter``, failures drawn at their rates, and sleeps that end early when
the provider closes. One random generator (``seed``) serves them all, so a seeded run draws
the same numbers in the same order.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from corral.providers.sim.settings import SimSettings


class Pacing:
    """Latencies and failure draws per ``settings`` (read at each use); ``require_open`` raises
    when the provider is not connected, and is asked after every sleep."""

    def __init__(self, settings: SimSettings, require_open: Callable[[], None]) -> None:
        self.settings = settings
        self.require_open = require_open
        self._rng = random.Random(settings.seed)
        self._closing = asyncio.Event()  # set by close() to end the sleeps of calls in flight

    def open(self) -> None:
        """The provider (re)connected: sleeps last their time again."""
        self._closing = asyncio.Event()

    def close(self) -> None:
        """The provider closed: every sleep ends now."""
        self._closing.set()

    async def pause(self, seconds: float) -> None:
        """Sleep an operation's latency, scaled and jittered."""
        await self.sleep(self.scaled(seconds))

    async def sleep(self, seconds: float) -> None:
        """Sleep real seconds; raise :class:`ProviderError` if the provider closes meanwhile."""
        if seconds > 0:
            try:
                async with asyncio.timeout(seconds):  # not wait_for: see ChangeFeed.wait_past
                    await self._closing.wait()
            except TimeoutError:
                pass
        self.require_open()

    def scaled(self, seconds: float) -> float:
        jitter = self.settings.jitter
        factor = self._rng.uniform(1 - jitter, 1 + jitter) if jitter else 1.0
        return seconds * self.settings.time_scale * factor

    def chance(self, rate: float) -> bool:
        return rate > 0 and self._rng.random() < rate
