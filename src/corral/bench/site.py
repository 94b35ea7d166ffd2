"""A site of real corral processes on one real redis-server, with the simulator, for the
control-plane tests and the failover benchmark.

:class:`Site` writes one configuration (the Redis store, the simulator with a ``state_file``
every process shares, short sweeps), starts ``corral serve --role manager`` and ``--role api``
processes, signals them (``kill -9``, ``SIGSTOP``/``SIGCONT``, ``SIGTERM``) and reads what the
store, the simulator's file and the managers' registry say.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from corral.bench.common import free_port
from corral.bench.redisd import RedisServer
from corral.domain.models import Vm
from corral.domain.states import ACTIVE_STATES, VmState
from corral.store.redis import RedisStore
from corral.store.redis_keys import Keys

SITE = "site"
# what the simulator does, in its seconds; ``time_scale`` below makes a clone 50 ms, a boot 200 ms
LATENCY = {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 2.0}


class Process:
    """One ``corral serve`` child process; ``url`` is its API (None for a manager)."""

    def __init__(self, name: str, args: list[str], log: Path, port: int | None) -> None:
        self.name = name
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api/v3" if port else None
        self.log_path = log
        self._log = log.open("a")
        self.proc = subprocess.Popen(args, stdout=self._log, stderr=subprocess.STDOUT)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def kill9(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self._log.close()

    def terminate(self, timeout: float = 60) -> int:
        """SIGTERM, and wait for the exit; its return code."""
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        self._log.close()
        return code

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:]


class Site:
    """Managers and API processes on one Redis (``redis``, started by the caller) and one
    simulated cluster (a state file in ``workdir``)."""

    def __init__(self, workdir: Path, redis_server: RedisServer, pools: dict[str, int], *,
                 lease_ttl: float = 5.0, renew_every: float = 1.0, check_interval: float = 0.5,
                 task_limit: int = 8, hosts: int = 3, time_scale: float = 0.02,
                 reconcile_interval: float = 5.0) -> None:
        self.workdir = workdir
        self.redis_server = redis_server
        self.pools = dict(pools)
        self.state_file = workdir / "sim-world.db"
        self.sim: dict[str, Any] = {"provider_class": "sim", "time_scale": time_scale, "hosts": hosts,
                                    "state_file": str(self.state_file), "latency": LATENCY}
        doc = {
            ":providers": {":sim": self.sim},
            ":store": {"type": "redis", "site": SITE},
            ":redis": {"server": "127.0.0.1", "port": redis_server.port},
            ":ha": {"lease_ttl": lease_ttl, "renew_every": renew_every},
            ":config": {"task_limit": task_limit, "check_interval": check_interval},
            ":monitoring": {"reconcile_interval": reconcile_interval},
            ":pools": [{"name": n, "template": f"t/{n}", "size": s} for n, s in self.pools.items()],
        }
        self.config = workdir / "corral.yaml"
        self.config.write_text(yaml.safe_dump(doc))
        self.processes: list[Process] = []
        self.keys = Keys(SITE)

    # -- processes ---------------------------------------------------------------------------
    def _start(self, name: str, role: str, port: int | None) -> Process:
        args = [sys.executable, "-m", "corral.cli", "serve", "--config", str(self.config), "--role", role,
                "--manager-id", name]
        if port is not None:
            args += ["--port", str(port)]
        process = Process(name, args, self.workdir / f"{name}.log", port)
        self.processes.append(process)
        return process

    def manager(self, name: str) -> Process:
        return self._start(name, "manager", None)

    def api(self, name: str, timeout: float = 30) -> Process:
        process = self._start(name, "api", free_port())
        deadline = time.monotonic() + timeout
        while True:
            if not process.alive():
                raise RuntimeError(f"{name} exited: {process.tail()}")
            try:
                httpx.get(f"{process.url}/status?view=status", timeout=1)
                return process
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} did not answer within {timeout:.0f} s: {process.tail()}") from None
                time.sleep(0.05)

    def stop_all(self) -> None:
        for process in self.processes:
            if process.alive():
                if process.proc.returncode is None:
                    process.signal(signal.SIGCONT)
                process.proc.kill()
                process.proc.wait(10)
        self.processes.clear()

    # -- what the site holds -------------------------------------------------------------------
    def store(self) -> RedisStore:
        return RedisStore("127.0.0.1", self.redis_server.port, site=SITE)

    def client(self) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=self.redis_server.port)

    def owners(self) -> dict[str, str]:
        """pool -> the manager holding its lease (pools with none are absent)."""
        with self.client() as client:
            names = list(self.pools)
            holders = client.mget([self.keys.lease(p) for p in names])
        return {p: h.decode() for p, h in zip(names, holders, strict=True) if h is not None}

    def holdings(self) -> dict[str, set[str]]:
        """manager -> the pools whose lease it holds."""
        out: dict[str, set[str]] = {}
        for pool, manager in self.owners().items():
            out.setdefault(manager, set()).add(pool)
        return out

    def fence(self, pool: str) -> int:
        with self.client() as client:
            value = client.get(self.keys.fence(pool))
        return int(value) if value is not None else 0

    def managers(self) -> dict[str, dict[str, Any]]:
        """The live managers' published states."""
        with self.client() as client:
            raw = client.hgetall(self.keys.managers)
            alive = {k.decode() for k in raw if client.exists(self.keys.alive(k.decode()))}
        return {k.decode(): json.loads(v) for k, v in raw.items() if k.decode() in alive}

    def sim_vms(self) -> dict[str, str]:
        """VM name -> pool, of every VM the simulator's file holds in one of the site's pools."""
        if not self.state_file.exists():
            return {}
        db = sqlite3.connect(self.state_file, timeout=10)
        try:
            rows = db.execute("SELECT name, pool FROM sim_vms").fetchall()
        finally:
            db.close()
        return {name: pool for name, pool in rows if pool in self.pools}

    def records(self) -> list[Vm]:
        with self.store() as store:
            return store.list_vms(states=ACTIVE_STATES)

    def converged(self) -> bool:
        """Every pool full of ready VMs, nothing pending or being destroyed, and the simulator
        and the store agree exactly on which VMs exist."""
        records = self.records()
        ready: dict[str, int] = {}
        for vm in records:
            if vm.state is VmState.READY:
                ready[vm.pool] = ready.get(vm.pool, 0) + 1
            elif vm.state not in (VmState.RUNNING,):
                return False
        if any(ready.get(p, 0) != n for p, n in self.pools.items()):
            return False
        return set(self.sim_vms()) == {vm.name for vm in records}

    def wait_converged(self, timeout: float = 60) -> float:
        """Seconds until :meth:`converged`; AssertionError naming what differs after ``timeout``."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if self.converged():
                return time.monotonic() - start
            time.sleep(0.1)
        records = self.records()
        at_sim = set(self.sim_vms())
        known = {vm.name for vm in records}
        counts: dict[str, dict[str, int]] = {}
        for vm in records:
            counts.setdefault(vm.pool, {}).setdefault(vm.state.value, 0)
            counts[vm.pool][vm.state.value] += 1
        raise AssertionError(f"the site did not converge in {timeout:.0f} s: {counts}; only at the simulator: "
                             f"{sorted(at_sim - known)[:10]}; only in the store: {sorted(known - at_sim)[:10]}")


class Load:
    """Clients checking VMs out of ``pools`` through ``urls`` (round robin) and returning about
    half of them, in threads, until :meth:`stop`. Records every VM handed out and every answer's
    status."""

    def __init__(self, urls: list[str], pools: list[str], clients: int = 4, *, keep: float = 0.5,
                 hold: float = 0.0) -> None:
        import random
        import threading

        self.urls = urls
        self.pools = pools
        self.keep = keep
        self.hold = hold  # seconds a client keeps a VM before it returns it (or asks for the next)
        self.handed: list[str] = []  # every VM name any checkout answered with
        self.statuses: dict[int, int] = {}
        self.errors: list[str] = []  # transport errors (a process killed mid-request)
        self.latencies: list[float] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._random = random.Random(7)
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True) for i in range(clients)]
        for t in self._threads:
            t.start()

    def _count(self, status: int) -> None:
        with self._lock:
            self.statuses[status] = self.statuses.get(status, 0) + 1

    def _run(self, index: int) -> None:
        import random

        rnd = random.Random(index)
        with httpx.Client(timeout=10) as client:
            n = index
            while not self._stop.is_set():
                url = self.urls[n % len(self.urls)]
                pool = self.pools[n % len(self.pools)]
                n += 1
                try:
                    start = time.perf_counter()
                    answer = client.post(f"{url}/vm/{pool}")
                    with self._lock:
                        self.latencies.append(time.perf_counter() - start)
                    self._count(answer.status_code)
                    if answer.status_code != 200:
                        time.sleep(0.02)
                        continue
                    name = answer.json()[pool]["hostname"]
                    with self._lock:
                        self.handed.append(name)
                    if self.hold:
                        self._stop.wait(self.hold)
                    if rnd.random() >= self.keep:
                        self._count(client.delete(f"{url}/vm/{name}").status_code)
                except httpx.HTTPError as exc:
                    with self._lock:
                        self.errors.append(type(exc).__name__)
                    time.sleep(0.05)

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(20)

    def duplicates(self) -> list[str]:
        seen: set[str] = set()
        return sorted({n for n in self.handed if n in seen or seen.add(n)})  # type: ignore[func-returns-value]

    def server_errors(self, *, empty_ok: bool = True) -> int:
        """Answers of 500 and above; with ``empty_ok``, not vmpooler's 503 for an empty pool."""
        return sum(n for status, n in self.statuses.items() if status >= 500 and not (empty_ok and status == 503))
