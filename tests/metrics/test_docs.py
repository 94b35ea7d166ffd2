"""docs/operations.md lists every metric of the catalogue, and nothing else, as the catalogue
says: its Prometheus name, type, labels, statsd/graphite path and meaning."""

from __future__ import annotations

import re

from corral.metrics.catalogue import INSTANCE_LABEL, METRICS, Kind, prometheus_name
from helpers import REPO

ROW = re.compile(r"^\| `([a-z_]+)` \| (\w+) \| (.*?) \| `([a-z_.]+)` \| (.*) \|$")


def documented() -> list[tuple[str, str, tuple[str, ...], str, str]]:
    text = (REPO / "docs" / "operations.md").read_text()
    section = text[text.index("\n## Metrics\n"):]
    rows = []
    for line in section.splitlines():
        if (match := ROW.match(line)) is not None:
            name, kind, labels, path, meaning = match.groups()
            rows.append((name, kind, tuple(re.findall(r"`([a-z_]+)`", labels)), path, meaning))
    return rows


def test_every_metric_is_documented_as_the_catalogue_has_it() -> None:
    expected = [(prometheus_name(m, "vmpooler") + ("_total" if m.kind is Kind.COUNTER else ""), m.kind.value,
                 m.labels + ((INSTANCE_LABEL,) if m.vmpooler else ()), m.path, m.help) for m in METRICS]
    assert documented() == expected
