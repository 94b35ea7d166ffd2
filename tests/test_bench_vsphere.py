"""``corral bench vsphere``: a tiny run through the CLI on vcsim (every VM filled in every run,
one session for corral, one per pool for the baseline) and the row it records."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from corral.bench.vsphere_report import TABLE_HEADER
from corral.cli import app


def test_a_tiny_run_fills_every_pool_on_one_session_against_one_per_pool(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n")
    done = CliRunner().invoke(app, ["bench", "vsphere", "--pools", "2", "--vms-per-pool", "2", "--clone-delay-ms",
                                    "200", "--hosts", "3", "--task-limit", "2", "--json", "--record",
                                    "--output", str(doc)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True
    assert result["settings"] == {"pools": 2, "vms_per_pool": 2, "clone_delay_ms": 200, "hosts": 3, "task_limit": 2,
                                  "wide": True, "wide_limit": 40, "vms": 4, "baseline_concurrency": 1}
    runs = result["runs"]
    assert list(runs) == ["corral", "baseline", "wide"]

    for label, run in runs.items():
        assert run["ok"] is True, label
        assert run["vms"] == run["ready"] == 4 and run["clone_failures"] == 0
        # one clone per VM, and the steps vcsim leaves out of a clone: annotate and power on
        # (and a move, unless the VM went to the template's host)
        calls = run["calls"]
        assert calls["CloneVM_Task"] == calls["ReconfigVM_Task"] == calls["PowerOnVM_Task"] == 4, label
        assert 0 <= calls.get("RelocateVM_Task", 0) <= 4 and calls["WaitForUpdatesEx"] >= run["providers"]
        assert run["calls_without_feed"] == sum(n for m, n in calls.items() if m != "WaitForUpdatesEx")
        assert run["runner_calls"] == 4 and run["probes"] >= 4  # one VM per call; every VM probed
        assert run["logins"] == run["providers"] and run["relogins"] == 0
        assert 1 <= run["peak_creates"] <= run["task_limit"]
        assert 0 < run["start_s"] < run["wall_s"] and run["session_samples"] > 0
        assert run["corral_cpu_s"] > 0 and run["vcsim_cpu_s"] > 0

    corral, baseline, wide = runs["corral"], runs["baseline"], runs["wide"]
    assert (corral["providers"], corral["concurrency"], corral["task_limit"]) == (1, 2, 2)
    assert (baseline["providers"], baseline["concurrency"], baseline["task_limit"]) == (2, 1, 2)
    assert (wide["providers"], wide["concurrency"], wide["task_limit"]) == (1, 40, 40)
    assert corral["peak_sessions"] == wide["peak_sessions"] == 1  # every pool on one session
    assert baseline["peak_sessions"] == 2  # one per pool
    # two rounds of two clones, each call held 200 ms by vcsim
    assert corral["wall_s"] > 0.4 and baseline["wall_s"] > 0.4 and wide["wall_s"] > 0.2
    assert result["ratios"]["sessions_baseline_corral"] == 2.0
    assert result["ratios"]["wall_baseline_corral"] > 0 and result["ratios"]["wall_corral_wide"] > 0

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n\n## `corral bench vsphere`")
    rows = text.split(TABLE_HEADER)[1].splitlines()
    assert len(rows) == 1 and rows[0].startswith("| ") and "| 2 × 2 | 3 | 0.2 | 2 |" in rows[0]
    assert "| 1 / 2 | 2 |" in rows[0] and "| yes |" in rows[0]
    assert rows[0].endswith("` |") and "| `corral" in rows[0]  # the command that produced it


def test_settings_out_of_range_are_refused_before_vcsim_starts() -> None:
    done = CliRunner().invoke(app, ["bench", "vsphere", "--pools", "0"])
    assert done.exit_code == 2 and "--pools" in done.output
    done = CliRunner().invoke(app, ["bench", "vsphere", "--task-limit", "101"])
    assert done.exit_code == 2 and "--task-limit" in done.output
