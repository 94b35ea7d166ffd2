"""Metrics: the Prometheus exposition, statsd and graphite (see docs/operations.md, Metrics)."""

from corral.metrics.catalogue import METRICS, Kind, Metric
from corral.metrics.hub import Metrics
from corral.metrics.settings import MetricsSettings, PrometheusSettings, PushTarget

__all__ = ["METRICS", "Kind", "Metric", "Metrics", "MetricsSettings", "PrometheusSettings", "PushTarget"]
