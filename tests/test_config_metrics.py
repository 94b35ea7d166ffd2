"""``:prometheus:``, ``:statsd:`` and ``:graphite:``: read as vmpooler writes them, bad values
named, and the settings the metrics get."""

from __future__ import annotations

import pytest

from corral.config import load_config, parse_config
from corral.config.settings import metrics_settings
from corral.metrics.settings import MetricsSettings, PrometheusSettings, PushTarget
from helpers import REFERENCE, SIM_ONLY, problems_of


def test_vmpooler_s_example_sections_are_read() -> None:
    config, warnings = load_config(REFERENCE)
    assert not [w for w in warnings if "statsd" in w or "graphite" in w or "prometheus" in w]
    assert metrics_settings(config) == MetricsSettings(
        prometheus=PrometheusSettings(instance="staging", name_prefix="vmpooler", endpoint="/prometheus"),
        statsd=PushTarget(server="statsd.example.com", port=8125, prefix="vmpooler"),
        graphite=PushTarget(server="graphite.example.com", port=2003, prefix="vmpooler"))


def test_without_the_sections_prometheus_has_vmpooler_s_defaults_and_nothing_is_pushed() -> None:
    config, _ = parse_config(dict(SIM_ONLY))
    assert metrics_settings(config) == MetricsSettings()
    assert MetricsSettings().prometheus == PrometheusSettings("vmpooler", "vmpooler", "/prometheus")


def test_corral_s_own_keys_and_a_trailing_slash() -> None:
    doc = {**SIM_ONLY, ":prometheus": {"prometheus_endpoint": "/stats/"},
           ":graphite": {"server": "10.0.0.5", "port": 2004, "prefix": "site.one", "interval": 30, "timeout": 1}}
    settings = metrics_settings(parse_config(doc)[0])
    assert settings.prometheus.endpoint == "/stats"
    assert settings.graphite == PushTarget("10.0.0.5", 2004, "site.one", interval_s=30, timeout_s=1)
    assert settings.statsd is None


@pytest.mark.parametrize(("doc", "problem"), [
    ({":statsd": {"prefix": "x"}}, "statsd.server: required key is missing"),
    ({":statsd": {"server": ""}}, "statsd.server"),
    ({":statsd": {"server": "udp://user:Pw-Secret-1@statsd:8125"}}, "statsd.server: must be a host name or an address"),
    ({":statsd": {"server": "s", "port": 0}}, "statsd.port"),
    ({":statsd": {"server": "s", "port": 70000}}, "statsd.port"),
    ({":graphite": {"server": "g", "interval": 0}}, "graphite.interval"),
    ({":graphite": {"server": "g", "prefix": "a..b"}}, "graphite.prefix"),
    ({":graphite": {"server": "g", "prefix": "a b"}}, "graphite.prefix"),
    ({":graphite": {"server": "g", "timeout": 0}}, "graphite.timeout"),
    ({":prometheus": {"prometheus_prefix": "9lives"}}, "prometheus.prometheus_prefix"),
    ({":prometheus": {"prometheus_prefix": "vm-pooler"}}, "prometheus.prometheus_prefix"),
    ({":prometheus": {"prometheus_endpoint": "metrics"}}, "prometheus.prometheus_endpoint"),
    ({":prometheus": {"prometheus_endpoint": "/"}}, "prometheus.prometheus_endpoint"),
    ({":prometheus": {"prometheus_endpoint": "/api/v3/metrics"}}, "this path is the api's or the dashboard's"),
    ({":prometheus": {"prometheus_endpoint": "/status"}}, "this path is the api's or the dashboard's"),
    ({":prometheus": {"prometheus_endpoint": "/dashboard/m"}}, "this path is the api's or the dashboard's"),
    ({":prometheus": {"prometheus_endpoint": "/x/../api"}}, "this path is the api's or the dashboard's"),
    ({":prometheus": {"prefix": ""}}, "prometheus.prefix"),
    ({":prometheus": {"prefix": "a\nb"}}, "prometheus.prefix: must be printable"),
    ({":statsd": {"server": "s", "prot": 8125}}, "statsd.prot: not a known key; did you mean 'port'?"),
])
def test_a_bad_value_is_named(doc: dict[str, object], problem: str) -> None:
    problems = problems_of(doc)
    assert any(problem in p for p in problems), problems
    assert not any("Pw-Secret-1" in p for p in problems)


def test_a_key_of_vmpooler_s_statsd_client_corral_does_not_read_is_a_warning() -> None:
    _, warnings = parse_config({**SIM_ONLY, ":statsd": {"server": "s", "sample_rate": 0.5}})
    assert warnings == ["statsd.sample_rate: unknown key, ignored"]
