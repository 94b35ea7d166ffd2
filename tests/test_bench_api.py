"""``corral bench api``: a short real run (servers and client in their own processes), and its records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from corral.bench.api_client import LoadResult
from corral.bench.api_report import API_TABLE_HEADER, ApiBenchResult, ApiRow


def test_a_short_run_measures_both_servers_without_errors() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "corral.cli", "bench", "api", "--clients", "1,3", "--duration", "1",
         "--warmup", "0.2", "--pool-size", "1500", "--json"],
        capture_output=True, text=True, timeout=240,
    )
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["errors"] == 0
    assert result["target_met"] is None  # 32 clients were not measured
    assert result["targets_met"] == {"pairs_per_s_32": None, "p99_ms_32": None}
    assert [row["clients"] for row in result["rows"]] == [1, 3]
    for row in result["rows"]:
        for side in ("corral", "baseline"):
            load = row[side]
            assert load["clients"] == row["clients"] and load["errors"] == 0
            assert load["pairs"] > 0 and load["pairs_per_s"] > 0
            assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"] <= load["max_ms"]
            assert set(load["statuses"]) == {"POST 200", "DELETE 200"}
            assert load["statuses"]["POST 200"] == load["statuses"]["DELETE 200"]
            assert load["server_cpu_ms_per_pair"] > 0
        assert row["throughput_ratio"] > 0 and row["p99_ratio"] > 0


def load(pairs_per_s: float, p99_ms: float, errors: int = 0) -> LoadResult:
    return LoadResult(clients=32, duration_s=5.0, pairs=int(pairs_per_s * 5), pairs_per_s=pairs_per_s,
                      p50_ms=p99_ms / 4, p95_ms=p99_ms / 2, p99_ms=p99_ms, max_ms=p99_ms * 2, errors=errors)


def test_ratios_target_and_ok() -> None:
    row = ApiRow(clients=32, corral=load(2000, 20), baseline=load(8000, 5))
    result = ApiBenchResult(duration_s=5, warmup_s=1, pool_size=100, rows=[row])
    assert row.throughput_ratio == 0.25 and row.p99_ratio == 4.0
    assert result.ok and result.target_met is True
    assert result.targets_met == {"pairs_per_s_32": True, "p99_ms_32": True}
    slow = ApiBenchResult(duration_s=5, warmup_s=1, pool_size=100,
                          rows=[ApiRow(clients=32, corral=load(1400, 20, errors=1), baseline=load(8000, 5))])
    assert not slow.ok and slow.target_met is False
    assert slow.targets_met == {"pairs_per_s_32": False, "p99_ms_32": True}
    answer = json.loads(json.dumps(slow.as_dict()))
    assert answer["errors"] == 1 and answer["targets_met"] == {"pairs_per_s_32": False, "p99_ms_32": True}
    late = ApiBenchResult(duration_s=5, warmup_s=1, pool_size=100,
                          rows=[ApiRow(clients=32, corral=load(1600, 25.5), baseline=load(8000, 5))])
    assert late.target_met is False and late.targets_met == {"pairs_per_s_32": True, "p99_ms_32": False}


def test_record_adds_rows_under_one_table(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## fill\n\n| a |\n|---|\n| 1 |\n\nText after the fill table.\n")
    first = ApiBenchResult(duration_s=5, warmup_s=1, pool_size=100,
                           rows=[ApiRow(1, load(500, 3), load(7000, 0.3)), ApiRow(32, load(900, 60), load(20000, 3))])
    first.append_markdown(doc, "corral bench api --record")
    first.append_markdown(doc, "corral bench api --record --duration 10")
    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## fill\n\n| a |\n|---|\n| 1 |\n\nText after the fill table.\n")
    assert text.count(API_TABLE_HEADER) == 1 and text.count("## `corral bench api`") == 1
    rows = [line for line in text.split(API_TABLE_HEADER)[1].splitlines() if line.startswith("|")]
    assert len(rows) == 4
    assert rows[0].split(" | ")[1:4] == ["1", "100", "5"] and rows[1].split(" | ")[1] == "32"
    assert rows[3].endswith("`corral bench api --record --duration 10` |")
    assert "| 0.07 | 10.00 |" in rows[0]  # 500/7000 pairs/s, 3/0.3 ms p99
