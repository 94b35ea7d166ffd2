"""What every benchmark shares, one copy each:

- progress (:data:`Say`, :func:`sayer`; :class:`Counting` and :func:`counter` for a count
  of done against total, which a progress bar shows);
- figures: :func:`percentile`, :func:`format_ratio`, :func:`process_cpu_seconds`,
  :func:`ready_vms`; :func:`counted` for "1 VM", "2 VMs";
- the machine line of every result (:func:`machine`);
- ``docs/benchmarks.md``: :func:`paragraph` for section texts, :func:`append_row` and
  :func:`after_table` for tables, :func:`command_line` for the command column,
  :func:`plot_path` and :func:`link_plot` for the figure beside a table;
- timing: :func:`until` (poll a condition against a deadline), :func:`server_gc` (the
  garbage collector as ``corral serve`` sets it) and :func:`quiet_logs`.

It imports nothing heavy: the load client of ``corral bench api`` uses it too.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import platform
import socket
import sys
import textwrap
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from corral.domain.states import VmState
from corral.store.base import Store

Say = Callable[[str], None]
BENCHMARKS_MD = Path("docs/benchmarks.md")


def sayer(progress: Say | None) -> Say:
    """``progress``, or a function that says nothing."""
    return progress or (lambda _m: None)


@runtime_checkable
class Counting(Protocol):
    """A progress reporter that also shows how much of a phase is done."""

    def __call__(self, message: str) -> None: ...

    def count(self, done: float, total: float) -> None: ...


Count = Callable[[float, float], None]


def counter(progress: Say | None) -> Count:
    """``progress.count`` when ``progress`` shows counts, else a function that does nothing."""
    return progress.count if isinstance(progress, Counting) else (lambda _done, _total: None)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


# -- figures --------------------------------------------------------------------------------


def percentile(ordered: Sequence[float], q: float) -> float:
    """The nearest-rank ``q`` percentile (0 < q <= 100) of sorted ``ordered``; 0 when empty."""
    if not ordered:
        return 0.0
    rank = max(1, -(-len(ordered) * q // 100))  # ceil(n * q / 100)
    return float(ordered[int(rank) - 1])


def counted(n: float, noun: str, plural: str | None = None) -> str:
    """``n`` with thousands separators and ``noun``, in the plural unless ``n`` is 1: "1 VM",
    "2,500 VMs", "1 process" / "2 processes" (``plural`` when adding an s is not it)."""
    number = f"{n:,}" if isinstance(n, int) or n != int(n) else f"{int(n):,}"
    return f"{number} {noun if n == 1 else plural or noun + 's'}"


def format_ratio(value: float | None) -> str:
    """``0.42``, or ``1/1,234`` for ratios below 0.01; empty when there is none."""
    if value is None:
        return ""
    if value >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"1/{1 / value:,.0f}"


def process_cpu_seconds(pid: int) -> float | None:
    """User and system CPU time of process ``pid`` so far (Linux); None when /proc cannot tell."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def ready_vms(store: Store, pool: str | None = None) -> int:
    """The ready VMs in ``store``: of ``pool``, or of every pool."""
    counts = store.counts()
    if pool is not None:
        return counts.get(pool, {}).get(VmState.READY, 0)
    return sum(c.get(VmState.READY, 0) for c in counts.values())


def machine() -> str:
    """The machine a result was measured on: cores, CPU model, Python."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}"


# -- docs/benchmarks.md ---------------------------------------------------------------------


def paragraph(text: str) -> str:
    """``text`` wrapped as the rest of docs/benchmarks.md is, and a blank line."""
    return textwrap.fill(text, 95, break_long_words=False, break_on_hyphens=False) + "\n\n"


def append_row(path: Path, header: str, row: str, intro: str = "", after: str | None = None) -> None:
    """Add ``row`` after the last row of the table that starts with ``header``.

    Without such a table in ``path``, ``intro`` (a section heading and its text) and the
    table are added after the table that starts with ``after`` when there is one, else at the
    end of the file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    text = path.read_text() if path.exists() else ""
    if header in text:
        head, tail = text.split(header, 1)
        rest = tail.splitlines(keepends=True)
        rows = []
        while rest and rest[0].startswith("|"):
            rows.append(rest.pop(0))
        path.write_text(head + header + "".join(rows) + row + "".join(rest))
        return
    if after is not None and after in text:
        path.write_text(after_table(text, after, intro + header + row))
        return
    if text and not text.endswith("\n\n"):
        text += "\n" if text.endswith("\n") else "\n\n"
    path.write_text(text + intro + header + row)


def after_table(text: str, header: str, block: str) -> str:
    """``text`` with ``block`` put after the table that starts with ``header``, blank lines around it."""
    head, tail = text.split(header, 1)
    lines = tail.splitlines(keepends=True)
    n = next((i for i, line in enumerate(lines) if not line.startswith("|")), len(lines))
    rest = "".join(lines[n:]).lstrip("\n")
    return head + header + "".join(lines[:n]) + "\n" + block + ("\n" + rest if rest else "")


def plot_path(output: Path, name: str) -> Path:
    """Where ``--record --plot`` writes figure ``name``: beside the markdown file ``output``,
    in a folder named after it (docs/benchmarks.md: docs/benchmarks/NAME.png)."""
    return output.parent / output.stem / f"{name}.png"


def link_plot(text: str, header: str, target: str, caption: str) -> str:
    """``text`` with the image ``target`` shown after the table that starts with ``header``.

    A line already showing ``target`` is replaced (its caption may have changed) wherever it
    is; otherwise the image goes after the table, blank lines around it. Without the table,
    ``text`` is returned as it is."""
    line = f"![{caption}]({target})"
    lines = text.splitlines(keepends=True)
    for i, old in enumerate(lines):
        if old.rstrip("\n").endswith(f"]({target})") and old.startswith("!["):
            lines[i] = line + "\n"
            return "".join(lines)
    if header not in text:
        return text
    return after_table(text, header, line + "\n")


def command_line() -> str:
    """The command being run, as the ``command`` column of docs/benchmarks.md shows it."""
    return " ".join(["corral", *sys.argv[1:]])


# -- timing ---------------------------------------------------------------------------------


async def until(done: Callable[[], bool], what: str, limit_s: float, poll_s: float = 0.001) -> float:
    """Poll ``done`` every ``poll_s``; the perf_counter time it first held. Raises after ``limit_s``."""
    deadline = time.perf_counter() + limit_s
    while not done():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"timed out after {limit_s:.0f} s waiting for {what}")
        await asyncio.sleep(poll_s)
    return time.perf_counter()


@contextlib.contextmanager
def server_gc() -> Iterator[None]:
    """The collector as ``corral serve`` sets it (:func:`corral.api.app.tune_gc`): start-up
    objects frozen, young collections 30 times less often. The previous settings come back
    afterwards."""
    from corral.api.app import tune_gc  # the whole API, for one function: only when measuring

    threshold = gc.get_threshold()
    tune_gc()
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextlib.contextmanager
def quiet_logs() -> Iterator[None]:
    """corral's log records are made as usual but go nowhere (not to Python's last-resort
    handler on stderr, where every HA restart would print a line), unless logging is set up."""
    logger = logging.getLogger("corral")
    handler = logging.NullHandler()
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
