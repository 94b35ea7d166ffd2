"""Test helpers: a fast simulator, a real sqlite store, a pool manager harness, polling."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from corral.bench.common import free_port
from corral.config import ConfigError, parse_config
from corral.domain.models import Pool
from corral.domain.states import VmState
from corral.pools.manager import PoolManager
from corral.pools.settings import ManagerSettings
from corral.providers.sim import SimProvider, SimSettings
from corral.runner import RunnerSettings
from corral.store.sqlite import SqliteStore

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "tests" / "fixtures" / "vmpooler.yaml.example"  # vmpooler's example configuration
SIM_ONLY = {":providers": {":sim": {"provider_class": "sim"}}}  # the least configuration that loads


def problems_of(doc: dict[str, Any]) -> list[str]:
    """The problems loading ``doc`` (with :data:`SIM_ONLY`'s providers unless it has its own) reports."""
    with pytest.raises(ConfigError) as err:
        parse_config({**SIM_ONLY, **doc})
    return err.value.problems

# 1 simulated second = 1 ms: a clone takes 2.5 ms, a boot 10 ms.
FAST_SIM: dict[str, Any] = {
    "time_scale": 0.001,
    "hosts": 4,
    "template_defaults": {"cpus": 1, "memory_mb": 1024},
    "latency": {"create_call": 0.5, "create_per_vm": 2.0, "boot": 10.0, "destroy": 1.0, "migrate": 1.0},
}


def sim_settings(**overrides: Any) -> SimSettings:
    data = {**FAST_SIM, **overrides}
    return SimSettings.model_validate(data)


def _polls(timeout: float):  # type: ignore[no-untyped-def]
    """Yield until ``timeout`` seconds have passed (the caller sleeps between polls)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        yield


def _timed_out(timeout: float, value: Any) -> AssertionError:
    return AssertionError(f"condition not met within {timeout}s (last value: {value!r})")


async def eventually(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """Poll ``check`` until it returns something truthy; fail with its last value after ``timeout``."""
    value = None
    for _ in _polls(timeout):
        if value := check():
            return value
        await asyncio.sleep(interval)
    raise _timed_out(timeout, value)


def wait_until(check: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> Any:
    """:func:`eventually` for code that is not async."""
    value = None
    for _ in _polls(timeout):
        if value := check():
            return value
        time.sleep(interval)
    raise _timed_out(timeout, value)


def ready_counts(store: SqliteStore) -> dict[str, int]:
    return {pool: c.get(VmState.READY, 0) for pool, c in store.counts().items()}


# The runner of most tests: a short aggregation window and quick reruns.
QUICK_RUNNER = RunnerSettings(window_s=0.01, retry_delay_s=0.02)


class Harness:
    """A pool manager on a fast simulator and a real sqlite store."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.store = SqliteStore(tmp_path / "corral.db")
        self.provider: SimProvider | None = None
        self.manager: PoolManager | None = None

    async def start(self, pools: list[Pool], *, settings: ManagerSettings | None = None,
                    sim: SimSettings | None = None) -> PoolManager:
        self.provider = SimProvider("sim", sim or sim_settings())
        self.manager = PoolManager(pools, {"sim": self.provider}, self.store,
                                   settings or ManagerSettings(task_limit=10, check_interval=0.05, feed_timeout=1.0,
                                                               runner=QUICK_RUNNER))
        await self.manager.start()
        return self.manager

    async def stop(self) -> None:
        if self.manager is not None:
            await self.manager.stop()
        self.store.close()

    async def wait_full(self, timeout: float = 10.0) -> None:
        assert self.manager is not None
        want = {p.name: p.size for p in self.manager.pools.values() if p.size}
        await eventually(lambda: all(ready_counts(self.store).get(n, 0) == s for n, s in want.items()), timeout)




def quick_config(tmp_path: Path, pools: list[dict[str, Any]], **config: Any) -> dict[str, Any]:
    """A configuration document for the fast simulator and a sqlite store under ``tmp_path``."""
    return {
        ":providers": {":sim": {"provider_class": "sim", **FAST_SIM}},
        ":store": {"path": str(tmp_path / "corral.db")},
        ":config": {"check_interval": 0.05, **config},
        ":runner": {"aggregation_window": 0.01, "retry_delay": 0.02},
        ":pools": pools,
    }


class ServerThread:
    """The real corral HTTP server (uvicorn) on a free loopback port, in a background thread."""

    def __init__(self, document: dict[str, Any]) -> None:
        from corral.config import parse_config
        from corral.runtime import build_service

        config, _ = parse_config(document)
        self.service = build_service(config)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> ServerThread:
        import threading

        from corral.api import create_app
        from corral.api.server import Server, uvicorn_config

        self.server = Server(uvicorn_config(create_app(self.service), self.service.config.api, host="127.0.0.1",
                                            port=self.port, log_config=None, access_log=False, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)

    def wait(self, check: Callable[[], Any], timeout: float = 10.0) -> Any:
        return wait_until(check, timeout)


def corral_with_terminal_stderr(args: list[str], env: dict[str, str], timeout: float = 90.0) -> tuple[int, str, str]:
    """Run ``python -m corral.cli *args`` with standard error on a pseudo-terminal (what a user
    at a terminal sees there) and standard output a pipe: (exit code, stdout, the terminal's text)."""
    import os
    import pty
    import select
    import subprocess
    import sys

    main, side = pty.openpty()
    with subprocess.Popen([sys.executable, "-m", "corral.cli", *args], stdout=subprocess.PIPE, stderr=side,
                          stdin=subprocess.DEVNULL, env=env) as proc:
        os.close(side)
        seen = bytearray()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the other side closed: the process has ended
                    break
                if not chunk:
                    break
                seen += chunk
            elif proc.poll() is not None:
                break
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        code = proc.wait(timeout=max(deadline - time.monotonic(), 1))
    os.close(main)
    return code, out, seen.decode(errors="replace")
