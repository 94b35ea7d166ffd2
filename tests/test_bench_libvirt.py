"""``corral bench libvirt``: a small real run through the CLI on libvirt's test driver (corral's
fill through the real manager, the naive client's, the timed domain changes), the verdicts,
and the row it records."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.libvirt_report import TABLE_HEADER, Latencies, SideResult, spread
from corral.bench.libvirt_settings import LibvirtBenchSettings
from corral.cli import app

PER_VM = ("lookupByName", "storagePoolLookupByName", "storageVolLookupByName", "createXMLFrom", "defineXML", "create")


def test_a_small_run_fills_three_hosts_and_counts_fewer_calls_than_the_naive_client(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n")
    args = ["bench", "libvirt", "--vms", "5", "--changes", "30", "--poll-interval", "0.2", "--json", "--record",
            "--output", str(doc)]
    monkeypatch.setattr(sys, "argv", ["corral", *args])  # the command the row records
    done = CliRunner().invoke(app, args)
    assert done.exit_code == 0, done.output
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["ok"] is True and result["targets_met"] is True
    assert result["settings"] == {"vms_per_host": 5, "changes": 30, "poll_interval": 0.2, "poll_rounds": 5,
                                  "task_limit": 10, "hosts": 3, "vms": 15}
    corral, baseline = result["runs"]["corral"], result["runs"]["baseline"]
    for run in (corral, baseline):
        assert run["ok"] is True
        assert run["ready"] == run["vms"] == 15
        assert run["per_host"] == {"host1": 5, "host2": 5, "host3": 5}
        assert run["leaked_domains"] == run["leaked_volumes"] == run["lost"] == 0
        assert run["total_calls"] == sum(run["calls"].values())
        assert run["calls_per_vm"] == pytest.approx(run["total_calls"] / 15, abs=0.001)
        # one clone, one define and one start per VM on both sides
        assert run["calls"]["createXMLFrom"] == run["calls"]["defineXML"] == run["calls"]["create"] == 15
        assert run["changes"] == run["changes_seen"] == 30 and run["changes_missing"] == 0
        assert 0 <= run["p50_ms"] <= run["p99_ms"] <= run["max_ms"]
        assert run["wall_s"] > 0

    # the naive client asks for everything again for each VM, and polls for states
    assert all(baseline["calls"][m] == 15 for m in PER_VM)
    assert baseline["calls"]["XMLDesc"] == 30  # the template's and its volume's, per VM
    assert baseline["calls"]["listAllDomains"] % 3 == 0 and baseline["calls"]["state"] >= 15
    assert baseline["poll_calls_per_vm"] > 0 and baseline["calls_per_vm"] >= 8 + baseline["poll_calls_per_vm"] - 0.01
    # corral: the template and the storage looked up once per host, not once per VM; states from events
    assert corral["calls"]["lookupByName"] == corral["calls"]["storageVolLookupByName"] // 2 == 3
    assert corral["poll_calls_per_vm"] == 0 and "state" not in corral["calls"]
    assert corral["calls_per_vm"] < baseline["calls_per_vm"]
    assert result["calls_per_vm_ratio"] == pytest.approx(baseline["calls_per_vm"] / corral["calls_per_vm"], abs=0.01)

    # changes: corral's feed answers from its copy, without a call, well within a poll interval;
    # the poller needs its polls (a list and a state call per domain, every 0.2 s)
    assert corral["change_calls"] == 0
    assert corral["p99_ms"] < 100
    assert baseline["change_calls"] > 0 and baseline["p50_ms"] > corral["p50_ms"]
    assert baseline["max_ms"] < 3 * 200
    assert 0.15 < baseline["poll_interval_s"] < 0.4 and 0 < baseline["poll_cycle_s"] < baseline["poll_interval_s"]

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n") and TABLE_HEADER in text
    row = text.split(TABLE_HEADER, 1)[1].splitlines()[0]
    assert row.startswith("| ") and "| 3 × 5 |" in row and "| yes |" in row
    assert "`corral bench libvirt --vms 5 --changes 30" in row


def side(**kw: object) -> SideResult:
    values: dict[str, object] = dict(label="corral", vms=6, ready=6, per_host={"a": 2, "b": 2, "c": 2}, wall_s=1.0,
                                     calls={"create": 6}, latency=Latencies(changes=2, seen=[0.001, 0.002]))
    values.update(kw)
    return SideResult(**values)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "ok"), [
    ({}, True),
    ({"ready": 5}, False),  # the fill did not complete
    ({"per_host": {"a": 3, "b": 2, "c": 1}}, False),  # uneven
    ({"per_host": {"a": 3, "b": 3}}, False),  # a host left out
    ({"leaked_domains": 1}, False),
    ({"leaked_volumes": 1}, False),
    ({"lost": 1}, False),  # a VM recorded on a host that does not have it
    ({"latency": Latencies(changes=2, seen=[0.001])}, False),  # a change never seen
])
def test_a_side_is_ok_only_filled_evenly_with_nothing_leaked_and_every_change_seen(
        changes: dict[str, object], ok: bool) -> None:
    assert side(**changes).ok is ok


@pytest.mark.parametrize(("per_host", "shown"), [
    ({"a": 200, "b": 200, "c": 200}, "200 each"),
    ({"a": 199, "b": 201, "c": 200}, "199·201·200"),
    ({}, ""),
])
def test_vms_per_host_are_shown_short(per_host: dict[str, int], shown: str) -> None:
    assert spread(per_host) == shown


@pytest.mark.parametrize(("settings", "message"), [
    (LibvirtBenchSettings(vms_per_host=0), "--vms must be between 1 and 2,000"),
    (LibvirtBenchSettings(vms_per_host=2001), "--vms must be between 1 and 2,000"),
    (LibvirtBenchSettings(changes=0), "--changes must be at least 1"),
    (LibvirtBenchSettings(poll_interval=0), "--poll-interval must be between 0.01 and 60"),
    (LibvirtBenchSettings(task_limit=0), "--task-limit must be between 1 and 100"),
])
def test_settings_a_run_cannot_use_are_refused(settings: LibvirtBenchSettings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        settings.check()


def test_the_command_refuses_bad_settings_before_running() -> None:
    done = CliRunner().invoke(app, ["bench", "libvirt", "--vms", "0", "--json"])
    assert done.exit_code == 2
    assert "--vms must be between 1 and 2,000" in done.output


def test_percentiles_of_the_changes_seen() -> None:
    latencies = Latencies(changes=4, seen=[0.004, 0.001, 0.003, 0.002], calls=0)
    assert latencies.missing == 0
    assert latencies.figures() == {"p50_ms": 2.0, "p99_ms": 4.0, "max_ms": 4.0}
    assert Latencies(changes=1).figures() == {"p50_ms": 0.0, "p99_ms": 0.0, "max_ms": 0.0}


def test_without_libvirt_python_the_command_says_in_one_line_how_to_install_it() -> None:
    code = ("import sys; sys.modules['libvirt'] = None; "  # every later ``import libvirt`` fails
            "sys.argv = ['corral', 'bench', 'libvirt', '--vms', '1']; from corral.cli import main; main()")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.splitlines() == ["error: corral bench libvirt: the libvirt provider needs libvirt-python: "
                                        "pip install 'corral[libvirt]' (and Debian's libvirt-dev to build it)"]
