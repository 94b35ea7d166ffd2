"""``corral bench scheduler``: the quick run in-process (same answers as both greedies, corral
loads hosts best), the baselines on their own, and the rows it records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import corral.bench.scheduler as bench
from corral.bench.scheduler_baselines import (
    least_used_targets,
    numpy_greedy,
    place_by_count,
    place_least_used,
)
from corral.bench.scheduler_report import QUALITY_TABLE_HEADER, SPEED_TABLE_HEADER
from corral.cli import app
from corral.domain.models import HostInfo
from corral.scheduling.model import CpuNeed, Demand, Request
from corral.scheduling.scheduler import Scheduler, SchedulerSettings


def test_the_quick_run_places_as_the_greedies_do_and_best_and_records_it(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n")
    runner = CliRunner()
    done = runner.invoke(app, ["bench", "scheduler", "--quick", "--json", "--record", "--output", str(doc)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["settings"]["quick"] is True
    speed = result["speed"]
    assert result["targets_met"] == {"placements_per_s": speed["target_met"]}
    assert speed["hosts"] == 200 and speed["vms"] == 1000 and len(speed["templates"]) == 5
    assert speed["identical"] is True and speed["numpy_mismatches"] == 0 and speed["plain_mismatches"] == 0
    assert speed["placed"] == 1000 and 0 < speed["usable_hosts"] < 200
    for placer, vms in (("corral", 1000), ("numpy", 1000), ("plain", 200)):
        timing = speed[placer]
        assert timing["vms"] == vms and timing["per_s"] > 0 and len(timing["runs_s"]) >= 1
        assert timing["best_s"] <= timing["median_s"]
    assert set(speed["ratios"]) == {"corral_numpy", "corral_plain"} and speed["ratios"]["corral_plain"] > 1
    assert isinstance(speed["target_met"], bool) and speed["target_per_s"] == 200_000

    quality = result["quality"]
    assert quality["hosts"] == 16 and quality["vms"] == 300 and quality["limit"] == 90.0
    assert quality["ok"] is True and quality["checks"] == {"lowest_max": True, "within_limit": True,
                                                           "all_placed": True}
    assert 70 <= quality["demand_memory"] <= 80 and quality["demand_cpu"] < quality["demand_memory"]
    rows = {row["rule"]: row for row in quality["rows"]}
    assert list(rows) == ["count", "least_used", "corral"]
    corral = rows["corral"]
    assert corral["above_limit"] == 0 and corral["unplaced"] == 0 and corral["max_use"] <= 90.0
    assert all(corral["max_use"] <= rows[rule]["max_use"] for rule in ("count", "least_used"))
    assert rows["count"]["above_limit"] > 0  # counting VMs overloads the small hosts

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n\n## `corral bench scheduler`")
    assert SPEED_TABLE_HEADER in text and QUALITY_TABLE_HEADER in text
    speed_rows = text.split(SPEED_TABLE_HEADER)[1].split("\n\n")[0].splitlines()
    assert len(speed_rows) == 1 and speed_rows[0].startswith("| ") and "| 200 | 1,000 |" in speed_rows[0]
    quality_rows = text.split(QUALITY_TABLE_HEADER)[1].splitlines()
    assert len(quality_rows) == 1 and "| 16 | 300 | 20 |" in quality_rows[0]


def test_the_command_fails_when_corral_places_otherwise(monkeypatch: pytest.MonkeyPatch) -> None:
    def off_by_one(loads, requests, settings=None):  # type: ignore[no-untyped-def]
        out = numpy_greedy(loads, requests, settings)
        return [None, *out[1:]]

    monkeypatch.setattr(bench, "numpy_greedy", off_by_one)
    done = CliRunner().invoke(app, ["bench", "scheduler", "--quick"])
    assert done.exit_code == 1
    assert "NO (1 and 0 differ)" in done.output and "NOT OK" in done.output


def host(name: str, **kw: object) -> HostInfo:
    values: dict[str, object] = {"cpu_model": "Intel(R) Xeon(R) CPU E5-2680 v4 @ 2.40GHz", "cores": 8, "mhz": 2000,
                                 "memory_mb": 16384, "cpu_vendor": "GenuineIntel", "cpu_family": 6,
                                 "cpu_flags": frozenset({"avx", "avx2"})}
    values.update(kw)
    return HostInfo(name=name, **values)  # type: ignore[arg-type]


def test_the_numpy_greedy_matches_the_scheduler_on_every_static_rule_and_when_hosts_fill_up() -> None:
    hosts = [
        host("a", cpu_used_mhz=4000.0, memory_used_mb=2048),
        host("b", cpu_vendor="AuthenticAMD", cpu_family=25, cpu_model="AMD EPYC 7763 64-Core Processor"),
        host("c", cpu_flags=frozenset(), cluster="east"),  # reports no flags: judged by its model word
        host("d", cpu_vendor="", cpu_family=None, cpu_flags=frozenset({"avx512f", "avx2"}), cluster="east"),
        host("e", maintenance=True),
        host("f", health="yellow"),
        host("g", config_issues=2, cpu_used_mhz=1000.0),
        host("h", cpu_model="Intel(R) Xeon(R) CPU E5-2680 v2 @ 2.80GHz", cpu_flags=frozenset(), memory_mb=65536),
    ]
    demands = [
        Demand(1, 1024), Demand(2, 4096, CpuNeed(vendor="GenuineIntel", family=6)),
        Demand(1, 2048, CpuNeed(flags=frozenset({"avx2"}))), Demand(2, 2048, CpuNeed(flags=frozenset({"avx512f"}))),
        Demand(1, 1024, CpuNeed(model="v2")), Demand(1, 1024, CpuNeed(flags=frozenset({"avx2"}), model="v4")),
        Demand(1, 3072, cluster="east"), Demand(1, 1024, CpuNeed(vendor="AuthenticAMD", family=25)),
    ]
    skip_a = frozenset({"a"})
    requests = [Request(f"vm-{i}", demands[i * 7 % len(demands)], skip_a if i % 5 == 0 else frozenset())
                for i in range(400)]  # far more than fits: the later ones find no host
    scheduler = Scheduler(SchedulerSettings())
    ours = [p.host for p in scheduler.place(hosts, requests, reserve=False)]
    assert numpy_greedy(Scheduler(SchedulerSettings()).loads(hosts), requests) == ours
    assert None in ours and {"e", "f", "g"}.isdisjoint(ours)
    assert Scheduler(SchedulerSettings()).place_greedy(Scheduler(SchedulerSettings()).loads(hosts), requests) == ours


def test_counting_vms_ignores_use_and_least_used_goes_round_robin_until_it_looks_again() -> None:
    hosts = [host("a", vm_count=3, cpu_used_mhz=1600.0, memory_used_mb=1638),
             host("b", vm_count=1, cpu_used_mhz=12800.0, memory_used_mb=13107),  # 80 % in use, fewest VMs
             host("c", vm_count=2, cpu_used_mhz=3200.0, memory_used_mb=3277),
             host("d", vm_count=0, maintenance=True)]
    small = Demand(1, 1024)
    requests = [Request(f"vm-{i}", small) for i in range(4)]
    loads = Scheduler(SchedulerSettings()).loads(hosts)
    assert place_by_count(loads, requests) == ["b", "b", "c", "a"]  # "b" takes 2 despite its load, ties by name

    loads = Scheduler(SchedulerSettings()).loads(hosts)
    # utilisation a 20, b 160, c 40: average 73.3, so a and c are the targets, least used first
    assert [t.name for t in least_used_targets(loads, 90.0)] == ["a", "c"]
    requests = [Request(f"vm-{i}", Demand(4, 4096)) for i in range(8)]
    # a clone adds 4 × 2000 MHz × 0.25 = 12.5 % CPU and 4 GiB = 25 % memory. After 3 clones "a" is at
    # 35 + 60 = 95 and "c" at 32.5 + 45 = 77.5, "b" at 160: the new list is c, a; after 3 more "c" is
    # at 95 % memory and out, the list is "a" alone, which takes the last two whatever its use
    assert place_least_used(loads, requests, limit=90.0, refresh=3) == ["a", "c", "a", "c", "a", "c", "a", "a"]
    assert round(loads["a"].memory_percent) == 135 and round(loads["b"].memory_percent) == 80
    loads = Scheduler(SchedulerSettings()).loads(hosts)
    # looking again at every clone, "b" (80 %) is the only candidate left for the last one
    assert place_least_used(loads, requests, limit=90.0, refresh=1)[-2:] == ["a", "b"]
    over = Scheduler(SchedulerSettings()).loads([host("x", memory_used_mb=16000)])
    assert place_least_used(over, requests[:1], limit=90.0) == [None]  # no candidate: not placed


WITHOUT_NUMPY = "import sys; sys.modules['numpy'] = None; "  # every later ``import numpy`` fails


def test_without_numpy_the_scheduler_bench_says_in_one_line_how_to_install_it() -> None:
    code = WITHOUT_NUMPY + "sys.argv = ['corral', 'bench', 'scheduler', '--quick']; from corral.cli import main; main()"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["error: corral bench scheduler needs numpy, which is not installed; "
                                        "install it with: pip install 'corral[bench]'"]


def test_every_other_benchmark_and_the_cli_load_without_numpy() -> None:
    modules = ["corral.cli", "corral.bench.api", "corral.bench.fill", "corral.bench.inventory",
               "corral.bench.inventory_worker", "corral.bench.massrun", "corral.bench.vsphere"]
    code = WITHOUT_NUMPY + "import importlib; [importlib.import_module(m) for m in sys.argv[1:]]"
    done = subprocess.run([sys.executable, "-c", code, *modules], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
