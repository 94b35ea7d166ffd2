"""``corral bench``: help texts, ``--record --plot`` end to end on a small fill, output that
stays clean when piped, and what ``--plot`` says without matplotlib."""

from __future__ import annotations

import json
import os
import pty
import re
import select
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from corral.bench.fill import FILL_TABLE_HEADER
from corral.bench.inventory_report import InventoryBenchResult, PhaseResult, SystemResult
from corral.bench.inventory_settings import InventoryBenchSettings
from corral.cli import app
from helpers import REPO

from .test_plots import lines, png_size


def help_of(*args: str) -> str:
    out = CliRunner().invoke(app, ["bench", *args, "--help"], env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    return out.output


@pytest.mark.parametrize(("command", "plotted"), [("fill", True), ("api", True), ("inventory", True),
                                                  ("scheduler", False), ("failover", False)])
def test_plot_is_offered_where_a_curve_says_more(command: str, plotted: bool) -> None:
    assert ("--plot" in help_of(command)) == plotted


def fill(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """A small fill in a process of its own, in ``cwd``, stdout and stderr piped (no terminal)."""
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}  # this checkout's corral, from any directory
    return subprocess.run([sys.executable, "-m", "corral.cli", "bench", "fill", "--vms", "30", "--pools", "3",
                           "--task-limit", "5", "--time-scale", "0.004", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=env)


def test_record_and_plot_a_fill_twice(tmp_path: Path) -> None:
    md = tmp_path / "docs" / "b.md"
    md.parent.mkdir()
    md.write_text("# B\n\n## Fill\n\n" + FILL_TABLE_HEADER + "\nReading the table.\n")
    for _ in range(2):
        out = fill("--json", "--record", "--plot", "--output", str(md), cwd=tmp_path)
        assert out.returncode == 0, out.stderr
        result = json.loads(out.stdout.strip().splitlines()[-1])  # the last line is the result
        assert out.stderr == f"figure written to {md.parent / 'b' / 'fill.png'}\n", "--json: no progress lines"
    assert png_size(md.parent / "b" / "fill.png") == (800, 450)
    text = md.read_text()
    table, image, rest = text.split("\n\n")[2:5]
    assert table.startswith(FILL_TABLE_HEADER) and table.count("| 30 | 3 | 5 |") == 2
    assert re.fullmatch(r"!\[VMs ready over time, corral against the vmpooler-style loop, the last run recorded "
                        r"\(\d{4}-\d\d-\d\d\)\]\(b/fill\.png\)", image), image
    assert rest == "Reading the table.\n" and text.count("](b/fill.png)") == 1
    for key, seconds in (("corral_ready", result["corral_s"]), ("baseline_ready", result["baseline_s"])):
        points = result[key]
        assert points[0] == [0.0, 0] and points[-1] == [pytest.approx(seconds, abs=1e-3), 30]
        assert [p[0] for p in points] == sorted(p[0] for p in points)
        assert [p[1] for p in points] == sorted(p[1] for p in points)


def test_plot_without_record_writes_into_the_current_directory(tmp_path: Path) -> None:
    out = fill("--plot", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert png_size(tmp_path / "corral-bench-fill.png") == (800, 450)
    assert "corral filled 30 VMs" in out.stdout.splitlines()[-1]
    assert "\x1b" not in out.stdout + out.stderr, "no terminal: no colours, no bar"
    assert "corral: filling 30 VMs in 3 pools ..." in out.stderr.splitlines(), "the progress lines, one a line"


def test_a_figure_that_cannot_be_written_is_an_error_after_the_result(tmp_path: Path) -> None:
    (tmp_path / "corral-bench-fill.png").mkdir()  # a folder where the PNG should go
    out = fill("--plot", "--json", cwd=tmp_path)
    assert out.returncode == 1
    assert "error: the figure could not be written: " in out.stderr and "corral-bench-fill.png" in out.stderr
    assert json.loads(out.stdout.strip().splitlines()[-1])["vms"] == 30, "the result is still printed"


def test_a_terminal_sees_a_bar_on_stderr_and_stdout_stays_one_json_object(tmp_path: Path) -> None:
    main, terminal = pty.openpty()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src"), "COLUMNS": "100"}
    proc = subprocess.Popen([sys.executable, "-m", "corral.cli", "bench", "fill", "--vms", "30", "--pools", "3",
                             "--task-limit", "5", "--time-scale", "0.004", "--json"],
                            stdout=subprocess.PIPE, stderr=terminal, cwd=tmp_path, env=env)
    os.close(terminal)
    shown = b""
    while True:  # read the terminal until the process closes it
        if select.select([main], [], [], 1.0)[0]:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # closed
                break
            if not chunk:
                break
            shown += chunk
        elif proc.poll() is not None:
            break
    os.close(main)
    out = proc.stdout.read().decode()  # type: ignore[union-attr]
    assert proc.wait(60) == 0, shown.decode(errors="replace")
    lines = out.strip().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["vms"] == 30
    text = shown.decode(errors="replace")
    assert "\r" in text and "━" in text, "a bar redrawn in place"
    assert "100%" in text and "baseline:" in text, "the count and the latest progress line"
    assert text.rstrip().endswith("\x1b[2K"), "the bar is cleared when the run ends"


def test_plot_without_matplotlib_fails_before_measuring(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.chdir(tmp_path)
    out = CliRunner().invoke(app, ["bench", "fill", "--vms", "100000", "--plot"])
    assert out.exit_code == 2
    assert "--plot needs matplotlib, which is not installed; install it with: pip install 'corral[bench]'" \
        in out.output
    assert "Traceback" not in out.output and list(tmp_path.iterdir()) == []


def test_without_matplotlib_a_bench_without_plot_runs(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    out = CliRunner().invoke(app, ["bench", "fill", "--vms", "10", "--pools", "2", "--time-scale", "0.002", "--json",
                                   "--record", "--output", str(tmp_path / "b.md")])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output.strip().splitlines()[-1])["ok"] is True
    assert "| 10 | 2 |" in (tmp_path / "b.md").read_text()


def test_corral_loads_without_matplotlib() -> None:
    code = "import sys, corral.cli, corral.bench.cli; assert 'matplotlib' not in sys.modules"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={**os.environ, "PYTHONPATH": str(REPO / "src")})
    assert out.returncode == 0, out.stderr


@pytest.mark.parametrize(("args", "complaint"), [
    (["--vms", "3", "--pools", "4"], "--pools (4) cannot be more than --vms (3)"),
    (["--vms", "0"], "--vms"),
    (["--time-scale", "0"], "--time-scale"),
])
def test_fill_refuses_settings_it_cannot_use(args: list[str], complaint: str) -> None:
    out = CliRunner().invoke(app, ["bench", "fill", *args])
    assert out.exit_code == 2 and complaint in out.output and "Traceback" not in out.output


def phase(rate: float, p50: float, p99: float, sustained: bool | None = True) -> PhaseResult:
    return PhaseResult(name="step", rate=rate, seconds=1.0, p50_ms=p50, p99_ms=p99, sustained=sustained)


def system(name: str, churn: PhaseResult, steps: list[PhaseResult]) -> SystemResult:
    return SystemResult(system=name, hosts=10, vms=100, setup_s=0.1, load_s=0.01, load_cpu_s=0.01,
                        rss_start_mb=30, rss_sim_mb=35, rss_loaded_mb=36, hwm_loaded_mb=36, rss_after_churn_mb=36,
                        hwm_mb=37, idle=phase(0, 0, 0), churn=churn, steps=steps)


@pytest.mark.parametrize(("steps", "corral_drawn", "not_sustained"), [
    ([phase(2000, 0.2, 0.4), phase(10000, 0.3, 0.9), phase(50000, 9.0, 300.0, False)],
     ([2000.0, 10000.0, 50000.0], [0.4, 0.9, 300.0]), ([50000.0], [300.0])),
    ([], ([1000.0], [0.5]), None),  # no steps: the churn phase
])
def test_an_inventory_result_plots_its_steps_against_the_baseline(steps, corral_drawn, not_sustained) -> None:
    result = InventoryBenchResult(InventoryBenchSettings(hosts=10, vms=100, rate=1000),
                                  system("corral", phase(1000, 0.2, 0.5), steps),
                                  system("baseline", phase(1000, 1500.0, 2900.0), []))
    drawn = lines(result.figure())
    assert drawn["corral p99"] == corral_drawn
    assert drawn.get("corral p99, rate not sustained") == not_sustained
    assert drawn["re-polling baseline p99"] == ([1000.0], [2900.0])
