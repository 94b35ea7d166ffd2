"""The Prometheus exposition: one registry per app, with one collector that turns the latest
readings and the recorder's counters and histograms into metric families at scrape time."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from corral.metrics.catalogue import INSTANCE_LABEL, METRICS, Kind, prometheus_name
from corral.metrics.catalogue import Metric as Entry
from corral.metrics.readings import Reading
from corral.metrics.recorder import Recorder
from corral.metrics.settings import PrometheusSettings

__all__ = ["CONTENT_TYPE", "Exposition", "families"]

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


def _labels(m: Entry, values: Sequence[str], instance: str) -> tuple[list[str], list[str]]:
    names, vals = list(m.labels), list(values)
    if m.vmpooler:
        names.append(INSTANCE_LABEL)
        vals.append(instance)
    return names, vals


def families(readings: Iterable[Reading], recorder: Recorder, settings: PrometheusSettings) -> list[Metric]:
    """Every metric of the catalogue that has a value, as a metric family (a metric with no
    reading and nothing recorded is left out)."""
    by_key: dict[str, list[Reading]] = {}
    for r in readings:
        by_key.setdefault(r.key, []).append(r)
    out: list[Metric] = []
    for m in METRICS:
        name = prometheus_name(m, settings.name_prefix)
        label_names = list(m.labels) + ([INSTANCE_LABEL] if m.vmpooler else [])
        if m.kind is Kind.HISTOGRAM:
            series = recorder.histograms.get(m.key, {})
            if not series:
                continue
            h = HistogramMetricFamily(name, m.help, labels=label_names)
            for values, hist in sorted(series.items()):
                buckets = [(_bound(b), float(n)) for b, n in hist.cumulative()]
                h.add_metric(_labels(m, values, settings.instance)[1], buckets, hist.sum)
            out.append(h)
            continue
        samples = [(r.labels, r.value) for r in by_key.get(m.key, ())]
        samples += sorted(recorder.counters.get(m.key, {}).items())
        if not samples:
            continue
        family: CounterMetricFamily | GaugeMetricFamily
        if m.kind is Kind.COUNTER:
            family = CounterMetricFamily(name, m.help, labels=label_names)
        else:
            family = GaugeMetricFamily(name, m.help, labels=label_names)
        for values, value in samples:
            family.add_metric(_labels(m, values, settings.instance)[1], float(value))
        out.append(family)
    return out


def _bound(b: float) -> str:
    return "+Inf" if b == float("inf") else repr(float(b))


class _Collector(Collector):
    def __init__(self, collect: Callable[[], list[Metric]]) -> None:
        self._collect = collect

    def collect(self) -> Iterator[Metric]:
        yield from self._collect()


class Exposition:
    """A registry of its own (not prometheus-client's global one), so several apps in one
    process do not collide; ``render(readings)`` is one scrape."""

    def __init__(self, recorder: Recorder, settings: PrometheusSettings) -> None:
        self.recorder = recorder
        self.settings = settings
        self.registry = CollectorRegistry(auto_describe=False)
        self._readings: list[Reading] = []
        self.registry.register(_Collector(lambda: families(self._readings, self.recorder, self.settings)))

    def render(self, readings: list[Reading]) -> bytes:
        self._readings = readings
        try:
            return generate_latest(self.registry)
        finally:
            self._readings = []
