"""Start many ``corral serve`` processes cheaply: one process imports corral once, then forks
a child per start, which runs ``python -m corral.cli`` with the given arguments.

Each child is a real, separate corral process (its own pid, sockets, store connections and
asyncio loop); only the import of Python modules (about 2 s of CPU per start, most of the
cost of a restart in the crash suite) is shared, as a fork server shares it. The zygote itself
starts no thread and no loop, so forking it is safe. It reaps its children (SIGCHLD ignored),
so a child's end is seen from outside as its pid going away.

Protocol: one JSON object per line on stdin, ``{"argv": [...], "log": path}``; the zygote
answers each with the child's pid on a line of stdout. End of stdin ends the zygote (not its
children: :class:`Zygote` kills those it started).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path


class Child:
    """One ``corral serve`` forked by the zygote."""

    def __init__(self, name: str, pid: int, log: Path, port: int | None) -> None:
        self.name = name
        self.pid = pid
        self.log_path = log
        self.port = port
        self.url = f"http://127.0.0.1:{port}/api/v3" if port else None

    def alive(self) -> bool:
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        return True

    def _wait_gone(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return True
            time.sleep(0.005)
        return False

    def kill9(self) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGKILL)
        if not self._wait_gone(10):
            raise RuntimeError(f"{self.name} (pid {self.pid}) did not die of SIGKILL")

    def terminate(self, timeout: float = 30) -> None:
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
        if not self._wait_gone(timeout):
            self.kill9()

    def tail(self, n: int = 3000) -> str:
        return self.log_path.read_text(errors="replace")[-n:] if self.log_path.exists() else ""


class Zygote:
    """The fork server, as a child process of the caller."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "corral.bench.zygote"], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, bufsize=1)
        self.children: list[Child] = []

    def start(self, name: str, argv: list[str], log: Path, port: int | None = None) -> Child:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps({"argv": argv, "log": str(log)}) + "\n")
        self.proc.stdin.flush()
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError("the zygote ended")
        child = Child(name, int(line), log, port)
        self.children.append(child)
        return child

    def close(self) -> None:
        for child in self.children:
            if child.alive():
                child.kill9()
        self.children.clear()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout is not None:
            self.proc.stdout.close()

    def __enter__(self) -> Zygote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _die_with_parent() -> None:
    """Linux: SIGKILL this process when the zygote ends (which it does when its caller ends), so
    that a caller killed mid-run leaves no corral behind."""
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _run_child(argv: list[str], log: str) -> None:
    """In the forked child: become ``python -m corral.cli *argv`` writing to ``log``."""
    import runpy

    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    _die_with_parent()
    out = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out, 1)
    os.dup2(out, 2)
    os.close(out)
    os.close(null)
    sys.stdin = open(0, closefd=False)  # noqa: SIM115
    sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
    sys.argv = ["corral", *argv]
    code = 0
    try:
        runpy.run_module("corral.cli", run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except BaseException:  # noqa: BLE001 - the child's last words go to its log
        import traceback

        traceback.print_exc()
        code = 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(code)


def main() -> None:
    # What every start would import: the API, the runtime and what they pull in.
    import corral.api  # noqa: F401
    import corral.runtime  # noqa: F401

    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # children are reaped by the kernel
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _run_child(list(request["argv"]), request["log"])
        print(pid, flush=True)


if __name__ == "__main__":
    main()
