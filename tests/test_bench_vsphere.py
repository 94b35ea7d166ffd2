"""``corral bench vsphere``: a tiny run through the CLI on vcsim (every VM filled in every run,
one session for corral, one per pool for the baseline, the same clones through one bare session
for the floor) and the rows it records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.vsphere_report import FLOOR_TABLE_HEADER, TABLE_HEADER
from corral.bench.vsphere_timeline import VmTimes, mean_steps, slot_use
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
    assert list(runs) == ["corral", "floor", "baseline", "wide"]

    for label, run in runs.items():
        assert run["ok"] is True, label
        assert run["vms"] == run["ready"] == 4 and run["clone_failures"] == 0
        # one clone per VM, and the steps vcsim leaves out of a clone: annotate and power on
        # (and a move, unless the VM went to the template's host)
        calls = run["calls"]
        assert calls["CloneVM_Task"] == calls["ReconfigVM_Task"] == calls["PowerOnVM_Task"] == 4, label
        assert 0 <= calls.get("RelocateVM_Task", 0) <= 4
        assert run["calls_without_feed"] == sum(n for m, n in calls.items() if m != "WaitForUpdatesEx")
        assert run["probes"] >= 4 and run["relogins"] == 0  # every VM probed
        assert 1 <= run["peak_creates"] <= run["task_limit"]
        assert 0 < run["start_s"] < run["wall_s"] and run["session_samples"] > 0
        assert run["corral_cpu_s"] > 0 and run["vcsim_cpu_s"] > 0
        # every VM timed: the clone call holds vcsim's 200 ms, the steps add up to the VM's time
        steps = run["steps"]
        assert steps["clone_call_s"] >= 0.2 and 0 < steps["vm_s"] < run["wall_s"], label
        parts = sum(steps[k] for k in ("clone_call_s", "clone_wait_s", "settle_s", "probe_s", "store_s"))
        assert abs(parts - steps["vm_s"]) < 0.01 and 0 <= steps["settle_waits_s"] <= steps["settle_s"], label
        assert 0 < run["slot_use"] <= 1, label
        if label == "floor":  # no corral: one bare session, no feed, no runner
            assert "WaitForUpdatesEx" not in calls and run["providers"] == run["runner_calls"] == 0
            assert run["logins"] == 1 and run["probes"] == 4 and steps["store_s"] == 0
            # the VMs' calls only: each task, one read of each task and one of each clone
            tasks = sum(calls.get(t, 0) for t in ("CloneVM_Task", "RelocateVM_Task", "ReconfigVM_Task",
                                                  "PowerOnVM_Task"))
            assert calls == {**{t: n for t, n in calls.items() if t.endswith("_Task")},
                             "RetrievePropertiesEx": tasks + 4}
        else:
            assert calls["WaitForUpdatesEx"] >= run["providers"] and run["logins"] == run["providers"]
            assert run["runner_calls"] == 4  # one VM per call

    corral, floor, baseline, wide = runs["corral"], runs["floor"], runs["baseline"], runs["wide"]
    assert (corral["providers"], corral["concurrency"], corral["task_limit"]) == (1, 2, 2)
    assert (floor["concurrency"], floor["task_limit"], floor["peak_sessions"]) == (2, 2, 1)
    assert (baseline["providers"], baseline["concurrency"], baseline["task_limit"]) == (2, 1, 2)
    assert (wide["providers"], wide["concurrency"], wide["task_limit"]) == (1, 40, 40)
    assert corral["peak_sessions"] == wide["peak_sessions"] == 1  # every pool on one session
    assert baseline["peak_sessions"] == 2  # one per pool
    # two rounds of two clones, each call held 200 ms by vcsim
    assert corral["wall_s"] > 0.4 and baseline["wall_s"] > 0.4 and wide["wall_s"] > 0.2
    assert result["ratios"]["sessions_baseline_corral"] == 2.0
    assert result["ratios"]["wall_baseline_corral"] > 0 and result["ratios"]["wall_corral_wide"] > 0
    # the floor: the same clones, two rounds of two, with nothing of corral's around them
    assert floor["wall_s"] > 0.4 and result["floor_s"] == floor["wall_s"]
    assert result["floor_ratio"] == result["ratios"]["wall_corral_floor"]
    assert abs(result["floor_ratio"] - corral["wall_s"] / floor["wall_s"]) < 0.01
    assert result["targets"] == {"corral_floor_max": 1.3}
    assert result["targets_met"] is (result["floor_ratio"] <= 1.3)

    text = doc.read_text()
    assert text.startswith("# Benchmarks\n\n## other\n\n| a |\n|---|\n| 1 |\n\n## `corral bench vsphere`")
    rows = text.split(TABLE_HEADER)[1].split("\n\n")[0].splitlines()
    assert len(rows) == 1 and rows[0].startswith("| ") and "| 2 × 2 | 3 | 0.2 | 2 |" in rows[0]
    assert "| 1 / 2 | 2 |" in rows[0] and "| yes |" in rows[0]
    assert rows[0].endswith("` |") and "| `corral" in rows[0]  # the command that produced it
    floor_rows = text.split(FLOOR_TABLE_HEADER)[1].splitlines()  # the last table of the file
    assert text.index(TABLE_HEADER) < text.index("### The floor") < text.index(FLOOR_TABLE_HEADER)
    assert len(floor_rows) == 1 and "| 2 × 2 | 3 | 0.2 | 2 |" in floor_rows[0]
    met = "yes" if result["targets_met"] else "no"
    ratios = f" | {result['floor_ratio']:.2f} | {met} | {result['ratios']['wall_baseline_corral']:.2f} | "
    assert ratios in floor_rows[0]
    assert floor_rows[0].endswith("` |") and "| `corral" in floor_rows[0]


def test_settings_out_of_range_are_refused_before_vcsim_starts() -> None:
    done = CliRunner().invoke(app, ["bench", "vsphere", "--pools", "0"])
    assert done.exit_code == 2 and "--pools" in done.output
    done = CliRunner().invoke(app, ["bench", "vsphere", "--task-limit", "101"])
    assert done.exit_code == 2 and "--task-limit" in done.output


@pytest.mark.parametrize(("vms", "steps"), [
    ([], {"clone_call_s": 0.0, "clone_wait_s": 0.0, "settle_s": 0.0, "probe_s": 0.0, "store_s": 0.0, "vm_s": 0.0,
          "settle_waits_s": 0.0}),
    # one VM all the way; one that failed after its clone call (only the steps it reached count)
    ([VmTimes("a", slot=1.0, clone_call=3.0, cloned=3.5, settled=4.5, task_waits=0.75, probed=4.75, ready=5.0),
      VmTimes("b", slot=2.0, clone_call=5.0, error="clone failed")],
     {"clone_call_s": 2.5, "clone_wait_s": 0.5, "settle_s": 1.0, "probe_s": 0.25, "store_s": 0.25, "vm_s": 4.0,
      "settle_waits_s": 0.75}),
])
def test_mean_steps_averages_each_step_over_the_vms_that_reached_both_ends(vms: list[VmTimes],
                                                                          steps: dict[str, float]) -> None:
    assert mean_steps(vms) == steps


@pytest.mark.parametrize(("spans", "slots", "wall", "use"), [
    ([(0.0, 2.0), (0.0, 2.0)], 2, 2.0, 1.0),
    ([(0.0, 2.0), (1.0, 2.0), (None, None)], 2, 4.0, 0.375),  # a VM never started holds nothing
    ([(0.0, 1.0)], 0, 1.0, 0.0),
    ([(0.0, 1.0)], 1, 0.0, 0.0),
])
def test_slot_use_is_the_share_of_slots_times_wall_the_calls_held(spans: list[tuple[float | None, float | None]],
                                                                 slots: int, wall: float, use: float) -> None:
    vms = [VmTimes(str(i), slot=a, settled=b) for i, (a, b) in enumerate(spans)]
    assert slot_use(vms, slots, wall) == use
