"""``corral bench massrun``: the quick run through the CLI (bulk calls per host, every VM created,
HA restarts on live hosts, HA starts ahead of refills), the rows it records, and its arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.massrun_report import HA_TABLE_HEADER, MASS_TABLE_HEADER, SerialResult
from corral.bench.massrun_settings import MassRunSettings, limit_seconds, split
from corral.cli import app


def test_the_quick_run_creates_in_bulk_restarts_on_live_hosts_and_records_it(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n")
    done = CliRunner().invoke(app, ["bench", "massrun", "--quick", "--json", "--record", "--output", str(doc)])
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and isinstance(result["targets_met"], bool)
    assert result["settings"] == {"vms": 100, "hosts": 10, "pools": 4, "time_scale": 0.01, "serial_sample": 10,
                                  "repeats": 1, "ha_vms": 200, "refills": 100, "quick": True}

    mass = result["massrun"]
    corral, serial = mass["corral"], mass["serial"]
    assert corral["created"] == 100 and corral["failed"] == 0 and corral["runs_s"] == [corral["seconds"]]
    # one create call per host per batch: far fewer calls than VMs
    assert corral["hosts_used"] == 10 and corral["calls"] <= corral["hosts_used"] * corral["batches"]
    assert corral["calls"] <= 100 / 5 and corral["vms_per_call"] >= 5
    assert corral["vms_per_call_max"] - corral["vms_per_call_min"] <= 1  # spread evenly over the hosts
    assert 0 <= corral["first_call_s"] <= corral["last_call_s"] < corral["seconds"]
    assert serial["sample_calls"] == serial["calls"] == 10 and serial["full"] is False
    assert serial["extrapolated_s"] == pytest.approx(serial["per_call_s"] * 100, rel=1e-3)
    assert serial["per_call_s"] >= (2.0 + 0.01) * 0.01  # a call cannot beat its simulated latency
    assert serial["extrapolated_s"] > corral["seconds"] > mass["limit_s"] == pytest.approx((2.0 + 10 * 0.01) * 0.01)
    assert mass["ratios"]["serial_corral"] > 1 and mass["ratios"]["corral_limit"] > 1
    assert set(mass["targets"]) == {"corral_limit_max", "corral_limit_met", "serial_corral_min", "serial_corral_met"}

    ha = result["ha"]
    assert ha["ok"] is True and ha["ha_first"] is True and ha["ratio_with_refills_alone"] > 0
    for key in ("alone", "with_refills"):
        trial = ha[key]
        assert trial["dead_vms"] == 20 and trial["dead_host"] == "sim-host-01"  # 200 HA VMs spread over 10 hosts
        assert trial["restarted"] == trial["on_live_hosts"] == 20 and trial["ha_failures"] == 0
        assert trial["new_hosts"] == 9  # every other host, none of them the dead one
        assert trial["start_calls"] == 9 and sum(trial["start_vms_per_call"]) == 20
        assert 0 <= trial["first_start_s"] <= trial["last_start_s"] < trial["restart_s"]
        assert trial["limit_s"] == pytest.approx((2.0 + 3 * 0.01) * 0.01)  # ⌈20 / 9⌉ VMs on the fullest host
        assert trial["restart_s"] > trial["limit_s"] and trial["restart_vs_limit"] > 1
        assert trial["runs_s"] == [trial["restart_s"]] and trial["ok"] is True
    loaded = ha["with_refills"]
    assert loaded["refills"] == loaded["refills_created"] == 100 and loaded["refill_calls"] >= 9
    assert loaded["refill_calls_before_last_start"] == 0
    assert loaded["last_start_s"] <= loaded["first_refill_call_s"] < loaded["refills_s"]
    assert ha["alone"]["refills"] == ha["alone"]["refill_calls"] == 0 and ha["alone"]["refills_s"] is None

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n\n## `corral bench massrun`")
    mass_rows = text.split(MASS_TABLE_HEADER)[1].split("\n\n")[0].splitlines()
    assert len(mass_rows) == 1 and "| 100 | 10 | 0.01 |" in mass_rows[0]
    assert mass_rows[0].endswith("` |") and "| `corral" in mass_rows[0]  # the command that produced it
    ha_rows = text.split(HA_TABLE_HEADER)[1].splitlines()
    assert len(ha_rows) == 1 and "| 10 | 200 | 20 | 100 | 0.01 |" in ha_rows[0] and "| yes |" in ha_rows[0]


def test_settings_out_of_range_are_refused_before_anything_runs() -> None:
    done = CliRunner().invoke(app, ["bench", "massrun", "--quick", "--serial-sample", "0"])
    assert done.exit_code == 2 and "--serial-sample" in done.output
    done = CliRunner().invoke(app, ["bench", "massrun", "--quick", "--time-scale", "0"])
    assert done.exit_code == 2 and "--time-scale" in done.output


def test_the_limit_and_the_serial_extrapolation() -> None:
    assert limit_seconds(1000, 10, 0.1) == pytest.approx(0.3)  # (2 s + 100 × 10 ms) × 0.1
    assert limit_seconds(1001, 10, 1.0) == pytest.approx(3.01)  # the fullest host sets it
    sample = SerialResult(sample_calls=100, sample_s=20.1, vms=1000, calls=100)
    assert not sample.full and sample.extrapolated_s == pytest.approx(201.0)
    whole = SerialResult(sample_calls=1000, sample_s=200.5, vms=1000, calls=1000)
    assert whole.full and whole.extrapolated_s == 200.5
    assert split(1000, 10) == [100] * 10 and split(7, 3) == [3, 2, 2]
    defaults = MassRunSettings()
    assert (defaults.vms, defaults.hosts, defaults.time_scale, defaults.serial_sample, defaults.repeats) == (
        1000, 10, 0.1, 100, 3)
