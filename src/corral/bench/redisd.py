"""redis-server as a child process, for the Redis tests and benchmarks.

:class:`RedisServer` starts Debian's ``redis-server`` on a free loopback port with no
persistence (``--save "" --appendonly no``), and can stop and start it again on the same port
(a restart under load). ``CORRAL_REDIS_SERVER`` may name another binary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from corral.bench.common import free_port


class RedisUnavailable(RuntimeError):
    """redis-server cannot be found or started here; the message says what is missing."""


def binary() -> str:
    override = os.environ.get("CORRAL_REDIS_SERVER")
    if override:
        return override
    found = shutil.which("redis-server") or shutil.which("redis-server", path="/usr/bin:/usr/sbin")
    if found is None:
        raise RedisUnavailable("redis-server is not installed: apt-get install redis-server (make test installs it)")
    return found


class RedisServer:
    """One redis-server on 127.0.0.1:``port`` (a free one by default), password optional."""

    def __init__(self, port: int | None = None, *, password: str | None = None, workdir: Path | None = None,
                 persist: bool = False) -> None:
        self.port = port or free_port()
        self.password = password
        self.workdir = workdir
        self.persist = persist  # an append-only file in ``workdir``: a restart keeps every key
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        args = [binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes" if self.persist else "no", "--protected-mode", "no", "--loglevel", "warning"]
        if self.persist and self.workdir is None:
            raise RedisUnavailable("a persistent redis-server needs a workdir for its append-only file")
        if self.password:
            args += ["--requirepass", self.password]
        if self.workdir is not None:
            args += ["--dir", str(self.workdir)]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RedisUnavailable(f"redis-server exited at start: {err.strip()[-500:]}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return self
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RedisUnavailable(f"redis-server did not listen on port {self.port} within {timeout:.0f} s")

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None

    def restart(self) -> None:
        """Stop and start again on the same port (without ``persist``, every key is gone)."""
        self.stop()
        self.start()

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
