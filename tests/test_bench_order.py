"""``corral bench order``: a small run through the CLI (the emptied pool's first VM goes ahead of
the refills queued for the others in order of need, behind them first come first served), the row
it records, and its settings' checks."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.order import ORDER_TABLE_HEADER, OrderSettings
from corral.cli import app


def test_a_small_run_serves_the_emptied_pool_first_in_order_of_need_and_records_it(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n")
    done = CliRunner().invoke(app, ["bench", "order", "--busy-size", "20", "--empty-size", "2", "--task-limit", "2",
                                    "--time-scale", "0.01", "--repeats", "1", "--json", "--record",
                                    "--output", str(doc)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    runs = {r["order"]: r for r in result["runs"]}
    assert set(runs) == {"need", "arrival"}
    for run in runs.values():
        assert run["queued_ahead"] >= 20 and 0 < run["first_pending_s"] < run["first_ready_s"]
    # first come first served: ~38 calls of 2.5 ms (× 0.01 s) two at a time go first
    assert runs["arrival"]["first_pending_s"] > 18 * 0.025
    assert runs["need"]["first_pending_s"] < runs["arrival"]["first_pending_s"] / 2
    text = doc.read_text()
    assert "## `corral bench order`" in text and ORDER_TABLE_HEADER in text
    row = text.rstrip().splitlines()[-1]
    assert row.split(" | ")[1:6] == ["20 + 20", "2", "2", "0.01", str(runs["need"]["queued_ahead"])]


@pytest.mark.parametrize("bad", [OrderSettings(busy_size=0), OrderSettings(repeats=0), OrderSettings(time_scale=0)])
def test_settings_out_of_range_are_refused(bad: OrderSettings) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        bad.check()
