"""``corral bench api``: checkout + return pairs over HTTP, against the HTTP stack's ceiling.

One run starts two servers, each in a process of its own, on free loopback ports:

- **corral**: a real corral (``api_server corral``: the FastAPI app, the pool manager, the
  sqlite store in a temporary directory, a fast simulator) with one pool big enough not to
  run dry; every measurement starts with the pool full;
- **baseline**: a raw ASGI app answering the same two requests with canned JSON
  (``api_server baseline``), served by uvicorn with the same settings (uvloop, httptools,
  no access log): what the HTTP stack alone can do on this machine.

For each client count a separate client process (:mod:`corral.bench.api_client`) holds
that many keep-alive connections, each doing ``POST /api/v3/vm/<pool>`` then ``DELETE
/api/v3/vm/<hostname>`` back to back, first against the baseline, then against corral.
The report gives pairs/s and pair latency percentiles for both and the corral/baseline
ratios. Any error or non-200 answer makes the run not ``ok``. The results, the targets, the
table and the ``docs/benchmarks.md`` rows are in :mod:`corral.bench.api_report`.
"""

from __future__ import annotations

import json
import pstats
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from io import StringIO
from pathlib import Path
from typing import Any

import yaml

from corral.bench.api_client import LoadResult
from corral.bench.api_report import ApiBenchResult, ApiRow
from corral.bench.common import Say, process_cpu_seconds, sayer

POOL = "bench"
START_TIMEOUT_S = 60.0


# -- the servers ---------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(directory: Path, pool_size: int) -> Path:
    """A corral configuration: a fast simulator, the sqlite store in ``directory``, one pool."""
    doc = {
        ":providers": {":sim": {
            "provider_class": "sim",
            "time_scale": 0.001,  # 1 simulated second = 1 ms: a clone takes 2.5 ms, a boot 10 ms
            "hosts": 8,  # 8 x 4,096 VMs of 64 MiB: room for the pool and the VMs on their way out
            "concurrency": 64,
            "template_defaults": {"cpus": 1, "memory_mb": 64},
            "vm_cpu_load": 0.005,  # and ~13 MHz each, so CPU does not bound them either
            "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0},
        }},
        ":store": {"type": "sqlite", "path": str(directory / "corral.db")},
        ":scheduling": {"vcpu_load": 0.005},  # placement expects what the simulator's VMs use
        ":config": {"site_name": "corral bench", "task_limit": 200, "domain": "bench.example", "check_interval": 5},
        ":pools": [{"name": POOL, "template": "templates/bench", "size": pool_size, "provider": "sim"}],
    }
    path = directory / "bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def _get_json(port: int, path: str) -> Any:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as answer:
        return json.loads(answer.read())


def _ready(port: int) -> int:
    return int(_get_json(port, "/api/v3/status?view=pools")["pools"][POOL]["ready"])


class Server:
    """One server process (see :mod:`corral.bench.api_server`); its output goes to a log file."""

    def __init__(self, kind: str, directory: Path, *, config: Path | None = None, profile: Path | None = None):
        self.kind = kind
        self.profiling = profile is not None
        self.port = free_port()
        self.log = directory / f"{kind}-server.log"
        args = [sys.executable, "-m", "corral.bench.api_server", kind, "--port", str(self.port)]
        if config is not None:
            args += ["--config", str(config)]
        if profile is not None:
            args += ["--profile", str(profile)]
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def _alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.kind} server exited with {self.process.returncode}:\n"
                               f"{self.log.read_text()[-3000:]}")

    def wait_listening(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while True:
            self._alive()
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the {self.kind} server did not listen within {START_TIMEOUT_S} s") from None
                time.sleep(0.05)

    def wait_full(self, size: int) -> float:
        """Wait until the corral server's pool has ``size`` ready VMs; the seconds it took."""
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
        """User + system CPU the server process used so far (Linux); None where unknown."""
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
                raise RuntimeError(f"the {self.kind} server did not stop within 30 s:\n"
                                   f"{self.log.read_text()[-3000:]}") from None


@contextmanager
def running(kind: str, directory: Path, **kw: Any) -> Iterator[Server]:
    server = Server(kind, directory, **kw)
    try:
        server.wait_listening()
        yield server
    finally:
        server.stop()


def run_client(server: Server, clients: int, duration: float, warmup: float) -> LoadResult:
    """One load run in a client process of its own; a profiling server profiles the measured part."""
    args = [sys.executable, "-m", "corral.bench.api_client", "--port", str(server.port), "--pool", POOL,
            "--clients", str(clients), "--duration", str(duration), "--warmup", str(warmup)]
    cpu_before = server.cpu_seconds()
    client = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if server.profiling:
            time.sleep(warmup + 0.2)  # the client's start-up and warm-up
            server.process.send_signal(signal.SIGUSR1)
        out, err = client.communicate(timeout=duration + warmup + 120)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
        if server.profiling:
            server.process.send_signal(signal.SIGUSR2)
    cpu_after = server.cpu_seconds()
    if client.returncode != 0:
        raise RuntimeError(f"the load client failed ({client.returncode}):\n{err[-3000:]}")
    result = LoadResult.from_dict(json.loads(out.strip().splitlines()[-1]))
    checkouts = result.statuses.get("POST 200", 0)  # the pairs of warm-up and measured part
    if cpu_before is not None and cpu_after is not None and checkouts:
        result.server_cpu_ms_per_pair = round((cpu_after - cpu_before) * 1000.0 / checkouts, 3)
    return result


# -- one run -------------------------------------------------------------------------------


def check_settings(clients: list[int], duration: float, warmup: float, pool_size: int) -> None:
    """Raise ValueError, saying what is wrong, for settings a run cannot use."""
    if not clients or min(clients) < 1 or duration <= 0 or warmup < 0 or pool_size < 1:
        raise ValueError("need client counts >= 1, duration > 0, warmup >= 0 and pool_size >= 1")


def run_api(*, clients: list[int], duration: float = 5.0, warmup: float = 1.0, pool_size: int = 2000,
            profile: Path | None = None, progress: Say | None = None) -> ApiBenchResult:
    """Measure the baseline, then corral, at each client count."""
    check_settings(clients, duration, warmup, pool_size)
    say = sayer(progress)
    rows = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-api-") as tmp:
        directory = Path(tmp)
        config = write_config(directory, pool_size)
        with running("baseline", directory) as baseline, \
                running("corral", directory, config=config, profile=profile) as corral:
            for n in clients:
                say(f"baseline: {n} clients for {warmup:g} + {duration:g} s ...")
                base = run_client(baseline, n, duration, warmup)
                say(f"  {base.pairs_per_s:,.0f} pairs/s, p99 {base.p99_ms:.2f} ms, {base.errors} errors")
                say(f"corral: waiting for {pool_size} ready VMs ...")
                say(f"  full after {corral.wait_full(pool_size):.1f} s")
                say(f"corral: {n} clients for {warmup:g} + {duration:g} s ...")
                ours = run_client(corral, n, duration, warmup)
                say(f"  {ours.pairs_per_s:,.0f} pairs/s, p99 {ours.p99_ms:.2f} ms, {ours.errors} errors")
                rows.append(ApiRow(clients=n, corral=ours, baseline=base))
    return ApiBenchResult(duration_s=duration, warmup_s=warmup, pool_size=pool_size, rows=rows)


def profile_summary(path: Path, limit: int = 30) -> str:
    """The top of a cProfile dump: by own time, then by cumulative time."""
    out = StringIO()
    stats = pstats.Stats(str(path), stream=out)
    stats.strip_dirs()
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    return out.getvalue()
