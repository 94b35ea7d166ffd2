"""Real corral processes on a real redis-server: managers share the pools through leases, and
the site survives losing one (kill -9, SIGSTOP past the lease, SIGTERM, Redis restarting).

After each fault: every pool converges, no VM is handed out twice, and the simulator's state
file and the store agree exactly (no VM leaked, no record lost).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from corral.bench.redisd import RedisServer
from corral.bench.site import Load, Site
from corral.store.base import Fenced

POOLS = {"alpha": 6, "beta": 4, "gamma": 4, "delta": 3}
TTL = 3.0

pytestmark = pytest.mark.timeout(240)


def wait_for(check, timeout: float, what: str) -> float:  # type: ignore[no-untyped-def]
    start = time.monotonic()
    while time.monotonic() - start < timeout:
        if check():
            return time.monotonic() - start
        time.sleep(0.05)
    raise AssertionError(f"{what} not within {timeout:.0f} s")


@pytest.fixture
def redis_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    """A Redis of the test's own (this module restarts it); persistent, as a production one."""
    with RedisServer(workdir=tmp_path, persist=True) as server:
        yield server


@pytest.fixture
def site(tmp_path: Path, redis_server: RedisServer):  # type: ignore[no-untyped-def]
    s = Site(tmp_path, redis_server, POOLS, lease_ttl=TTL, renew_every=0.5)
    yield s
    s.stop_all()


def test_pools_spread_over_the_managers_and_are_served_by_any_api(site: Site) -> None:
    site.manager("m1")
    site.manager("m2")
    api = site.api("a1")
    site.wait_converged(60)
    wait_for(lambda: set(site.holdings()) == {"m1", "m2"}, 10, "both managers holding pools")
    owners = site.owners()
    assert set(owners) == set(POOLS)

    def managers() -> dict:  # type: ignore[type-arg]
        return httpx.get(f"{api.url}/status?view=managers", timeout=5).json()["managers"]

    # a manager that has just taken a pool publishes Acquiring until its next tick acts on it
    wait_for(lambda: all(m.get("state") == "Active" for m in managers()["live"].values()), 10, "both Active")
    body = managers()
    assert set(body["live"]) == {"m1", "m2"} and body["me"] is None
    assert all(body["live"][m]["state"] == "Active" for m in ("m1", "m2"))
    # a checkout through the API process is refilled and a return destroyed by the pool's owner
    got = httpx.post(f"{api.url}/vm/alpha+gamma", timeout=5).json()
    assert got["ok"] is True
    assert httpx.delete(f"{api.url}/vm/{got['alpha']['hostname']}", timeout=5).json()["ok"] is True
    site.wait_converged(30)
    # corral status shows the managers with the pools
    shown = subprocess.run([sys.executable, "-m", "corral.cli", "status", "--url", api.url.removesuffix("/api/v3")],
                           capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "2 managers" in shown.stdout and "m1" in shown.stdout and "Active" in shown.stdout
    # what needs the provider is named as done elsewhere, never a 500
    answer = httpx.post(f"{api.url}/vm/{got['gamma']['hostname']}/snapshot", timeout=5)
    assert answer.status_code == 503 and "several processes sharing Redis" in answer.json()["reason"]


def test_kill_9_of_the_owner_mid_fill_moves_its_pools_within_two_ttls(site: Site) -> None:
    m1 = site.manager("m1")
    site.manager("m2")
    api = site.api("a1")
    wait_for(lambda: len(site.owners()) == len(POOLS) and len(site.holdings()) == 2, 30, "pools spread")
    load = Load([api.url], list(POOLS), clients=4)  # checkouts and returns keep the managers filling
    try:
        time.sleep(1.0)
        lost = site.holdings()["m1"]
        m1.kill9()
        taken = wait_for(lambda: all(site.owners().get(p) == "m2" for p in lost), 2 * TTL + 1, "takeover")
        assert taken <= 2 * TTL, f"m2 took m1's pools {taken:.1f} s after the kill"
        time.sleep(1.0)
    finally:
        load.stop()
    assert load.duplicates() == [] and load.server_errors() == 0, (load.duplicates(), load.statuses)
    assert load.handed, "no checkout succeeded"
    site.wait_converged(60)


def test_sigstop_past_the_lease_is_fenced_and_the_old_owner_rejoins_as_standby(tmp_path: Path,
                                                                               redis_server: RedisServer) -> None:
    # slower clones (a call of three VMs takes about 0.7 s), so that m1 is stopped mid-clone
    site = Site(tmp_path, redis_server, POOLS, lease_ttl=TTL, renew_every=0.5, time_scale=0.1,
                reconcile_interval=2.0)
    try:
        m1 = site.manager("m1")
        api = site.api("a1")
        site.wait_converged(60)
        site.manager("m2")
        wait_for(lambda: len(site.holdings()) == 2, 15, "m2 taking its share")
        mine = sorted(site.holdings()["m1"])
        old_tokens = {p: site.fence(p) for p in POOLS}
        for pool in mine:  # m1 starts refilling these...
            assert httpx.post(f"{api.url}/vm/{pool}+{pool}+{pool}", timeout=5).status_code == 200
        time.sleep(0.15)
        m1.signal(signal.SIGSTOP)  # ...and sleeps with its clones under way, past its leases
        try:
            wait_for(lambda: all(site.owners().get(p) == "m2" for p in POOLS), 2 * TTL + 2, "m2 taking every pool")
        finally:
            m1.signal(signal.SIGCONT)
        for pool in mine:
            assert site.fence(pool) > old_tokens[pool]
        # woken, m1 stops acting at its first tick, its deadline long past; a write it makes
        # before that (a clone that ends first) is refused by the store ("write refused by
        # fencing" in its log). Which comes first is a race, so the refusal is shown here: a
        # write carrying one of m1's old tokens changes nothing
        with site.store() as store:
            vm = next(v for v in store.list_vms(pool=mine[0]) if v.state.value == "ready")
            with pytest.raises(Fenced):
                store.fenced(old_tokens.get).update_vm(vm.name, reason="written late")
            assert store.get_vm(vm.name) == vm
        # m1 rejoins as a standby and takes its share again; the VMs its late clones made at the
        # provider are found by the owners' reconcile and destroyed: nothing leaks, nothing doubles
        wait_for(lambda: site.managers().get("m1", {}).get("state") in ("Standby", "Acquiring", "Active"), 15,
                 "m1 back in the registry")
        wait_for(lambda: len(site.holdings()) == 2, 20, "m1 holding pools again")
        site.wait_converged(90)
    finally:
        site.stop_all()


def test_sigterm_hands_the_pools_over_at_once(site: Site) -> None:
    m1 = site.manager("m1")
    site.manager("m2")
    site.api("a1")
    site.wait_converged(60)
    wait_for(lambda: len(site.holdings()) == 2, 15, "pools spread")
    mine = site.holdings()["m1"]
    start = time.monotonic()
    m1.signal(signal.SIGTERM)
    moved = wait_for(lambda: all(site.owners().get(p) == "m2" for p in mine), TTL, "handover")
    assert moved < TTL / 2 + 1.0, f"the handover took {moved:.2f} s: it waited for the lease to expire"
    assert m1.proc.wait(30) in (0, -signal.SIGTERM)
    assert "m1" not in site.managers()
    assert time.monotonic() - start < 30
    site.wait_converged(60)


def test_redis_restarting_under_load_gives_503s_with_a_reason_and_loses_no_record(
        site: Site, redis_server: RedisServer) -> None:
    site.manager("m1")
    site.manager("m2")
    api = site.api("a1")
    site.wait_converged(60)
    load = Load([api.url], list(POOLS), clients=4)
    try:
        time.sleep(1.0)
        before = {vm.name for vm in site.records()}
        redis_server.stop()
        answer = httpx.post(f"{api.url}/vm/alpha", timeout=10)
        assert answer.status_code == 503 and "Redis" in answer.json()["reason"], answer.text
        time.sleep(2 * TTL)  # long enough for every lease to run out
        redis_server.start()
        time.sleep(2.0)
    finally:
        load.stop()
    assert load.duplicates() == [] and load.server_errors() == 0, (load.duplicates(), load.statuses)
    site.wait_converged(90)
    after = {vm.name: vm for vm in site.records()}
    with site.store() as store:
        gone = [n for n in before - set(after) if store.get_vm(n) is None]
    assert gone == [], f"records lost across the restart: {gone[:10]}"


def test_two_apis_and_two_managers_under_32_clients(tmp_path: Path, redis_server: RedisServer) -> None:
    """Each client keeps its VM a second, then returns it: pools sized for that never run dry,
    so every answer is a 200 (no 5xx at all, not even an empty pool's 503)."""
    site = Site(tmp_path, redis_server, {"alpha": 16, "beta": 16, "gamma": 12, "delta": 12},
                lease_ttl=TTL, renew_every=0.5, task_limit=16)
    try:
        site.manager("m1")
        site.manager("m2")
        apis = [site.api("a1"), site.api("a2")]
        site.wait_converged(60)
        load = Load([a.url for a in apis], list(site.pools), clients=32, keep=0.0, hold=1.0)
        time.sleep(30)
        load.stop()
        print(f"32 clients, 30 s: {len(load.handed)} checkouts, answers {load.statuses}")
        assert len(load.handed) > 500 and load.duplicates() == [], load.duplicates()
        assert load.server_errors(empty_ok=False) == 0 and not load.errors, (load.statuses, load.errors[:5])
        site.wait_converged(90)
    finally:
        site.stop_all()
