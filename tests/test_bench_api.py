"""``corral bench api``: a short real run (servers and client in their own processes, sqlite and
Redis, one and two API processes), its comparisons, targets and records."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from corral.bench.api_client import LoadResult, host_port
from corral.bench.api_cpu import cores_busy, scaling_note
from corral.bench.api_report import API_TABLE_HEADER, ApiBenchResult, ApiRow
from corral.bench.api_setups import Setup, choose_setups, profile_path


def bench(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "corral.cli", "bench", "api", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_a_short_run_measures_both_stores_and_two_processes_without_errors(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    done = bench("--clients", "3", "--duration", "0.6", "--warmup", "0.2", "--pool-size", "2500", "--json",
                 "--record", "--output", str(doc))
    assert done.returncode == 0, done.stderr + done.stdout
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["errors"] == 0
    assert result["target_met"] is None  # 32 clients were not measured
    assert result["targets_met"] == {"pairs_per_s_32": None, "p99_ms_32": None, "redis_vs_sqlite_32": None}
    assert result["cores"] >= 1 and f"{result['cores']} cores" in result["machine"]
    rows = {row["setup"]: row for row in result["rows"]}
    assert [row["setup"] for row in result["rows"]] == ["sqlite-1", "redis-1", "redis-2"]
    baseline = rows["sqlite-1"]["baseline"]
    for row in rows.values():
        assert row["clients"] == 3 and row["baseline"] == baseline  # one baseline for every set-up
        for load in (row["corral"], row["baseline"]):
            assert load["clients"] == 3 and load["errors"] == 0
            assert load["pairs"] > 0 and load["pairs_per_s"] > 0
            assert 0 < load["p50_ms"] <= load["p95_ms"] <= load["p99_ms"] <= load["max_ms"]
            assert set(load["statuses"]) == {"POST 200", "DELETE 200"}
            assert load["statuses"]["POST 200"] == load["statuses"]["DELETE 200"]
            assert load["server_cpu_ms_per_pair"] > 0 and load["client_cpu_s"] > 0
            assert sum(load["pairs_by_url"].values()) == load["pairs"]
        assert row["throughput_ratio"] == round(row["corral"]["pairs_per_s"] / baseline["pairs_per_s"], 3)
        assert row["cores_busy"]["total"] > 0
    processes = {setup: set(row["corral"]["process_cpu_s"]) for setup, row in rows.items()}
    assert processes == {"sqlite-1": {"corral"}, "redis-1": {"corral", "redis-server"},
                         "redis-2": {"api-1", "api-2", "manager", "redis-server"}}
    two = rows["redis-2"]["corral"]["pairs_by_url"]
    assert len(two) == 2 and all(n > 0 for n in two.values())  # the connections went to both API processes
    rate = {setup: row["corral"]["pairs_per_s"] for setup, row in rows.items()}
    assert result["comparisons"] == {"redis-1/sqlite-1": {"3": round(rate["redis-1"] / rate["sqlite-1"], 3)},
                                     "redis-2/redis-1": {"3": round(rate["redis-2"] / rate["redis-1"], 3)}}
    assert result["scaling"].startswith(f"On {result['cores']} cores at 3 clients, redis-2 did ")
    recorded = [line for line in doc.read_text().split(API_TABLE_HEADER)[1].splitlines() if line.startswith("|")]
    assert [line.split(" | ")[1] for line in recorded] == ["sqlite-1", "redis-1", "redis-2"]


@pytest.mark.parametrize(("args", "says"), [
    (["--store", "sqlite", "--processes", "2"], "the sqlite store serves one process only"),
    (["--store", "mongo"], "--store must be sqlite, redis or both, got 'mongo'"),
    (["--processes", "1,x"], "--clients and --processes must be whole numbers"),
    (["--processes", "0"], "--processes must be whole numbers >= 1"),
])
def test_settings_a_run_cannot_use_are_refused_before_anything_starts(args: list[str], says: str) -> None:
    done = bench(*args, timeout=60)
    assert done.returncode == 2 and says in done.stderr


@pytest.mark.parametrize(("store", "processes", "names"), [
    ("both", [1, 2], ["sqlite-1", "redis-1", "redis-2"]),
    ("both", [2], ["redis-2"]),
    ("both", [3, 1, 3], ["sqlite-1", "redis-1", "redis-3"]),
    ("sqlite", [1, 2], ["sqlite-1"]),
    ("redis", [1, 2, 4], ["redis-1", "redis-2", "redis-4"]),
])
def test_setups_chosen(store: str, processes: list[int], names: list[str]) -> None:
    assert [s.name for s in choose_setups(store, processes)] == names


def test_setup_labels_and_profile_files() -> None:
    assert Setup("sqlite", 1).label == "sqlite, 1 process"
    assert Setup("redis", 2).label == "redis, 2 API processes + 1 manager"
    assert profile_path(Path("/tmp/x/api.prof"), Setup("redis", 2), 2) == Path("/tmp/x/api.redis-2.2.prof")
    assert profile_path(Path("out"), Setup("sqlite", 1), 1) == Path("out.sqlite-1.1")


def test_a_redis_server_that_cannot_start_is_an_error_of_one_line() -> None:
    env = {**os.environ, "CORRAL_REDIS_SERVER": "/bin/false"}
    done = subprocess.run([sys.executable, "-m", "corral.cli", "bench", "api", "--store", "redis", "--clients", "1",
                           "--duration", "0.2", "--warmup", "0"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 2 and done.stderr.strip().splitlines()[-1].startswith(
        "error: redis-server exited at start")
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("url", "expected"), [
    ("http://127.0.0.1:8080", ("127.0.0.1", 8080)),
    ("http://localhost:1", ("localhost", 1)),
    ("https://127.0.0.1:8080", None),
    ("http://127.0.0.1", None),
    ("127.0.0.1:8080", None),
])
def test_client_urls(url: str, expected: tuple[str, int] | None) -> None:
    if expected is None:
        with pytest.raises(ValueError, match="expected a URL like http://127.0.0.1:8080"):
            host_port(url)
    else:
        assert host_port(url) == expected


def load(pairs_per_s: float, p99_ms: float, errors: int = 0, cpu: dict[str, float] | None = None,
         client_cpu_s: float | None = None) -> LoadResult:
    return LoadResult(clients=32, duration_s=5.0, pairs=int(pairs_per_s * 5), pairs_per_s=pairs_per_s,
                      p50_ms=p99_ms / 4, p95_ms=p99_ms / 2, p99_ms=p99_ms, max_ms=p99_ms * 2, errors=errors,
                      run_s=6.0, client_cpu_s=client_cpu_s, process_cpu_s=cpu or {})


def result_of(*rows: ApiRow) -> ApiBenchResult:
    return ApiBenchResult(duration_s=5, warmup_s=1, pool_size=100, rows=list(rows), cores=2, machine="2 cores")


def test_ratios_target_and_ok() -> None:
    row = ApiRow(clients=32, corral=load(2000, 20), baseline=load(8000, 5))
    result = result_of(row)
    assert row.throughput_ratio == 0.25 and row.p99_ratio == 4.0
    assert result.ok and result.target_met is True  # of the targets measured (not Redis)
    assert result.targets_met == {"pairs_per_s_32": True, "p99_ms_32": True, "redis_vs_sqlite_32": None}
    slow = result_of(ApiRow(clients=32, corral=load(1400, 20, errors=1), baseline=load(8000, 5)))
    assert not slow.ok and slow.targets_met == {"pairs_per_s_32": False, "p99_ms_32": True,
                                                "redis_vs_sqlite_32": None}
    assert slow.target_met is False
    answer = json.loads(json.dumps(slow.as_dict()))
    assert answer["errors"] == 1 and answer["targets_met"]["pairs_per_s_32"] is False


@pytest.mark.parametrize(("redis_rate", "met"), [(1600, True), (1601, True), (1599, False), (0, False)])
def test_redis_against_sqlite_target(redis_rate: float, met: bool) -> None:
    base = load(8000, 5)
    result = result_of(ApiRow(32, load(2000, 20), base, "sqlite-1"), ApiRow(32, load(redis_rate, 20), base, "redis-1"))
    assert result.targets_met["redis_vs_sqlite_32"] is met
    assert result.target_met is met
    assert result.comparisons == {"redis-1/sqlite-1": {32: round(redis_rate / 2000, 3)}}
    alone = result_of(ApiRow(32, load(redis_rate, 20), base, "redis-1"))  # nothing to compare with
    assert alone.target_met is None and set(alone.targets_met.values()) == {None} and alone.comparisons == {}


def test_comparisons_per_client_count_and_errors_of_a_shared_baseline_once() -> None:
    one, many = load(5000, 1, errors=2), load(8000, 5)
    rows = [ApiRow(1, load(1000, 2), one, "sqlite-1"), ApiRow(32, load(2000, 20), many, "sqlite-1"),
            ApiRow(1, load(500, 3), one, "redis-1"), ApiRow(32, load(1800, 22), many, "redis-1"),
            ApiRow(1, load(450, 4), one, "redis-2"), ApiRow(32, load(2700, 18), many, "redis-2")]
    result = result_of(*rows)
    assert result.comparisons == {"redis-1/sqlite-1": {1: 0.5, 32: 0.9}, "redis-2/redis-1": {1: 0.9, 32: 1.5}}
    assert result.versus(rows[5]) == (1.35, 1.5) and result.versus(rows[0]) == (None, None)
    assert result.errors == 2  # the baseline at 1 client, shared by three set-ups, counted once
    assert result.targets_met == {"pairs_per_s_32": True, "p99_ms_32": True, "redis_vs_sqlite_32": True}
    assert result.scaling.startswith("On 2 cores at 32 clients, redis-2 did 1.50x the pairs/s of redis-1")
    assert "pairs/s redis-2/redis-1: 0.90 at 1 client, 1.50 at 32 clients" in result.summary()


def test_cores_busy_is_cpu_over_the_run() -> None:
    assert cores_busy(load(100, 1, cpu={"api-1": 3.0, "redis-server": 1.5}, client_cpu_s=0.6)) == {
        "api-1": 0.5, "redis-server": 0.25, "client": 0.1, "total": 0.85}
    assert cores_busy(load(100, 1)) == {}


@pytest.mark.parametrize(("cpu", "why"), [
    ({"api-1": 3.0, "api-2": 3.0, "manager": 2.4, "redis-server": 1.8}, "every core is busy"),
    ({"api-1": 5.4, "api-2": 0.6, "manager": 0.6, "redis-server": 0.6}, "api-1 is the bottleneck"),
    ({"api-1": 1.2, "api-2": 1.2, "manager": 1.8, "redis-server": 1.2}, "neither the machine nor one process"),
])
def test_scaling_note_says_what_bounds_it(cpu: dict[str, float], why: str) -> None:
    base = load(8000, 5)
    one = ApiRow(32, load(1000, 30, cpu={"corral": 5.4, "redis-server": 1.8}), base, "redis-1")
    several = ApiRow(32, load(1200, 25, cpu=cpu), base, "redis-2")
    note = scaling_note(several, one, 2)
    busy = round(sum(cpu.values()) / 6, 2)
    assert note.startswith(f"On 2 cores at 32 clients, redis-2 did 1.20x the pairs/s of redis-1; with the load "
                           f"client its processes kept {busy:.2f} of 2 cores busy (")
    assert "against 1.20 for redis-1" in note and why in note
    assert "refused" not in note
    dry = load(1200, 25, cpu=cpu)
    dry.statuses = {"POST 200": 7200, "DELETE 200": 7200, "POST 503": 345}
    assert "redis-1 (345 checkouts refused: its pool ran dry, so this is its manager's refill rate more than its " \
           "API's); with the load client" in scaling_note(ApiRow(32, dry, base, "redis-2"), one, 2)
    assert scaling_note(several, None, 2) == ""
    assert scaling_note(ApiRow(32, load(1200, 25), base, "redis-2"), one, 2).endswith("could not be read).")


def test_record_adds_rows_under_one_table_in_a_section_of_its_own(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    before = "# Benchmarks\n\n## api\n\n| date | clients |\n|---|---|\n| 2026-11-23 | 1 |\n\nText after its table.\n"
    doc.write_text(before)
    base = load(7000, 0.3)
    first = result_of(ApiRow(1, load(500, 3), base, "sqlite-1"), ApiRow(1, load(400, 4), base, "redis-1"),
                      ApiRow(1, load(600, 3), base, "redis-2"))
    first.append_markdown(doc, "corral bench api --record")
    first.append_markdown(doc, "corral bench api --record --duration 10")
    text = doc.read_text()
    assert text.startswith(before + "\n## `corral bench api` on both stores, in one and in several processes\n")
    assert text.count(API_TABLE_HEADER) == 1 and text.count("on both stores") == 1
    rows = [line for line in text.split(API_TABLE_HEADER)[1].splitlines() if line.startswith("|")]
    assert len(rows) == 6
    assert [r.split(" | ")[1:5] for r in rows[:3]] == [["sqlite-1", "1", "100", "5"], ["redis-1", "1", "100", "5"],
                                                       ["redis-2", "1", "100", "5"]]
    assert rows[5].endswith("| 0 | 2 | `corral bench api --record --duration 10` |")
    assert "| 0.07 | 10.00 |  |  |" in rows[0]  # 500/7000 pairs/s, 3/0.3 ms p99; nothing to compare with
    assert "| 0.80 |  |" in rows[1] and "| 1.20 | 1.50 |" in rows[2]  # against sqlite-1, against redis-1
