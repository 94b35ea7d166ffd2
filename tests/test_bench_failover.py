"""corral bench failover: real processes on a real redis-server, one JSON object last."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import REPO


@pytest.mark.timeout(180)
def test_failover_bench_measures_takeover_and_restart_and_records_them(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    done = subprocess.run([sys.executable, "-m", "corral.cli", "bench", "failover", "--kills", "1", "--ttl", "2",
                           "--json", "--record", "--output", str(out)],
                          capture_output=True, text=True, timeout=170, cwd=REPO)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["benchmark"] == "failover" and result["ok"] is True
    assert result["targets_met"] == {"worst_within_2_ttl": True}
    assert len(result["takeovers_s"]) == 1 and len(result["restarts_s"]) == 1
    # the takeover waits for the dead manager's lease to run out, the restart does not
    assert 0 < result["takeover_worst_s"] <= result["bound_s"] == 4.0
    assert 0 < result["restart_median_s"]
    text = out.read_text()
    assert "## Control-plane failover" in text and "bench failover --kills 1" in text
