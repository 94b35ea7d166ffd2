"""``corral bench load``, short and small: the same code as the benchmark, on real processes."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from corral.bench.load import LoadBenchSettings, run_load_bench
from corral.bench.load_report import SlowPhase
from corral.cli import app


def test_many_clients_and_slow_ones_get_no_duplicate_no_5xx_and_do_not_starve_a_client():
    settings = LoadBenchSettings(seconds=1.5, clients=200, pool_size=2500, stores="both", sse=200, idle=100,
                                 slow=2, slow_interval=0.2, body_timeout=0.8, phase_seconds=1.2, warmup=0.5,
                                 steady_rate=40.0, alone=False)
    result = run_load_bench(settings)
    report = result.as_dict()
    assert [r.setup for r in result.rows] == ["sqlite-1", "redis-2"]
    for row in result.rows:
        load = row.load
        assert load.pairs > 200, (row.setup, load.statuses)  # 200 clients were all served
        assert load.duplicates == [] and load.server_errors == 0 and load.errors == 0, (row.setup, load.statuses,
                                                                                         load.error_samples)
        assert 0 < load.checkout_p50_ms <= load.checkout_p99_ms
    if len(result.rows[1].load.pairs_by_url) != 2:
        pytest.fail(f"both API processes should serve: {result.rows[1].load.pairs_by_url}")
    quiet, together = result.phases
    assert isinstance(together, SlowPhase) and together.name == "all together"
    held = together.held
    assert held.sse_open == 200 and held.idle_open == 100 and held.idle_closed == 0, held
    assert held.statuses.get("slow 408", 0) >= 2, held  # each slow body cut by the body timeout
    for phase in (quiet, together):  # the steady client was served throughout, at its pace
        assert phase.steady.checkouts >= 0.8 * 40 * 1.2 and not phase.steady.errors, phase.steady
        assert phase.steady.server_errors == 0 and phase.steady.duplicates == []
        assert phase.steady.p99_ms < 1000
    assert report["targets_met"]["zero_duplicates"] and report["targets_met"]["zero_5xx"]
    assert report["problems"] == []
    assert report["slow"][1]["p99_ratio"] == round(together.steady.p99_ms / quiet.steady.p99_ms, 3)
    json.dumps(report)  # what --json prints


def test_bad_settings_are_refused_before_anything_runs():
    answer = CliRunner().invoke(app, ["bench", "load", "--store", "mysql"])
    assert answer.exit_code == 2
    assert "--store must be sqlite, redis or both" in answer.output
