"""``corral bench inventory``: a tiny real run through the CLI (both systems in their own processes),
the sustained-rate rule, and the record it adds to docs/benchmarks.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corral.bench.inventory_report import INVENTORY_TABLE_HEADER, InventoryBenchResult, PhaseResult, SystemResult
from corral.bench.inventory_settings import InventoryBenchSettings


def test_a_tiny_run_measures_both_systems() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral.cli", "bench", "inventory", "--hosts", "20", "--vms", "300", "--pools", "7",
         "--rate", "200", "--duration", "1", "--idle", "0.5", "--poll-interval", "0.25", "--threads", "4",
         "--steps", "500,1000", "--step-duration", "1", "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["at_maximums"] is False
    assert result["settings"]["hosts"] == 20 and result["settings"]["vms"] == 300
    assert set(result["targets"]["met"]) == {"load", "rss", "p99"}
    assert result["targets_met"] == result["targets"]["met"]  # the verdict every benchmark gives at its top
    for side in ("corral", "baseline"):
        system = result[side]
        assert system["system"] == side
        assert system["hosts"] == 20 and system["vms"] == 300
        assert system["load_s"] > 0 and system["load_cpu_s"] >= 0
        assert 0 < system["rss_start_mb"] <= system["hwm_mb"]
        assert system["rss_loaded_mb"] <= system["hwm_loaded_mb"] <= system["hwm_mb"]
        idle, churn = system["idle"], system["churn"]
        assert idle["rate"] == 0 and idle["changes"] == 0 and idle["seconds"] > 0 and idle["cpu_s"] >= 0
        assert churn["rate"] == 200 and churn["changes"] > 0
        assert churn["events"] == churn["changes"] and churn["missing"] == 0 and churn["unmatched"] == 0
        assert 0 < churn["p50_ms"] <= churn["p90_ms"] <= churn["p99_ms"] <= churn["max_ms"]
        assert churn["cpu_s"] > 0 and 0 <= churn["driver_cpu_s"] <= churn["cpu_s"]
    corral, baseline = result["corral"], result["baseline"]
    assert [step["rate"] for step in corral["steps"]][:1] == [500]
    assert all(step["events"] > 0 for step in corral["steps"])
    assert corral["max_sustained_rate"] in (0, 500, 1000) and baseline["steps"] == []
    assert baseline["cycle_s_mean_idle"] > 0 and baseline["cycle_s_max"] >= baseline["cycle_s_mean_idle"]
    assert baseline["idle"]["cycles"] >= 1 and baseline["churn"]["cycles"] >= 1
    # a change waits for the next poll cycle: at least as long as corral's feed, on the median
    assert baseline["churn"]["p50_ms"] > corral["churn"]["p50_ms"]
    assert all(result["ratios"][key] > 0 for key in ("load_s", "hwm_mb", "p50_ms", "p99_ms", "cpu_percent"))


def phase(rate: float, **kw: float) -> PhaseResult:
    values = dict(seconds=4.0, changes=int(rate * 4), achieved_rate=rate, events=int(rate * 4),
                  p50_ms=1.0, p90_ms=2.0, p99_ms=3.0, max_ms=4.0, p99_first_third_ms=3.0, p99_last_third_ms=3.0,
                  cpu_s=1.0, driver_cpu_s=0.25)
    values.update(kw)
    return PhaseResult(f"step-{rate:g}", rate, **values)  # type: ignore[arg-type]


def test_a_rate_is_sustained_only_without_growing_lag() -> None:
    ok = phase(1000)
    ok.judge()
    assert ok.sustained is True and ok.why == ""
    assert ok.net_cpu_percent == 18.75 and ok.net_cpu_us_per_change == 187.5
    for bad, words in [(phase(1000, achieved_rate=900), "driver reached"),
                       (phase(1000, missing=3), "missing"),
                       (phase(1000, p99_first_third_ms=3.0, p99_last_third_ms=40.0), "lag grew"),
                       (phase(1000, backlog_end=500, oldest_unseen_end_ms=800.0), "backlog")]:
        bad.judge()
        assert bad.sustained is False and words in bad.why


def system(name: str, p99_ms: float, steps: list[PhaseResult]) -> SystemResult:
    return SystemResult(system=name, hosts=2500, vms=45000, setup_s=0.3, load_s=0.2, load_cpu_s=0.2,
                        rss_start_mb=36, rss_sim_mb=66, rss_loaded_mb=82, hwm_loaded_mb=84, rss_after_churn_mb=84,
                        hwm_mb=86, idle=PhaseResult("idle", 0.0, 5.0, cpu_s=0.3 if name == "baseline" else 0.0),
                        churn=phase(2000, p50_ms=p99_ms / 2, p99_ms=p99_ms), steps=steps,
                        cycle_s_mean_idle=0.19 if name == "baseline" else None)


def test_max_sustained_rate_stops_at_the_first_failure() -> None:
    steps = [phase(2000), phase(5000, p99_ms=60.0), phase(10000, missing=1), phase(20000)]
    for step in steps:
        step.judge()
    corral = system("corral", 0.3, steps)
    assert corral.max_sustained_rate == 5000 and corral.max_rate_within_target == 2000
    assert system("baseline", 3000, []).max_sustained_rate is None


def test_record_adds_rows_under_one_table(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## fill\n\n| a |\n|---|\n| 1 |\n\nText after the fill table.\n")
    result = InventoryBenchResult(settings=InventoryBenchSettings(), corral=system("corral", 0.3, [phase(2000)]),
                                  baseline=system("baseline", 3000.0, []), machine="2 cores")
    result.corral.steps[0].judge()
    assert result.targets() == {"load": True, "rss": True, "p99": True} and result.at_maximums
    assert abs(result.ratios()["p99_ms"] - 0.0001) < 1e-12 and result.ratios()["idle_cpu_percent"] == 0.0
    result.append_markdown(doc, "corral bench inventory --record")
    result.append_markdown(doc, "corral bench inventory --record --rate 4000")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## fill\n\n| a |\n|---|\n| 1 |\n\nText after the fill table.\n")
    assert text.count(INVENTORY_TABLE_HEADER) == 1 and text.count("## `corral bench inventory`") == 1
    rows = [line for line in text.split(INVENTORY_TABLE_HEADER)[1].splitlines() if line.startswith("|")]
    assert len(rows) == 2 and rows[1].endswith("`corral bench inventory --record --rate 4000` |")
    cells = rows[0].split(" | ")
    assert cells[1:4] == ["2,500", "45,000", "2,000"] and cells[7] == "0.3 / 3,000" and cells[8] == "1/10,000"
    assert "load met, rss met, p99 met" in rows[0]
    assert json.loads(json.dumps(result.as_dict()))["ratios"]["p99_ms"] == 0.0001
