"""The servers of ``corral bench api`` and the set-ups it measures, each in processes of its own.

- **baseline**: :mod:`corral.bench.api_server`'s canned ASGI app, one process;
- **sqlite, 1 process**: a real corral (``--role all``) on the sqlite store in the run's
  temporary directory;
- **Redis, 1 process**: the same corral (``--role all``) on a redis-server the benchmark starts
  with persistence on (an append-only file in the temporary directory), as production runs it;
- **Redis, N processes**: N API processes (``--role api``, each on a port of its own) and one
  ``corral serve --role manager`` on such a redis-server; the load client spreads its
  connections over the N ports.

Every corral process reads the same configuration (:func:`write_config`: a fast simulator, one
pool) but for the store. A set-up is measured once its pool is full: with Redis, the manager
fills it before the first measurement and after each one. :class:`Deployment` is what a
measurement needs of a running set-up: its URLs, the process ids whose CPU counts, its pool.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from corral.bench.common import free_port, process_cpu_seconds
from corral.bench.redisd import RedisServer

POOL = "bench"
START_TIMEOUT_S = 60.0
STORES = ("sqlite", "redis")
REDIS_SITE = "bench"


# -- what is measured ----------------------------------------------------------------------


@dataclass(frozen=True)
class Setup:
    """corral on ``store`` in ``processes`` API processes: one process is ``--role all``; more
    are that many ``--role api`` processes and one ``--role manager``."""

    store: str
    processes: int

    @property
    def name(self) -> str:
        return f"{self.store}-{self.processes}"

    @property
    def label(self) -> str:
        if self.processes == 1:
            return f"{self.store}, 1 process"
        return f"{self.store}, {self.processes} API processes + 1 manager"


def choose_setups(store: str, processes: Sequence[int]) -> list[Setup]:
    """The set-ups of ``--store`` (sqlite, redis or both) and ``--processes``, sqlite first.
    sqlite serves one process only (corral refuses ``--role api`` and ``manager`` on it), so it
    is measured with 1 process alone. Raises ValueError naming what cannot be run."""
    if store not in (*STORES, "both"):
        raise ValueError(f"--store must be sqlite, redis or both, got {store!r}")
    if not processes or min(processes) < 1:
        raise ValueError("--processes must be whole numbers >= 1")
    counts = sorted(set(processes))
    stores = STORES if store == "both" else (store,)
    chosen = [Setup(s, n) for s in stores for n in counts if s == "redis" or n == 1]
    if not chosen:
        raise ValueError("the sqlite store serves one process only (corral refuses a second one on it): "
                         "add 1 to --processes, or use --store redis")
    return chosen


# -- the configuration -----------------------------------------------------------------------


def store_section(store: str, directory: Path) -> dict[str, Any]:
    if store == "sqlite":
        return {"type": "sqlite", "path": str(directory / "corral.db")}
    return {"type": "redis", "site": REDIS_SITE}


def write_config(directory: Path, pool_size: int, store: str = "sqlite", redis_port: int | None = None,
                 api: dict[str, Any] | None = None) -> Path:
    """A corral configuration in ``directory``: a fast simulator, one pool, the sqlite store in
    ``directory`` or the Redis store on 127.0.0.1:``redis_port``; ``api`` is its ``:api:``
    section (none: the defaults)."""
    doc: dict[str, Any] = {
        ":providers": {":sim": {
            "provider_class": "sim",
            "time_scale": 0.001,  # 1 simulated second = 1 ms: a clone takes 2.5 ms, a boot 10 ms
            # hosts of 4,096 VMs of 64 MiB each, at least 8: room for the pool and a quarter more, the
            # VMs on their way out
            "hosts": max(8, -(-pool_size * 5 // 4 // 4096)),
            "concurrency": 64,
            "template_defaults": {"cpus": 1, "memory_mb": 64},
            "vm_cpu_load": 0.005,  # and ~13 MHz each, so CPU does not bound them either
            "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0},
        }},
        ":store": store_section(store, directory),
        ":scheduling": {"vcpu_load": 0.005},  # placement expects what the simulator's VMs use
        ":config": {"site_name": "corral bench", "task_limit": 200, "domain": "bench.example", "check_interval": 5},
        ":pools": [{"name": POOL, "template": "templates/bench", "size": pool_size, "provider": "sim"}],
    }
    if store == "redis":
        if redis_port is None:
            raise ValueError("a configuration on the Redis store needs the redis-server's port")
        doc[":redis"] = {"server": "127.0.0.1", "port": redis_port}
    if api:
        doc[":api"] = dict(api)
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# -- one process -----------------------------------------------------------------------------


def _ready(port: int) -> int:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v3/status?view=pools", timeout=5) as answer:
        return int(json.loads(answer.read())["pools"][POOL]["ready"])


class Server:
    """One child process (its output goes to ``<name>.log`` in ``directory``); ``port`` is where
    it answers HTTP, None for a manager."""

    def __init__(self, name: str, args: list[str], directory: Path, *, port: int | None = None,
                 profiling: bool = False) -> None:
        self.name = name
        self.port = port
        self.profiling = profiling
        self.log = directory / f"{name}.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.name} process exited with {self.process.returncode}:\n"
                               f"{self.log.read_text(errors='replace')[-3000:]}")

    def wait_listening(self) -> None:
        if self.port is None:
            return
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._alive()
            try:
                with urllib.request.urlopen(f"{self.url}/api/v3/status?view=status", timeout=1):
                    return
            except urllib.error.HTTPError:
                return  # it answers
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {self.name} process did not answer within {START_TIMEOUT_S} s") from None
                time.sleep(0.05)

    def wait_full(self, size: int) -> float:
        """Wait until the pool, as this process's API shows it, has ``size`` ready VMs; the
        seconds it took."""
        assert self.port is not None
        started = time.monotonic()
        deadline = started + START_TIMEOUT_S
        ready = 0
        while time.monotonic() < deadline:
            self._alive()
            try:
                ready = _ready(self.port)
            except (OSError, urllib.error.URLError, KeyError, ValueError):
                ready = 0
            if ready >= size:
                return time.monotonic() - started
            time.sleep(0.05)
        raise RuntimeError(f"the pool did not fill within {START_TIMEOUT_S} s ({ready}/{size} ready)")

    def cpu_seconds(self) -> float | None:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        """Stop it as Ctrl-C would (a profiling server then writes its statistics); kill it after 30 s."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
                raise RuntimeError(f"the {self.name} process did not stop within 30 s:\n"
                                   f"{self.log.read_text(errors='replace')[-3000:]}") from None


def api_server(name: str, directory: Path, kind: str, *, config: Path | None = None, role: str = "all",
               profile: Path | None = None) -> Server:
    """A process of :mod:`corral.bench.api_server` on a free port: the baseline or corral."""
    port = free_port()
    args = [sys.executable, "-m", "corral.bench.api_server", kind, "--port", str(port)]
    if config is not None:
        args += ["--config", str(config), "--role", role, "--manager-id", name]
    if profile is not None:
        args += ["--profile", str(profile)]
    return Server(name, args, directory, port=port, profiling=profile is not None)


def manager(name: str, directory: Path, config: Path) -> Server:
    """``corral serve --role manager``: the pools, no API."""
    args = [sys.executable, "-m", "corral.cli", "serve", "--config", str(config), "--role", "manager",
            "--manager-id", name, "--log-level", "warning"]
    return Server(name, args, directory)


# -- a running set-up --------------------------------------------------------------------------


@dataclass
class Deployment:
    """A running set-up: the processes answering the API (``api``), the others whose CPU counts
    (a manager), and the redis-server."""

    name: str
    api: list[Server]
    others: list[Server] = field(default_factory=list)
    redis: RedisServer | None = None

    @property
    def urls(self) -> list[str]:
        return [server.url for server in self.api]

    @property
    def profiling(self) -> list[Server]:
        return [server for server in self.api if server.profiling]

    def pids(self) -> dict[str, int]:
        """Every server-side process of the set-up, by name."""
        pids = {server.name: server.process.pid for server in (*self.api, *self.others)}
        if self.redis is not None and self.redis.proc is not None:
            pids["redis-server"] = self.redis.proc.pid
        return pids

    def wait_full(self, size: int) -> float:
        return self.api[0].wait_full(size)


def _started(stack: ExitStack, server: Server) -> Server:
    stack.callback(server.stop)
    return server


@contextmanager
def baseline(directory: Path) -> Iterator[Deployment]:
    with ExitStack() as stack:
        server = _started(stack, api_server("baseline", directory, "baseline"))
        server.wait_listening()
        yield Deployment("baseline", [server])


def profile_path(profile: Path, setup: Setup, index: int) -> Path:
    """Where API process ``index`` (from 1) of ``setup`` writes its profile: next to ``profile``,
    named after it, the set-up and the process (``api.sqlite-1.1.prof``)."""
    return profile.with_name(f"{profile.stem}.{setup.name}.{index}{profile.suffix}")


@contextmanager
def deploy(setup: Setup, directory: Path, pool_size: int, profile: Path | None = None,
           api: dict[str, Any] | None = None) -> Iterator[Deployment]:
    """Start ``setup`` in ``directory`` (its redis-server too), with ``api`` as the ``:api:``
    section of its configuration; stop all of it on leaving."""
    directory.mkdir(parents=True, exist_ok=True)

    def profiled(index: int) -> Path | None:
        return None if profile is None else profile_path(profile, setup, index)

    with ExitStack() as stack:
        redis = None
        if setup.store == "redis":
            redis = RedisServer(workdir=directory, persist=True).start()
            stack.callback(redis.stop)
        config = write_config(directory, pool_size, setup.store, redis.port if redis else None, api)
        if setup.processes == 1:
            api = [_started(stack, api_server("corral", directory, "corral", config=config, profile=profiled(1)))]
            others = []
        else:
            others = [_started(stack, manager("manager", directory, config))]
            api = [_started(stack, api_server(f"api-{i}", directory, "corral", config=config, role="api",
                                              profile=profiled(i)))
                   for i in range(1, setup.processes + 1)]
        for server in api:
            server.wait_listening()
        yield Deployment(setup.name, api, others, redis)
