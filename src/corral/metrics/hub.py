"""The metrics of one corral process: the recorder, the Prometheus exposition, the statsd and
graphite pushers, and the task that feeds the recorder from the event bus. Started and stopped
with the service."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from corral.metrics.prometheus import Exposition
from corral.metrics.push import FailureLog, GraphitePusher, StatsdPusher, cancelled
from corral.metrics.readings import Reading, Views, manager_readings, view_readings
from corral.metrics.recorder import Recorder, Sink
from corral.metrics.settings import MetricsSettings
from corral.pools.service import PoolService, Resync, Subscription, SubscriptionClosed

__all__ = ["Metrics", "read_views"]

log = logging.getLogger("corral.metrics")

Managers = Callable[[], Awaitable[Mapping[str, Mapping[str, Any]]]]
#: events the recorder may hold before it resyncs (it then misses the times of the VMs in between)
QUEUE = 10_000
SUBSCRIBER = "metrics"
#: seconds between two looks for a bus to follow (a service started again, a new one)
FOLLOW_EVERY_S = 0.2


def read_views(stock_from: PoolService, running: PoolService | None) -> Views:
    """The stock as ``stock_from``'s store has it (every pool), and the rest from the service
    that runs the pools here (``running``; None: this process runs none)."""
    stock = stock_from.stock()
    failures = stock_from.provider_failures()  # the process's providers, counted in one object
    if running is None:
        return Views(stock=stock, provider_failures=failures)
    return Views(stock=stock, monitoring=running.monitoring(), scheduling=running.scheduling(),
                 runner=running.runner(), hosts=running.hosts(), rejections=running.placement_rejections(),
                 autosizing=running.autosizing(), provider_failures=failures)


class Metrics:
    """``front``: the pool service the API answers with; ``running()``: the one running the
    pools in this process, if any (the same one on sqlite; a manager's current one on Redis);
    ``managers``: the site's live managers (on Redis)."""

    def __init__(self, settings: MetricsSettings, front: PoolService,
                 running: Callable[[], PoolService | None], managers: Managers | None = None) -> None:
        self.settings = settings
        self.front = front
        self.running = running
        self.managers = managers
        self.statsd: StatsdPusher | None = None
        self.graphite: GraphitePusher | None = None
        sinks: list[Sink] = []
        if settings.statsd is not None:
            self.statsd = StatsdPusher(settings.statsd, self.readings)
            sinks.append(self.statsd)
        self.recorder = Recorder(sinks)
        if settings.graphite is not None:
            self.graphite = GraphitePusher(settings.graphite, self.readings, self.recorder)
        self.exposition = Exposition(self.recorder, settings.prometheus)
        self.managers_failing = FailureLog("reading the managers from the store",
                                           "the managers' metrics are left out until it works again")
        self._follow: asyncio.Task[None] | None = None
        self._readers: dict[PoolService, asyncio.Task[None]] = {}  # a reader of each bus followed
        self._live = False  # between start and stop

    @property
    def endpoints(self) -> tuple[str, ...]:
        """The paths of the exposition: the configured one and /metrics."""
        return tuple(dict.fromkeys((self.settings.prometheus.endpoint, "/metrics")))

    async def readings(self) -> list[Reading]:
        """Every reading of the views now; the managers' are left out (and the failure logged
        once per streak) when the store cannot say who they are."""
        out = view_readings(read_views(self.front, self.running()))
        if self.statsd is not None:
            out += [Reading("push_failures", ("statsd",), self.statsd.errors.failures),
                    Reading("push_dropped", ("statsd",), self.statsd.dropped)]
        if self.graphite is not None:
            out.append(Reading("push_failures", ("graphite",), self.graphite.errors.failures))
        if self.managers is not None:
            try:
                managers = await self.managers()
            except Exception as exc:
                self.managers_failing.failed(exc)
            else:
                self.managers_failing.ok()
                out += manager_readings(managers)
        return out

    async def scrape(self) -> bytes:
        return self.exposition.render(await self.readings())

    # -- life ----------------------------------------------------------------------------------------
    async def start(self) -> None:
        """Start following the events (subscribed before the pool service starts, so its first
        fill is timed too) and the pushers."""
        if self._follow is not None:
            return
        self._live = True
        for service in self._sources():
            self.follow(service)
        self._follow = asyncio.create_task(self._follow_events(), name="metrics-events")
        log.info("metrics served", extra={"paths": ",".join(self.endpoints)})
        for pusher in (self.statsd, self.graphite):
            if pusher is not None:
                await pusher.start()
                log.info("pushing metrics", extra={"to": pusher.errors.what,
                                                    "every_s": pusher.target.interval_s})

    async def stop(self) -> None:
        self._live = False
        task, self._follow = self._follow, None
        await cancelled(task)
        for pusher in (self.statsd, self.graphite):
            if pusher is not None:
                await pusher.stop()

    def _sources(self) -> list[PoolService]:
        """The services whose event buses say what happens in this process, each once: the
        API's (on Redis its checkouts and returns) and the one running the pools."""
        return [s for s in dict.fromkeys((self.front, self.running())) if s is not None]

    async def _read(self, sub: Subscription) -> None:
        try:
            while True:
                _, item = await sub.get()
                if not isinstance(item, Resync):
                    self.recorder.see(item)
        except SubscriptionClosed:
            pass
        except Exception:
            log.exception("metrics: reading an event failed")
        finally:
            sub.close()

    def follow(self, service: PoolService) -> None:
        """Follow ``service``'s event bus from now on (nothing if it is followed already or its
        bus is gone). A manager's pool service is told here before it starts, so its first fill
        is timed."""
        if not self._live or service in self._readers or not service.bus_live:
            return
        self._readers[service] = asyncio.create_task(self._read(service.stream(SUBSCRIBER, queue_size=QUEUE)))

    async def _follow_events(self) -> None:
        """Feed the recorder from the buses of :meth:`_sources`; a service started again (or a
        new one that was not announced) has a new bus, followed once it is there."""
        readers = self._readers
        try:
            while True:
                await asyncio.sleep(FOLLOW_EVERY_S)
                for service in [s for s, task in readers.items() if task.done()]:
                    del readers[service]
                for service in self._sources():
                    self.follow(service)
        finally:
            tasks = list(readers.values())
            readers.clear()
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
