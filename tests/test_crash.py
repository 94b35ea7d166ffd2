"""kill -9 at any moment loses nothing: a real corral process killed while filling and destroying.

After each restart: every VM the simulator has in a pool is known to the store as ready or
running, every ready/running VM in the store exists at the simulator (nothing leaked, nothing
lost), a checked-out VM stays checked out and is never handed out again, and pools converge.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import yaml

from corral.domain.states import VmState
from corral.providers.sim import SimProvider, SimSettings
from corral.store.sqlite import SqliteStore
from helpers import free_port

POOLS = {"alpha": 12, "beta": 8, "gamma": 5}


def write_config(tmp_path: Path) -> tuple[Path, dict]:
    sim = {
        "provider_class": "sim",
        "time_scale": 0.02,  # a clone call takes 50 ms, a boot 200 ms
        "hosts": 3,
        "state_file": str(tmp_path / "sim-world.db"),
        "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 2.0},
    }
    doc = {
        ":providers": {":sim": sim},
        ":store": {"path": str(tmp_path / "corral.db")},
        ":config": {"task_limit": 4, "check_interval": 0.2},
        ":pools": [{"name": n, "template": f"t/{n}", "size": s} for n, s in POOLS.items()],
    }
    path = tmp_path / "corral.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path, sim


class Corral:
    def __init__(self, config: Path, log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/api/v3"
        self.log = log.open("a")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "corral.cli", "serve", "--config", str(config), "--port", str(self.port)],
            stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while True:
            assert self.proc.poll() is None, f"corral exited: {log.read_text()[-3000:]}"
            try:
                httpx.get(f"{self.url}/status", timeout=1)
                return
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "corral did not start"
                time.sleep(0.05)

    def status(self) -> dict:
        return httpx.get(f"{self.url}/status", timeout=5).json()

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        # uvicorn shuts down cleanly, then re-raises the signal it caught
        assert self.proc.wait(15) in (0, -signal.SIGTERM)
        self.log.close()


def wait_converged(corral: Corral, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = corral.status()
        q = status["queue"]
        full = all(status["pools"][n]["ready"] == s for n, s in POOLS.items())
        if full and q["pending"] == 0 and q["completed"] == 0:
            return status
        time.sleep(0.05)
    raise AssertionError(f"pools did not converge: {status}")


def check_invariants(tmp_path: Path, sim: dict, checked_out: set[str]) -> None:
    import asyncio

    async def sim_vms() -> set[str]:
        settings = SimSettings.model_validate({k: v for k, v in sim.items() if k != "provider_class"})
        provider = SimProvider("sim", settings)
        await provider.connect()
        try:
            return {v.name for v in await provider.list_vms() if v.pool in POOLS}
        finally:
            await provider.close()

    at_sim = asyncio.run(sim_vms())
    store = SqliteStore(tmp_path / "corral.db")
    try:
        live = {v.name: v for v in store.list_vms(states=[s for s in VmState if s is not VmState.DESTROYED])}
    finally:
        store.close()
    assert set(live) == at_sim, f"leaked: {at_sim - set(live)}, lost: {set(live) - at_sim}"
    assert {v.state for v in live.values()} <= {VmState.READY, VmState.RUNNING}
    running = {n for n, v in live.items() if v.state is VmState.RUNNING}
    assert running == checked_out, "checked-out VMs stay checked out, and only they"
    for pool, size in POOLS.items():
        assert sum(1 for v in live.values() if v.pool == pool and v.state is VmState.READY) == size


def test_kill_9_during_fill_and_destroy_loses_nothing(tmp_path: Path):
    config, sim = write_config(tmp_path)
    log = tmp_path / "corral.log"
    handed_out: list[str] = []
    checked_out: set[str] = set()

    # Kill during the first fill, at a few different moments.
    for delay in (0.15, 0.35, 0.6):
        corral = Corral(config, log)
        time.sleep(delay)
        resp = httpx.post(f"{corral.url}/vm/alpha", timeout=5)
        if resp.status_code == 200:
            name = resp.json()["alpha"]["hostname"]
            handed_out.append(name)
            checked_out.add(name)
        corral.kill9()

    corral = Corral(config, log)
    wait_converged(corral)
    corral.stop()
    check_invariants(tmp_path, sim, checked_out)

    # Kill while VMs are being returned (destroys under way) and pools refill.
    corral = Corral(config, log)
    wait_converged(corral)
    for name in sorted(checked_out)[:2]:
        assert httpx.delete(f"{corral.url}/vm/{name}", timeout=5).status_code == 200
        checked_out.discard(name)
    for _ in range(6):
        resp = httpx.post(f"{corral.url}/vm/beta+gamma", timeout=5)
        if resp.status_code == 200:
            body = resp.json()
            for pool in ("beta", "gamma"):
                handed_out.append(body[pool]["hostname"])
                checked_out.add(body[pool]["hostname"])
    time.sleep(0.03)
    corral.kill9()

    corral = Corral(config, log)
    wait_converged(corral)
    for name in checked_out:
        info = httpx.get(f"{corral.url}/vm/{name}", timeout=5).json()
        assert info[name]["state"] == "running", f"{name} must still be checked out after the restart"
    corral.stop()
    check_invariants(tmp_path, sim, checked_out)
    assert len(handed_out) == len(set(handed_out)), "no VM is ever handed out twice"
    assert "Traceback" not in log.read_text()
