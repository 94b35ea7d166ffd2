"""What the metrics get of the configuration (built by :mod:`corral.config.settings` from
``:prometheus:``, ``:statsd:`` and ``:graphite:``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PrometheusSettings:
    """The exposition: served at ``endpoint`` and at ``/metrics``; vmpooler's metrics are named
    ``<name_prefix>_<name>`` and carry ``vmpooler_instance=<instance>``."""

    instance: str = "vmpooler"
    name_prefix: str = "vmpooler"
    endpoint: str = "/prometheus"


@dataclass(frozen=True, slots=True)
class PushTarget:
    """A statsd (UDP) or graphite (TCP) server: paths are ``<prefix>.<path>``; gauges (graphite:
    everything) are pushed every ``interval_s``."""

    server: str
    port: int
    prefix: str = "vmpooler"
    interval_s: float = 10.0
    timeout_s: float = 2.0


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    prometheus: PrometheusSettings = PrometheusSettings()
    statsd: PushTarget | None = None
    graphite: PushTarget | None = None
