"""kill -9 at random moments of a 500-VM fill under load, on sqlite, on Redis and with two
managers on Redis (the owner killed each time), 20 kills each: nothing leaks, nothing is lost,
nothing is handed out twice, checked-out VMs stay running, and the pools converge.

The moments come from a seed printed with every failure (``CORRAL_CRASH_SEED`` replays one;
``corral bench crash --seed N`` runs the same scenario outside the suite).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from corral.bench.crash import (
    CrashResult,
    CrashSettings,
    Kill,
    landing,
    open_flights,
    pools_converged,
    run_crash,
    unknown_at_sim,
    without_vm,
)
from corral.domain.models import Vm
from corral.domain.states import VmState

# 20 kills on each set-up, as `corral bench crash` (each restart of a process with the API costs
# about 1.5 s of CPU, most of it FastAPI building its routes)
KILLS = {"sqlite": 20, "redis": 20, "redis-ha": 20}


def settings_for(store: str) -> CrashSettings:
    seed = int(os.environ.get("CORRAL_CRASH_SEED", "0")) or None
    # leases of 1 s, so that a takeover does not dominate the run
    return CrashSettings(store=store, kills=KILLS[store], seed=seed, lease_ttl=1.0, renew_every=0.15)


@pytest.mark.timeout(400)
@pytest.mark.parametrize("store", sorted(KILLS))
def test_kill_9_during_a_fill_under_load_loses_nothing(store: str, tmp_path: Path, capsys: pytest.CaptureFixture):
    result = run_crash(settings_for(store), progress=print, workdir=tmp_path)
    out = capsys.readouterr().out
    where = f"{store}, seed {result.seed}: {result.summary()} {result.not_converged}\n{out[-4000:]}"
    assert len(result.kills) == KILLS[store], where
    assert result.in_create >= 1 and result.in_destroy >= 1, f"no kill landed in a create or a destroy: {where}"
    assert result.duplicates == [], f"handed out twice: {result.duplicates}; {where}"
    assert result.leaked == 0, where
    assert result.lost == 0, where
    assert result.not_running == 0, f"checked-out VMs stopped running: {where}"
    assert all(k.clean for k in result.kills), f"a restart did not account for every VM in time: {where}"
    assert result.converged_s is not None and result.converged_s < 60, where
    assert result.unclaimed_running <= result.lost_answers, where
    assert result.handed_out > 0 and result.returned > 0, f"the client did no work: {where}"
    assert result.tracebacks == 0, where
    assert result.ok, where


def vm(name: str, state: VmState, pool: str = "alpha", request_id: str | None = None) -> Vm:
    return Vm(name=name, pool=pool, template="t", provider="sim", state=state, request_id=request_id)


@pytest.mark.parametrize(("records", "at_sim", "creating", "destroying"), [
    ([vm("a", VmState.PENDING)], {}, {"a"}, set()),  # intent written, the create call not back
    ([vm("a", VmState.PENDING)], {"a": True}, set(), set()),  # created, booting
    ([vm("a", VmState.COMPLETED)], {"a": True}, set(), {"a"}),  # destroy intent, VM still there
    ([vm("a", VmState.FAILED)], {"a": False}, set(), {"a"}),
    ([vm("a", VmState.COMPLETED)], {}, set(), set()),  # destroyed, record not yet written
    ([vm("a", VmState.READY)], {"a": True}, set(), set()),
])
def test_where_a_kill_landed(records, at_sim, creating, destroying):
    seen = landing(records, at_sim)
    assert (set(seen.creating), set(seen.destroying)) == (creating, destroying)


def test_leaks_losses_and_open_flights():
    records = [vm("a", VmState.READY), vm("b", VmState.RUNNING), vm("c", VmState.PENDING),
               vm("d", VmState.COMPLETED)]
    at_sim = {"a": True, "d": True, "x": True}
    assert unknown_at_sim(records, at_sim) == {"x"}
    assert without_vm(records, at_sim) == {"b"}  # c is pending: its create may be under way
    at_kill = landing(records, at_sim)
    assert open_flights(records, at_kill) == {"c", "d"}
    assert open_flights([vm("c", VmState.FAILED)], at_kill) == set()


@pytest.mark.parametrize(("records", "at_sim", "converged"), [
    ([vm("a", VmState.READY)], {"a": True}, True),
    ([vm("a", VmState.READY), vm("b", VmState.RUNNING)], {"a": True, "b": True}, True),
    ([vm("a", VmState.READY), vm("b", VmState.PENDING)], {"a": True, "b": True}, False),
    ([vm("a", VmState.READY)], {"a": True, "z": True}, False),  # one VM the store does not know
    ([vm("a", VmState.READY, request_id="r1")], {"a": True}, False),  # on-demand VMs are not stock
])
def test_pools_converged(records, at_sim, converged):
    assert pools_converged(records, at_sim, {"alpha": 1}) is converged


def test_a_run_is_recorded_as_one_row_with_its_command(tmp_path: Path) -> None:
    result = CrashResult(store="redis-ha", seed=5, kills=[
        Kill(1, 0.5, "m1", False, creating=3, destroying=0, at_sim=10, recovery_s=1.5),
        Kill(2, 0.7, "m2", True, creating=0, destroying=2, at_sim=12, recovery_s=2.5, leaked=1)],
        converged_s=4.0)
    out = tmp_path / "benchmarks.md"
    result.append_markdown(out, "corral bench crash --store redis-ha --kills 2 --seed 5 --record")
    text = out.read_text()
    assert "## Crashes (`corral bench crash`)" in text
    assert "| redis-ha | 2 | 5 | 1 | 1 | 1 | 0 | 0 | 0 | 2.50 | 2.50 | 4.0 | NO | " in text
    assert not result.ok and result.targets_met["no_leak"] is False
    assert result.as_dict()["kills"][1]["landed"] == "destroy (2 VMs)"


def test_crash_bench_refuses_an_unknown_store() -> None:
    import subprocess
    import sys

    from helpers import REPO

    done = subprocess.run([sys.executable, "-m", "corral.cli", "bench", "crash", "--store", "mysql"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and "--store must be one of sqlite, redis, redis-ha, not 'mysql'" in done.stderr
